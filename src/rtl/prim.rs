//! Arithmetic and memory primitives with a hand-written Verilog body and a
//! Rust simulation model of the same few lines (the escape hatch of
//! RUST-HDL-NOTES.md: rust-hdl's `*` exists only at 16 x 16 bits, it has no
//! signed shifts, and signed compares against literals mis-translate).
//! Each primitive is what an FPGA offers natively: a DSP-slice MAC, a
//! multiply-add, a rounding/saturating narrower, a LUT-RAM with two
//! asynchronous read ports and a block ROM with a registered read.
//!
//! Signed values travel as two's complement in `Bits<N>`.

use super::{Acc, Addr, Code, Wt};
use rust_hdl::prelude::*;

/// Sign-extend a two's complement `Bits<N>` to i64.
pub fn sx<const N: usize>(b: Bits<N>) -> i64 {
    let u = b.to_u64();
    if N >= 64 {
        u as i64
    } else {
        ((u << (64 - N)) as i64) >> (64 - N)
    }
}

/// Truncate an i64 to a two's complement `Bits<N>`.
pub fn tc<const N: usize>(v: i64) -> Bits<N> {
    let u = v as u64;
    let m = if N >= 64 { u } else { u & ((1u64 << N) - 1) };
    Bits::<N>::from(m)
}

/// Verilog literal of a signed 64-bit constant.
fn lit64(v: i64) -> String {
    format!("64'sh{:016x}", v as u64)
}

/// Registered multiply-accumulate (a DSP slice):
/// `acc <= (first ? bias : acc) + w * x` when `en`, 48-bit wrap-free in use.
#[derive(LogicBlock)]
pub struct Mac {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub first: Signal<In, Bit>,
    pub bias: Signal<In, Acc>,
    pub w: Signal<In, Wt>,
    pub x: Signal<In, Code>,
    pub acc: Signal<Out, Acc>,
}

impl Default for Mac {
    fn default() -> Self {
        Mac {
            clock: Default::default(),
            en: Default::default(),
            first: Default::default(),
            bias: Default::default(),
            w: Default::default(),
            x: Default::default(),
            acc: Signal::new_with_default(Acc::default()),
        }
    }
}

impl Logic for Mac {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.en.val() {
            let base = if self.first.val() {
                sx(self.bias.val())
            } else {
                sx(self.acc.val())
            };
            let p = sx(self.w.val()) * sx(self.x.val());
            self.acc.next = tc(base.wrapping_add(p));
        }
    }
    fn connect(&mut self) {
        self.acc.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "\
wire signed [47:0] product = $signed(w) * $signed(x);
initial acc = 48'h0;
always @(posedge clock) begin
   if (en) acc <= (first ? bias : acc) + product;
end"
            .into(),
        )
    }
}

/// A MAC unit of the GRU: the [`Mac`] accumulator with the two narrowings
/// a finished row goes through, the hard sigmoid of a z/r row
/// (`sat(rshr(acc + 2^(2W-2), W), 0, S)`) and the clipped identity of a
/// candidate row (`sat(rshr(acc, W-1), -QMAX, QMAX)`), both read at once
/// (the lane picks by row). Fused so the 48-bit accumulator stays inside
/// the block (simulation speed). The bias arrives as its code shifted by
/// its exponent and is aligned by `bias_shift` (W - 1) on loading.
#[derive(LogicBlock)]
pub struct MacUnit {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub first: Signal<In, Bit>,
    pub bias: Signal<In, Wt>,
    pub w: Signal<In, Wt>,
    pub x: Signal<In, Code>,
    pub gate: Signal<Out, Code>,
    pub cand: Signal<Out, Code>,
    _bias_shift: u32,
    _acc: i64,
    _fresh: bool,
    _gate: (i64, u32, i64, i64),
    _cand: (i64, u32, i64, i64),
}

impl MacUnit {
    /// Narrowings as (offset, shift, lo, hi).
    pub fn new(bias_shift: u32, gate: (i64, u32, i64, i64), cand: (i64, u32, i64, i64)) -> Self {
        MacUnit {
            _bias_shift: bias_shift,
            clock: Default::default(),
            en: Default::default(),
            first: Default::default(),
            bias: Default::default(),
            w: Default::default(),
            x: Default::default(),
            gate: Default::default(),
            cand: Default::default(),
            _acc: 0,
            _fresh: false,
            _gate: gate,
            _cand: cand,
        }
    }

    /// The accumulator (for tests).
    pub fn accumulator(&self) -> i64 {
        self._acc
    }
}

fn narrow(v: i64, (offset, shift, lo, hi): (i64, u32, i64, i64)) -> i64 {
    ((v + offset) >> shift).clamp(lo, hi)
}

fn narrow_verilog(out: &str, (offset, shift, lo, hi): (i64, u32, i64, i64)) -> String {
    format!(
        "\
wire signed [63:0] {out}_shifted = (widened + {off}) >>> {shift};
wire signed [63:0] {out}_clamped = ({out}_shifted < {lo}) ? {lo} : (({out}_shifted > {hi}) ? {hi} : {out}_shifted);
",
        off = lit64(offset),
        lo = lit64(lo),
        hi = lit64(hi)
    )
}

impl Logic for MacUnit {
    fn update(&mut self) {
        let edge = self.clock.pos_edge();
        if edge && self.en.val() {
            let base = if self.first.val() {
                sx(self.bias.val()) << self._bias_shift
            } else {
                self._acc
            };
            // 48-bit wrap, as the register (never reached: the contract's
            // accumulators need at most 45 bits).
            self._acc = sx(tc::<48>(
                base.wrapping_add(sx(self.w.val()) * sx(self.x.val())),
            ));
        }
        if edge || !self._fresh {
            self._fresh = true;
            self.gate.next = tc(narrow(self._acc, self._gate));
            self.cand.next = tc(narrow(self._acc, self._cand));
        }
    }
    fn connect(&mut self) {
        self.gate.connect();
        self.cand.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
wire signed [47:0] product = $signed(w) * $signed(x);
wire signed [47:0] bias_wide = $signed(bias);
wire signed [47:0] bias_aligned = bias_wide <<< {bs};
reg [47:0] acc;
initial acc = 48'h0;
always @(posedge clock) begin
   if (en) acc <= (first ? bias_aligned : acc) + product;
end
wire signed [63:0] widened = {{{{16{{acc[47]}}}}, acc}};
{g}{c}always @(*) begin
   gate = gate_clamped[17:0];
   cand = cand_clamped[17:0];
end",
            bs = self._bias_shift,
            g = narrow_verilog("gate", self._gate),
            c = narrow_verilog("cand", self._cand),
        ))
    }
}

/// Combinational multiply-add: `out = a * b + (c << shift)` (signed).
#[derive(LogicBlock)]
pub struct MulAdd {
    pub a: Signal<In, Code>,
    pub b: Signal<In, Code>,
    pub c: Signal<In, Code>,
    pub out: Signal<Out, Acc>,
    _shift: u32,
    _fresh: bool,
}

impl MulAdd {
    pub fn new(shift: u32) -> Self {
        MulAdd {
            a: Default::default(),
            b: Default::default(),
            c: Default::default(),
            out: Default::default(),
            _shift: shift,
            _fresh: false,
        }
    }
}

impl Logic for MulAdd {
    fn update(&mut self) {
        // Combinational: recompute only when an input moved (simulation speed).
        if self._fresh && !(self.a.changed() || self.b.changed() || self.c.changed()) {
            return;
        }
        self._fresh = true;
        let v = sx(self.a.val()) * sx(self.b.val()) + (sx(self.c.val()) << self._shift);
        self.out.next = tc(v);
    }
    fn connect(&mut self) {
        self.out.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
wire signed [47:0] product = $signed(a) * $signed(b);
wire signed [47:0] addend = $signed(c);
always @(*) out = product + (addend <<< {});",
            self._shift
        ))
    }
}

/// Combinational narrowing of a 48-bit signed value:
/// `out = sat((v + offset) >> shift, lo, hi)` (arithmetic shift, so with
/// `offset = 2^(shift-1)` it is the contract's round-half-up `rshr`).
#[derive(LogicBlock)]
pub struct Requant<const O: usize> {
    pub v: Signal<In, Acc>,
    pub out: Signal<Out, Bits<O>>,
    _offset: i64,
    _shift: u32,
    _lo: i64,
    _hi: i64,
    _fresh: bool,
}

impl<const O: usize> Requant<O> {
    pub fn new(offset: i64, shift: u32, lo: i64, hi: i64) -> Self {
        Requant {
            v: Default::default(),
            out: Default::default(),
            _offset: offset,
            _shift: shift,
            _lo: lo,
            _hi: hi,
            _fresh: false,
        }
    }

    /// The contract's `sat(rshr(v, s), lo, hi)`.
    pub fn rshr(s: u32, lo: i64, hi: i64) -> Self {
        Self::new(1 << (s - 1), s, lo, hi)
    }
}

impl<const O: usize> Logic for Requant<O> {
    fn update(&mut self) {
        if self._fresh && !self.v.changed() {
            return;
        }
        self._fresh = true;
        let v = (sx(self.v.val()) + self._offset) >> self._shift;
        self.out.next = tc(v.clamp(self._lo, self._hi));
    }
    fn connect(&mut self) {
        self.out.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
wire signed [63:0] widened = {{{{16{{v[47]}}}}, v}};
wire signed [63:0] shifted = (widened + {off}) >>> {sh};
wire signed [63:0] clamped = (shifted < {lo}) ? {lo} : ((shifted > {hi}) ? {hi} : shifted);
always @(*) out = clamped[{top}:0];",
            off = lit64(self._offset),
            sh = self._shift,
            lo = lit64(self._lo),
            hi = lit64(self._hi),
            top = O - 1
        ))
    }
}

/// RAM with one synchronous write port and two asynchronous read ports
/// (LUT RAM / registers). Depth is a construction parameter.
#[derive(LogicBlock)]
pub struct Mem<const D: usize> {
    pub clock: Signal<In, Clock>,
    pub we: Signal<In, Bit>,
    pub waddr: Signal<In, Addr>,
    pub wdata: Signal<In, Bits<D>>,
    pub raddr0: Signal<In, Addr>,
    pub rdata0: Signal<Out, Bits<D>>,
    pub raddr1: Signal<In, Addr>,
    pub rdata1: Signal<Out, Bits<D>>,
    pub(crate) _mem: Vec<Bits<D>>,
}

impl<const D: usize> Mem<D> {
    pub fn new(depth: usize) -> Self {
        Mem {
            clock: Default::default(),
            we: Default::default(),
            waddr: Default::default(),
            wdata: Default::default(),
            raddr0: Default::default(),
            rdata0: Default::default(),
            raddr1: Default::default(),
            rdata1: Default::default(),
            _mem: vec![Bits::<D>::default(); depth.max(1)],
        }
    }
}

impl<const D: usize> Logic for Mem<D> {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.we.val() {
            let a = self.waddr.val().index();
            if a < self._mem.len() {
                self._mem[a] = self.wdata.val();
            }
        }
        let read = |a: Addr| self._mem.get(a.index()).copied().unwrap_or_default();
        self.rdata0.next = read(self.raddr0.val());
        self.rdata1.next = read(self.raddr1.val());
    }
    fn connect(&mut self) {
        self.rdata0.connect();
        self.rdata1.connect();
    }
    fn hdl(&self) -> Verilog {
        let n = self._mem.len();
        Verilog::Custom(format!(
            "\
reg [{top}:0] mem [0:{last}];
integer i;
initial for (i = 0; i < {n}; i = i + 1) mem[i] = 0;
always @(*) begin
   rdata0 = (raddr0 < {n}) ? mem[raddr0] : {d}'h0;
   rdata1 = (raddr1 < {n}) ? mem[raddr1] : {d}'h0;
end
always @(posedge clock) begin
   if (we && waddr < {n}) mem[waddr] <= wdata;
end",
            top = D - 1,
            last = n - 1,
            d = D
        ))
    }
}

/// ROM with a registered read (block RAM), contents baked in at
/// construction; depth is a construction parameter.
#[derive(LogicBlock)]
pub struct Rom<const D: usize> {
    pub clock: Signal<In, Clock>,
    pub address: Signal<In, Addr>,
    pub data: Signal<Out, Bits<D>>,
    pub(crate) _rom: Vec<Bits<D>>,
}

impl<const D: usize> Rom<D> {
    pub fn new(values: Vec<Bits<D>>) -> Self {
        let values = if values.is_empty() {
            vec![Bits::<D>::default()]
        } else {
            values
        };
        Rom {
            clock: Default::default(),
            address: Default::default(),
            data: Signal::new_with_default(Bits::<D>::default()),
            _rom: values,
        }
    }

    /// From signed values (two's complement).
    pub fn signed(values: &[i64]) -> Self {
        Self::new(values.iter().map(|&v| tc::<D>(v)).collect())
    }
}

impl<const D: usize> Logic for Rom<D> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let a = self.address.val().index();
            self.data.next = self._rom.get(a).copied().unwrap_or_default();
        }
    }
    fn connect(&mut self) {
        self.data.connect();
    }
    fn hdl(&self) -> Verilog {
        let n = self._rom.len();
        let init = self
            ._rom
            .iter()
            .enumerate()
            .map(|(i, v)| format!("   mem[{i}] = {D}'h{:x};", v.to_u64()))
            .collect::<Vec<_>>()
            .join("\n");
        Verilog::Custom(format!(
            "\
reg [{top}:0] mem [0:{last}];
initial begin
{init}
   data = {D}'h0;
end
always @(posedge clock) begin
   data <= (address < {n}) ? mem[address] : {D}'h0;
end",
            top = D - 1,
            last = n - 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle<B: Block>(b: &mut B) {
        assert!(simulate(b, 100));
    }

    #[test]
    fn sign_helpers_round_trip() {
        for v in [-131072i64, -5, -1, 0, 1, 77, 131071] {
            assert_eq!(sx(tc::<18>(v)), v);
        }
        assert_eq!(sx(tc::<48>(-(1 << 40))), -(1 << 40));
    }

    #[test]
    fn requant_is_rshr_sat() {
        let mut r = Requant::<18>::rshr(7, -127, 127);
        r.connect_all();
        for v in [
            -100_000i64,
            -16384,
            -193,
            -192,
            -64,
            -63,
            0,
            64,
            191,
            192,
            16255,
            1 << 20,
        ] {
            r.v.next = tc(v);
            settle(&mut r);
            let want = crate::fixed::contract::sat(crate::fixed::contract::rshr(v, 7), -127, 127);
            assert_eq!(sx(r.out.val()), want, "{v}");
        }
    }

    #[test]
    fn mac_accumulates_signed() {
        let mut m = Mac::default();
        m.connect_all();
        let terms = [(-7i64, 5i64), (32767, -32767), (-1, -1), (4000, 3)];
        for (i, (w, x)) in terms.iter().enumerate() {
            m.en.next = true;
            m.first.next = i == 0;
            m.bias.next = tc(-9);
            m.w.next = tc(*w);
            m.x.next = tc(*x);
            m.clock.next = Clock { clk: true };
            settle(&mut m);
            m.clock.next = Clock { clk: false };
            settle(&mut m);
        }
        let want = -9 + terms.iter().map(|(w, x)| w * x).sum::<i64>();
        assert_eq!(sx(m.acc.val()), want);
    }

    #[test]
    fn mem_and_rom_read_back() {
        let mut m = Mem::<18>::new(5);
        m.connect_all();
        m.we.next = true;
        m.waddr.next = 3.into();
        m.wdata.next = tc(-4);
        m.clock.next = Clock { clk: true };
        settle(&mut m);
        m.we.next = false;
        m.raddr0.next = 3.into();
        m.raddr1.next = 9.into();
        m.clock.next = Clock { clk: false };
        settle(&mut m);
        assert_eq!(sx(m.rdata0.val()), -4);
        assert_eq!(sx(m.rdata1.val()), 0);
        let mut r = Rom::<20>::signed(&[5, -6, 7]);
        r.connect_all();
        r.address.next = 1.into();
        r.clock.next = Clock { clk: true };
        settle(&mut r);
        assert_eq!(sx(r.data.val()), -6);
    }
}
