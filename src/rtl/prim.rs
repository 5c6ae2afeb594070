//! Arithmetic and memory primitives with a hand-written Verilog body and a
//! Rust simulation model of the same few lines (the escape hatch of
//! docs/rust-hdl-notes.md: rust-hdl's `*` exists only at 16 x 16 bits, it
//! has no signed shifts, and signed compares against literals
//! mis-translate).
//! Each primitive is what an FPGA offers natively: a DSP-slice MAC, a
//! registered product, a rounding/saturating narrower, a LUT-RAM with two
//! asynchronous read ports and a block ROM with a registered read.
//!
//! Signed values travel as two's complement in `Bits<N>`.

use super::{Acc, Addr, Code, Widths, Wt};
use crate::fixed::contract::Narrow;
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

/// The low `n` bits of `v`, sign-extended (Verilog's `$signed(v[n-1:0])`).
pub fn wrap(v: i64, n: u32) -> i64 {
    if n >= 64 {
        v
    } else {
        (v << (64 - n)) >> (64 - n)
    }
}

/// Verilog literal of a signed constant at `n` bits (two's complement).
fn lit(v: i64, n: u32) -> String {
    let m = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    format!("{n}'sh{:x}", (v as u64) & m)
}

/// `name` (a port of `port` bits) read as a signed `n`-bit value and
/// sign-extended to `to` bits, plus the `unused_*` wire that takes the
/// port's high bits when `n < port`: the primitives compute at the
/// [`Widths`](super::Widths) of the actual W, and Verilator's documented
/// exemption for signals named `unused*` keeps those bits lint-clean
/// (docs/export.md: the Rust models ignore the same bits).
fn operand(name: &str, port: u32, n: u32, to: u32) -> String {
    let n = n.min(port);
    let mut v = String::new();
    if n < port {
        v += &format!(
            "wire unused_{name}_high = ^{{1'b0, {name}[{}:{n}]}};\n",
            port - 1
        );
    }
    let body = if to > n {
        format!(
            "{{{{{}{{{name}[{}]}}}}, {name}[{}:0]}}",
            to - n,
            n - 1,
            n - 1
        )
    } else {
        format!("{name}[{}:0]", to - 1)
    };
    v + &format!("wire signed [{}:0] {name}_s = {body};\n", to - 1)
}

/// A signed `from`-bit wire sign-extended (or cut) to an `O`-bit output.
fn extend(out: &str, from: &str, from_bits: u32, o: u32) -> String {
    if o > from_bits {
        format!(
            "always @(*) {out} = {{{{{}{{{from}[{}]}}}}, {from}}};\n",
            o - from_bits,
            from_bits - 1
        )
    } else if o == from_bits {
        format!("always @(*) {out} = {from};\n")
    } else {
        // Only ever a clamp whose bounds fit `o` bits: the cut bits are
        // sign copies.
        format!(
            "wire unused_{out}_high = ^{{1'b0, {from}[{}:{o}]}};\nalways @(*) {out} = {from}[{}:0];\n",
            from_bits - 1,
            o - 1
        )
    }
}

/// `sat((v + offset) >> shift, lo, hi)` of a signed `n`-bit wire `v`,
/// computed at n + 1 bits (n without an offset: [`narrowed_bits`]), as a
/// wire `{out}_clamped` of that width. With `high` (a signed wire and its
/// width) the sum is `v + (high << shift) + offset`: for 0 <= offset <
/// 2^shift the addend is `{high, offset}`, wiring, so still one carry chain.
fn narrow_verilog(
    out: &str,
    v: &str,
    n: u32,
    (offset, shift, lo, hi): Narrowing,
    high: Option<(&str, u32)>,
) -> String {
    let t = narrowed_bits(n, offset);
    let shifted = if offset == 0 {
        assert!(high.is_none(), "an addend needs the offset's extra bit");
        format!(
            "wire signed [{top}:0] {out}_shifted = {v} >>> {shift};\n",
            top = t - 1
        )
    } else {
        // (A concatenation is unsigned in Verilog: the addend is a signed
        // wire of its own so the sum and its shift stay signed.)
        let (declare, addend) = match high {
            None => (String::new(), lit(offset, t)),
            Some((c, bits)) => {
                assert!(
                    (0..1i64 << shift).contains(&offset) && bits + shift <= t,
                    "offset {offset}, addend {bits} bits, shift {shift}, width {t}"
                );
                (
                    format!(
                        "wire signed [{}:0] {out}_addend = {{{}, {shift}'h{offset:x}}};\n",
                        t - 1,
                        sext(c, bits, t - shift)
                    ),
                    format!("{out}_addend"),
                )
            }
        };
        format!(
            "{declare}wire signed [{top}:0] {out}_widened = {{{v}[{vs}], {v}}};\n\
wire signed [{top}:0] {out}_shifted = ({out}_widened + {addend}) >>> {shift};\n",
            top = t - 1,
            vs = n - 1,
        )
    };
    format!(
        "{shifted}wire signed [{top}:0] {out}_clamped = ({out}_shifted < {lo}) ? {lo} : (({out}_shifted > {hi}) ? {hi} : {out}_shifted);\n",
        top = t - 1,
        lo = lit(lo, t),
        hi = lit(hi, t)
    )
}

/// The width [`narrow_verilog`] computes at: one bit more for the offset.
fn narrowed_bits(n: u32, offset: i64) -> u32 {
    if offset == 0 {
        n
    } else {
        n + 1
    }
}

/// A narrowing as (offset, shift, lo, hi): `sat((v + offset) >> shift, lo, hi)`.
pub type Narrowing = (i64, u32, i64, i64);

/// A contract narrowing ([`crate::fixed::contract::Narrow`], the one
/// definition of its constants) as the primitives carry it.
fn parts(n: Narrow) -> Narrowing {
    (n.offset, n.shift, n.lo, n.hi)
}

/// The Rust model of [`narrow_verilog`], `high` its addend's value (0
/// without one).
fn narrow(v: i64, n: u32, high: i64, (offset, shift, lo, hi): Narrowing) -> i64 {
    (wrap(wrap(v, n) + (high << shift) + offset, n + 1) >> shift).clamp(lo, hi)
}

/// Cycles from a MAC's inputs to its accumulator: an operand register
/// beside the multiplier, a product register, the accumulate (so the
/// operand routing, the multiplier and the adder are three paths:
/// docs/hardware.md, post-route Fmax).
pub const MAC_LATENCY: usize = 3;

/// One pipeline stage of a MAC's Rust model (`w` holds the product in the
/// second stage).
#[derive(Clone, Copy, Debug, Default)]
struct MacStage {
    en: bool,
    first: bool,
    bias: i64,
    w: i64,
    x: i64,
}

/// The Rust model of [`mac_verilog`]: operand stage, product stage,
/// accumulator.
#[derive(Clone, Copy, Debug, Default)]
struct MacPipe {
    operands: MacStage,
    product: MacStage,
    acc: i64,
}

impl MacPipe {
    /// One rising edge with `input` at the MAC's ports (already read at
    /// their widths; the bias already aligned).
    fn edge(&mut self, input: MacStage, acc_bits: u32) {
        let p = self.product;
        if p.en {
            let base = if p.first { p.bias } else { self.acc };
            self.acc = wrap(base.wrapping_add(p.w), acc_bits);
        }
        let o = self.operands;
        self.product = MacStage {
            w: wrap(o.w * o.x, acc_bits),
            x: 0,
            ..o
        };
        self.operands = input;
    }
}

/// `{{n{v[from-1]}}, v}`: a signed `from`-bit wire sign-extended to `to` bits.
fn sext(v: &str, from: u32, to: u32) -> String {
    if to > from {
        format!("{{{{{}{{{v}[{}]}}}}, {v}}}", to - from, from - 1)
    } else {
        v.to_string()
    }
}

/// A rounding offset added to the bias on loading, chosen per row by the
/// `gate_row` port: `(gate, cand)`, split at the bias alignment into a part
/// added to the bias before the shift and the bits below it (ORed in).
#[derive(Clone, Copy, Debug)]
struct RowOffsets {
    gate: i64,
    cand: i64,
    shift: u32,
}

impl RowOffsets {
    fn high(v: i64, shift: u32) -> i64 {
        v >> shift
    }
    fn low(v: i64, shift: u32) -> i64 {
        v & ((1i64 << shift) - 1)
    }
    /// The width of the bias plus the high part, signed.
    fn bias_bits(&self, bias_bits: u32) -> u32 {
        let bits = |v: i64| 65 - v.unsigned_abs().leading_zeros();
        bias_bits
            .max(bits(Self::high(self.gate, self.shift)))
            .max(bits(Self::high(self.cand, self.shift)))
            + 1
    }
    /// The Rust model: the aligned bias with the row's offset.
    fn load(&self, bias: i64, gate_row: bool) -> i64 {
        let v = if gate_row { self.gate } else { self.cand };
        ((bias + Self::high(v, self.shift)) << self.shift) | Self::low(v, self.shift)
    }
}

/// How the multipliers (MACs and products) are written in the Verilog;
/// the cycle behaviour (and the Rust model) is the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dsp {
    /// `*` between fabric registers, for any toolchain to map.
    #[default]
    Inferred,
    /// Lattice ECP5: a `MULT18X18D` instance holding the operand and
    /// product registers itself. yosys' `synth_ecp5` packs no registers
    /// into the DSP, and a multiplier placed far from its fabric
    /// registers crossed the die twice in one path (docs/hardware.md).
    /// Operands wider than the 18-bit ports keep the inferred form.
    Ecp5,
}

impl Dsp {
    /// The name `FromStr` accepts: `inferred` or `ecp5`.
    pub fn name(&self) -> &'static str {
        match self {
            Dsp::Inferred => "inferred",
            Dsp::Ecp5 => "ecp5",
        }
    }

    /// What the export header says of the form.
    pub fn describe(&self) -> &'static str {
        match self {
            Dsp::Inferred => "inferred (`*` between fabric registers, for any toolchain)",
            Dsp::Ecp5 => "ECP5 MULT18X18D holding the product register (and a MAC's operand registers) (Lattice ECP5 only; simulate with the vendor library or flimgru::boards::pll::lint_stubs)",
        }
    }
}

impl std::str::FromStr for Dsp {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Dsp> {
        match s.to_ascii_lowercase().as_str() {
            "inferred" => Ok(Dsp::Inferred),
            "ecp5" => Ok(Dsp::Ecp5),
            _ => anyhow::bail!("unknown multiplier form '{s}': use inferred or ecp5"),
        }
    }
}

/// Largest signed operand of one ECP5 `MULT18X18D` port.
const ECP5_PORT: u32 = 18;

/// A product register, and with `input_registers` the operand registers,
/// as one ECP5 `MULT18X18D` (registers on CLK0, signed): the signed wires
/// `a` and `b` (of their widths) in, the signed wire `out` of `out_bits`
/// out, two edges later (one without the operand registers).
fn ecp5_product(a: (&str, u32), b: (&str, u32), out: (&str, u32), input_registers: bool) -> String {
    let pins = |port: char, n: usize, wire: &str| {
        (0..n)
            .map(|i| format!(".{port}{i}({wire}[{i}])"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (out, bits) = out;
    let used = bits.min(2 * ECP5_PORT);
    format!(
        "wire [17:0] mult_a = {a};
wire [17:0] mult_b = {b};
// The product's bits above the output's are copies of its sign.
/* verilator lint_off UNUSEDSIGNAL */
wire [35:0] mult_p;
/* verilator lint_on UNUSEDSIGNAL */
MULT18X18D #(
   .REG_INPUTA_CLK(\"{inputs}\"), .REG_INPUTB_CLK(\"{inputs}\"), .REG_OUTPUT_CLK(\"CLK0\"),
   .REG_PIPELINE_CLK(\"NONE\"), .GSR(\"DISABLED\")
) mult (
   {pa},
   {pb},
   .SIGNEDA(1'b1), .SIGNEDB(1'b1), .SOURCEA(1'b0), .SOURCEB(1'b0),
   .CLK0(clock), .CE0(1'b1), .RST0(1'b0),
   {pp}
);
wire signed [{top}:0] {out} = {p};
",
        a = sext(a.0, a.1, ECP5_PORT),
        b = sext(b.0, b.1, ECP5_PORT),
        inputs = if input_registers { "CLK0" } else { "NONE" },
        pa = pins('A', 18, "mult_a"),
        pb = pins('B', 18, "mult_b"),
        pp = pins('P', 36, "mult_p"),
        top = bits - 1,
        p = if bits > used {
            format!("{{{{{}{{mult_p[35]}}}}, mult_p}}", bits - used)
        } else {
            format!("mult_p[{}:0]", bits - 1)
        },
    )
}

/// The Verilog of the MAC pipeline behind [`MAC_LATENCY`]: ports `en`,
/// `first`, `w` (20 bits), `x` (18 bits), `bias` (`bias_port` bits read at
/// `bias_bits`, shifted left by `bias_shift` on loading; with `offsets`,
/// plus the offset of the row the `gate_row` port names) into the signed
/// accumulator `acc_r` of `Widths::acc` bits. Operands are registered at
/// their own widths (no flip-flops for sign copies); with [`Dsp::Ecp5`]
/// inside the multiplier.
fn mac_verilog(
    dsp: Dsp,
    widths: Widths,
    bias_port: u32,
    bias_bits: u32,
    bias_shift: u32,
    offsets: Option<RowOffsets>,
) -> String {
    let Widths {
        code, weight, acc, ..
    } = widths;
    let bias_bits = bias_bits.min(acc);
    // Stage b: the bias plus the high part of the row's offset.
    let (loaded_bits, load, row, low) = match offsets {
        None => (
            bias_bits,
            "bias_a".to_string(),
            String::new(),
            String::new(),
        ),
        Some(o) => {
            let n = o.bias_bits(bias_bits);
            let (hg, hc) = (
                RowOffsets::high(o.gate, o.shift),
                RowOffsets::high(o.cand, o.shift),
            );
            let (lg, lc) = (
                RowOffsets::low(o.gate, o.shift),
                RowOffsets::low(o.cand, o.shift),
            );
            (
                n,
                format!(
                    "{} + (row_a ? {} : {})",
                    sext("bias_a", bias_bits, n),
                    lit(hg, n),
                    lit(hc, n)
                ),
                "reg row_a = 1'b0, row_b = 1'b0;\n\
always @(posedge clock) begin row_a <= gate_row; row_b <= row_a; end\n"
                    .to_string(),
                format!(" | (row_b ? {} : {})", lit(lg, acc), lit(lc, acc)),
            )
        }
    };
    // The operand and product registers: in the DSP, or in the fabric
    // (declared in the order of the original inferred form).
    let ecp5 = dsp == Dsp::Ecp5 && weight.max(code) <= ECP5_PORT;
    let fabric = |text: String| if ecp5 { String::new() } else { text };
    let dsp_block = if ecp5 {
        ecp5_product(("w_s", weight), ("x_s", code), ("product_b", acc), true)
    } else {
        String::new()
    };
    let operand_regs = fabric(format!(
        "reg signed [{}:0] w_a = {weight}'h0;\nreg signed [{}:0] x_a = {code}'h0;\n",
        weight - 1,
        code - 1
    ));
    let product_reg = fabric(format!(
        "reg signed [{}:0] product_b = {acc}'h0;\n",
        acc - 1
    ));
    let widened = fabric(format!(
        "wire signed [{top}:0] w_a_x = {};\nwire signed [{top}:0] x_a_x = {};\n",
        sext("w_a", weight, acc),
        sext("x_a", code, acc),
        top = acc - 1,
    ));
    let (operands, multiply) = if ecp5 {
        ("", "")
    } else {
        (" w_a <= w_s; x_a <= x_s;", " product_b <= w_a_x * x_a_x;")
    };
    format!(
        "{x}{w}{b}{row}{dsp_block}\
reg en_a = 1'b0, first_a = 1'b0, en_b = 1'b0, first_b = 1'b0;
{operand_regs}\
reg signed [{bt}:0] bias_a = {bias_bits}'h0;
reg signed [{lt}:0] bias_b = {loaded_bits}'h0;
{product_reg}\
reg signed [{top}:0] acc_r = {acc}'h0;
{widened}\
wire signed [{top}:0] bias_aligned = ({bx} <<< {bias_shift}){low};
always @(posedge clock) begin
   en_a <= en; first_a <= first;{operands} bias_a <= bias_s;
   en_b <= en_a; first_b <= first_a;{multiply} bias_b <= {load};
   if (en_b) acc_r <= (first_b ? bias_aligned : acc_r) + product_b;
end
",
        x = operand("x", 18, code, code),
        w = operand("w", 20, weight, weight),
        b = operand("bias", bias_port, bias_bits, bias_bits),
        bt = bias_bits - 1,
        lt = loaded_bits - 1,
        top = acc - 1,
        bx = sext("bias_b", loaded_bits, acc),
    )
}

/// Pipelined multiply-accumulate (a DSP slice with its operand and product
/// registers): `acc <= (first ? bias : acc) + w * x` when `en`, landing
/// [`MAC_LATENCY`] edges after the inputs, at the accumulator width of
/// [`Widths`]; `w` and `x` are read at their widths.
#[derive(LogicBlock)]
pub struct Mac {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub first: Signal<In, Bit>,
    pub bias: Signal<In, Acc>,
    pub w: Signal<In, Wt>,
    pub x: Signal<In, Code>,
    pub acc: Signal<Out, Acc>,
    _widths: Widths,
    _dsp: Dsp,
    _pipe: MacPipe,
}

impl Mac {
    pub fn new(widths: Widths, dsp: Dsp) -> Self {
        Mac {
            _dsp: dsp,
            clock: Default::default(),
            en: Default::default(),
            first: Default::default(),
            bias: Default::default(),
            w: Default::default(),
            x: Default::default(),
            acc: Signal::new_with_default(Acc::default()),
            _widths: widths,
            _pipe: MacPipe::default(),
        }
    }
}

impl Logic for Mac {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let Widths {
                code, weight, acc, ..
            } = self._widths;
            let input = MacStage {
                en: self.en.val(),
                first: self.first.val(),
                bias: wrap(sx(self.bias.val()), acc),
                w: wrap(sx(self.w.val()), weight),
                x: wrap(sx(self.x.val()), code),
            };
            self._pipe.edge(input, acc);
            self.acc.next = tc(self._pipe.acc);
        }
    }
    fn connect(&mut self) {
        self.acc.connect();
    }
    fn hdl(&self) -> Verilog {
        let acc = self._widths.acc;
        Verilog::Custom(format!(
            "{}{}",
            mac_verilog(self._dsp, self._widths, 48, acc, 0, None),
            extend("acc", "acc_r", acc, 48),
        ))
    }
}

/// A MAC unit of the GRU: the [`Mac`] pipeline with the two narrowings
/// a finished row goes through, the hard sigmoid of a z/r row
/// (`sat(rshr(acc + 2^(2W-2), W), 0, S)`) and the clipped identity of a
/// candidate row (`sat(rshr(acc, W-1), -QMAX, QMAX)`). Fused so the
/// accumulator stays inside the block (simulation speed). The bias arrives
/// as its code shifted by its exponent and is aligned by `bias_shift`
/// (W - 1) on loading. The narrowings' rounding offsets are added then
/// too, the row's by `gate_row` (the accumulator is one bit wider than the
/// contract's A, so nothing wraps): a finished row is a shift and a clamp
/// away from its register, no carry chain (the offset add was W = 16's
/// critical path). So `gate` is only meaningful for a z/r row and `cand`
/// for a candidate row, the one the lane reads.
#[derive(LogicBlock)]
pub struct MacUnit {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub first: Signal<In, Bit>,
    /// The row is a z/r row (with `first`): which offset the bias gets.
    pub gate_row: Signal<In, Bit>,
    pub bias: Signal<In, Wt>,
    pub w: Signal<In, Wt>,
    pub x: Signal<In, Code>,
    pub gate: Signal<Out, Code>,
    pub cand: Signal<Out, Code>,
    /// The contract's widths with the accumulator one bit wider.
    _widths: Widths,
    _dsp: Dsp,
    _bias_shift: u32,
    _offsets: RowOffsets,
    _pipe: MacPipe,
    _fresh: bool,
    /// The narrowings without their offsets.
    _gate: Narrowing,
    _cand: Narrowing,
}

impl MacUnit {
    /// The gate and candidate narrowings come from the contract
    /// ([`crate::fixed::contract::Format::gate_narrow`], `candidate_narrow`).
    pub fn new(widths: Widths, dsp: Dsp, bias_shift: u32, gate: Narrow, cand: Narrow) -> Self {
        let (gate, cand) = (parts(gate), parts(cand));
        MacUnit {
            _dsp: dsp,
            _widths: Widths {
                acc: widths.acc + 1,
                ..widths
            },
            _bias_shift: bias_shift,
            _offsets: RowOffsets {
                gate: gate.0,
                cand: cand.0,
                shift: bias_shift,
            },
            clock: Default::default(),
            en: Default::default(),
            first: Default::default(),
            gate_row: Default::default(),
            bias: Default::default(),
            w: Default::default(),
            x: Default::default(),
            gate: Default::default(),
            cand: Default::default(),
            _pipe: MacPipe::default(),
            _fresh: false,
            _gate: (0, gate.1, gate.2, gate.3),
            _cand: (0, cand.1, cand.2, cand.3),
        }
    }

    /// The accumulator (for tests).
    pub fn accumulator(&self) -> i64 {
        self._pipe.acc
    }
}

impl Logic for MacUnit {
    fn update(&mut self) {
        let edge = self.clock.pos_edge();
        let Widths {
            code, weight, acc, ..
        } = self._widths;
        if edge {
            let input = MacStage {
                en: self.en.val(),
                first: self.first.val(),
                bias: wrap(
                    self._offsets
                        .load(wrap(sx(self.bias.val()), weight), self.gate_row.val()),
                    acc,
                ),
                w: wrap(sx(self.w.val()), weight),
                x: wrap(sx(self.x.val()), code),
            };
            self._pipe.edge(input, acc);
        }
        if edge || !self._fresh {
            self._fresh = true;
            self.gate.next = tc(narrow(self._pipe.acc, acc, 0, self._gate));
            self.cand.next = tc(narrow(self._pipe.acc, acc, 0, self._cand));
        }
    }
    fn connect(&mut self) {
        self.gate.connect();
        self.cand.connect();
    }
    fn hdl(&self) -> Verilog {
        let Widths { weight, acc, .. } = self._widths;
        Verilog::Custom(format!(
            "{mac}{g}{c}{go}{co}",
            mac = mac_verilog(
                self._dsp,
                self._widths,
                20,
                weight,
                self._bias_shift,
                Some(self._offsets)
            ),
            g = narrow_verilog("gate", "acc_r", acc, self._gate, None),
            c = narrow_verilog("cand", "acc_r", acc, self._cand, None),
            go = extend("gate", "gate_clamped", acc, 18),
            co = extend("cand", "cand_clamped", acc, 18),
        ))
    }
}

/// A registered product `out = a * b` (signed, operands read at the code
/// width, the product at the product width of [`Widths`]), two edges after
/// its inputs: operand registers in the fabric and a product register,
/// with [`Dsp::Ecp5`] the product register inside the `MULT18X18D`. (The
/// lane's reset and update multipliers, inferred between fabric
/// registers, crossed the die twice in one path: P = 2's critical path,
/// docs/hardware.md.)
#[derive(LogicBlock)]
pub struct Product {
    pub clock: Signal<In, Clock>,
    pub a: Signal<In, Code>,
    pub b: Signal<In, Code>,
    pub out: Signal<Out, Acc>,
    _widths: Widths,
    _dsp: Dsp,
    /// The operand registers of the Rust model.
    _operands: (i64, i64),
}

impl Product {
    pub fn new(widths: Widths, dsp: Dsp) -> Self {
        Product {
            clock: Default::default(),
            a: Default::default(),
            b: Default::default(),
            out: Signal::new_with_default(Acc::default()),
            _widths: widths,
            _dsp: dsp,
            _operands: (0, 0),
        }
    }
}

impl Logic for Product {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let Widths { code, product, .. } = self._widths;
            let (a, b) = self._operands;
            self.out.next = tc(wrap(a * b, product));
            self._operands = (wrap(sx(self.a.val()), code), wrap(sx(self.b.val()), code));
        }
    }
    fn connect(&mut self) {
        self.out.connect();
    }
    fn hdl(&self) -> Verilog {
        let Widths { code, product, .. } = self._widths;
        let operands = format!(
            "{}{}",
            operand("a", 18, code, code),
            operand("b", 18, code, code)
        );
        // The operand registers stay in the fabric beside the reads that
        // feed them (a LUT-RAM read, a select and a subtraction routed to
        // a DSP's own input registers was P = 2's critical path).
        let operand_regs = format!(
            "reg signed [{ct}:0] a_r = {code}'h0;
reg signed [{ct}:0] b_r = {code}'h0;
always @(posedge clock) begin a_r <= a_s; b_r <= b_s; end
",
            ct = code - 1,
        );
        let body = if self._dsp == Dsp::Ecp5 && code <= ECP5_PORT {
            ecp5_product(("a_r", code), ("b_r", code), ("product_r", product), false)
        } else {
            format!(
                "reg signed [{pt}:0] product_r = {product}'h0;
wire signed [{pt}:0] a_x = {ax};
wire signed [{pt}:0] b_x = {bx};
always @(posedge clock) product_r <= a_x * b_x;
",
                pt = product - 1,
                ax = sext("a_r", code, product),
                bx = sext("b_r", code, product),
            )
        };
        Verilog::Custom(format!(
            "{operands}{operand_regs}{body}{}",
            extend("out", "product_r", product, 48)
        ))
    }
}

/// Combinational narrowing of a signed value of `n` bits (carried on a
/// 48-bit port): `out = sat((v + offset) >> shift, lo, hi)` (arithmetic
/// shift, so with `offset = 2^(shift-1)` it is the contract's round-half-up
/// `rshr`), computed at n + 1 bits.
#[derive(LogicBlock)]
pub struct Requant<const O: usize> {
    pub v: Signal<In, Acc>,
    pub out: Signal<Out, Bits<O>>,
    _bits: u32,
    _narrowing: Narrowing,
    _fresh: bool,
}

impl<const O: usize> Requant<O> {
    /// The contract narrowing `n` of a `bits`-bit value.
    pub fn new(bits: u32, n: Narrow) -> Self {
        Requant {
            v: Default::default(),
            out: Default::default(),
            _bits: bits.min(48),
            _narrowing: parts(n),
            _fresh: false,
        }
    }
}

impl<const O: usize> Logic for Requant<O> {
    fn update(&mut self) {
        if self._fresh && !self.v.changed() {
            return;
        }
        self._fresh = true;
        self.out.next = tc(narrow(sx(self.v.val()), self._bits, 0, self._narrowing));
    }
    fn connect(&mut self) {
        self.out.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(requant_verilog(self._bits, self._narrowing, None, O as u32))
    }
}

/// The body of [`Requant`] (port `v`, 48 bits, read at `n`) and, with the
/// addend's code width, of [`RequantSum`] (port `c`, 18 bits), into the
/// `o`-bit output `out`.
fn requant_verilog(n: u32, narrowing: Narrowing, addend: Option<u32>, o: u32) -> String {
    let mut v = String::new();
    if n < 48 {
        v += &format!("wire unused_v_high = ^{{1'b0, v[47:{n}]}};\n");
    }
    v += &format!("wire signed [{}:0] v_s = v[{}:0];\n", n - 1, n - 1);
    if let Some(code) = addend {
        v += &operand("c", 18, code, code);
    }
    v += &narrow_verilog("q", "v_s", n, narrowing, addend.map(|b| ("c_s", b)));
    v + &extend("out", "q_clamped", narrowed_bits(n, narrowing.0), o)
}

/// [`Requant`] of a sum: `out = sat((v + (c << shift) + offset) >> shift,
/// lo, hi)` of a signed `n`-bit `v` and a code `c` (at the code width),
/// for 0 <= offset < 2^shift. The state update's narrowing of z (h - c) +
/// (c << (W - 1)): its addend joins the rounding offset as wiring, so the
/// multiply stays a bare [`Product`] and the narrowing one carry chain.
#[derive(LogicBlock)]
pub struct RequantSum<const O: usize> {
    pub v: Signal<In, Acc>,
    pub c: Signal<In, Code>,
    pub out: Signal<Out, Bits<O>>,
    _bits: u32,
    _code: u32,
    _narrowing: Narrowing,
    _fresh: bool,
}

impl<const O: usize> RequantSum<O> {
    /// The contract narrowing `n` of `v + (c << n.shift)`: the state
    /// update's `sat(rshr(S c + z (h - c), Wa - 1), +-QMAX)`.
    pub fn new(bits: u32, code: u32, n: Narrow) -> Self {
        RequantSum {
            v: Default::default(),
            c: Default::default(),
            out: Default::default(),
            _bits: bits.min(47),
            _code: code.min(18),
            _narrowing: parts(n),
            _fresh: false,
        }
    }
}

impl<const O: usize> Logic for RequantSum<O> {
    fn update(&mut self) {
        if self._fresh && !(self.v.changed() || self.c.changed()) {
            return;
        }
        self._fresh = true;
        let c = wrap(sx(self.c.val()), self._code);
        self.out.next = tc(narrow(sx(self.v.val()), self._bits, c, self._narrowing));
    }
    fn connect(&mut self) {
        self.out.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(requant_verilog(
            self._bits,
            self._narrowing,
            Some(self._code),
            O as u32,
        ))
    }
}

/// RAM with one synchronous write port and two asynchronous read ports
/// (LUT RAM / registers). Depth is a construction parameter. Addresses
/// past the end read 0 and write nothing, or, for a [`Mem::wrapping`]
/// one, wrap around.
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
    _wrap: bool,
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
            _wrap: false,
        }
    }

    /// A RAM of 2^`address_bits` words that reads and writes at the
    /// addresses' low `address_bits` bits: no bounds compare in front of
    /// the read (in a block RAM, the compare drives the output register's
    /// reset and was a critical path: docs/hardware.md).
    pub fn wrapping(address_bits: u32) -> Self {
        assert!(
            (1..=16).contains(&address_bits),
            "address_bits {address_bits}"
        );
        Mem {
            _wrap: true,
            ..Mem::new(1 << address_bits)
        }
    }

    /// The word an address selects, if any.
    fn index(&self, a: Addr) -> Option<usize> {
        let n = self._mem.len();
        let a = a.index();
        if self._wrap {
            Some(a & (n - 1))
        } else {
            (a < n).then_some(a)
        }
    }
}

impl<const D: usize> Logic for Mem<D> {
    fn update(&mut self) {
        if self.clock.pos_edge() && self.we.val() {
            if let Some(a) = self.index(self.waddr.val()) {
                self._mem[a] = self.wdata.val();
            }
        }
        let read = |m: &Self, a: Addr| m.index(a).map(|a| m._mem[a]).unwrap_or_default();
        self.rdata0.next = read(self, self.raddr0.val());
        self.rdata1.next = read(self, self.raddr1.val());
    }
    fn connect(&mut self) {
        self.rdata0.connect();
        self.rdata1.connect();
    }
    fn hdl(&self) -> Verilog {
        let n = self._mem.len();
        let head = format!(
            "\
reg [{top}:0] mem [0:{last}];
integer i;
initial for (i = 0; i < {n}; i = i + 1) mem[i] = 0;
",
            top = D - 1,
            last = n - 1,
        );
        let body = if self._wrap {
            let k = n.trailing_zeros();
            let high = |a: &str| {
                if k < 16 {
                    format!("wire unused_{a}_high = ^{{1'b0, {a}[15:{k}]}};\n")
                } else {
                    String::new()
                }
            };
            format!(
                "{}{}{}\
always @(*) begin
   rdata0 = mem[raddr0[{t}:0]];
   rdata1 = mem[raddr1[{t}:0]];
end
always @(posedge clock) begin
   if (we) mem[waddr[{t}:0]] <= wdata;
end",
                high("raddr0"),
                high("raddr1"),
                high("waddr"),
                t = k - 1,
            )
        } else {
            format!(
                "\
always @(*) begin
   rdata0 = (raddr0 < {n}) ? mem[raddr0] : {D}'h0;
   rdata1 = (raddr1 < {n}) ? mem[raddr1] : {D}'h0;
end
always @(posedge clock) begin
   if (we && waddr < {n}) mem[waddr] <= wdata;
end"
            )
        };
        Verilog::Custom(head + &body)
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
    /// A second register after the read (data two cycles after the
    /// address): a block RAM's clock-to-out is slow (ECP5 DP16KD about
    /// 5.6 ns), so a multiplier fed by it straight misses ~80 MHz.
    _pipelined: bool,
    /// Asks synthesis for block RAM (`rom_style = "block"`) whatever the
    /// depth: yosys puts shallow ROMs in LUTs, and the weight ROMs of the
    /// lanes' units, addressed alike, then share LUT logic across the die
    /// (W = 8, P = 1, M = 96: 66-word ROMs, a 17.9 ns ROM-to-ROM path).
    _block: bool,
    _read: Bits<D>,
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
            _pipelined: false,
            _block: false,
            _read: Bits::<D>::default(),
        }
    }

    /// The same ROM in block RAM whatever its depth.
    pub fn block(mut self) -> Self {
        self._block = true;
        self
    }

    /// The same ROM with the output register (two cycles of latency).
    pub fn pipelined(mut self) -> Self {
        self._pipelined = true;
        self
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
            let read = self._rom.get(a).copied().unwrap_or_default();
            if self._pipelined {
                self.data.next = self._read;
                self._read = read;
            } else {
                self.data.next = read;
            }
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
{style}reg [{top}:0] mem [0:{last}];
initial begin
{init}
   data = {D}'h0;
end
{body}",
            style = if self._block {
                "(* rom_style = \"block\" *)\n"
            } else {
                ""
            },
            top = D - 1,
            last = n - 1,
            body = if self._pipelined {
                format!(
                    "\
reg [{top}:0] read;
initial read = {D}'h0;
always @(posedge clock) begin
   read <= (address < {n}) ? mem[address] : {D}'h0;
   data <= read;
end",
                    top = D - 1
                )
            } else {
                format!(
                    "\
always @(posedge clock) begin
   data <= (address < {n}) ? mem[address] : {D}'h0;
end"
                )
            }
        ))
    }
}

/// A lane's own register copy of a signal the controller broadcasts to
/// every lane. The lanes' copies have identical inputs, so yosys's
/// opt_merge would fold them back into one register (and the logic behind
/// it into one decode) whose net crosses the die to all P lanes: measured
/// at P = 4 as an 11.7 ns route of a 23.5 ns critical path (docs/hardware.md:
/// what limits Fmax). `(* keep *)` on the always block marks the register
/// cell itself, which opt_merge leaves alone.
#[derive(LogicBlock)]
pub struct Kept<T: Synth> {
    pub clock: Signal<In, Clock>,
    pub d: Signal<In, T>,
    pub q: Signal<Out, T>,
}

impl<T: Synth> Default for Kept<T> {
    fn default() -> Self {
        Kept {
            clock: Default::default(),
            d: Default::default(),
            q: Default::default(),
        }
    }
}

impl<T: Synth> Logic for Kept<T> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.q.next = self.d.val();
        }
    }
    fn connect(&mut self) {
        self.q.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom(format!(
            "\
initial begin
   q = {:x};
end
(* keep *)
always @(posedge clock) begin
   q <= d;
end
",
            T::default().verilog()
        ))
    }
}

/// [`Kept`] for a signed port of `N` bits of which only the low `bits`
/// are read (the rest are sign copies): only those are registered, so a
/// lane's copies of the M weights cost M W flip-flops, not 20 M.
#[derive(LogicBlock)]
pub struct KeptSigned<const N: usize> {
    pub clock: Signal<In, Clock>,
    pub d: Signal<In, Bits<N>>,
    pub q: Signal<Out, Bits<N>>,
    _bits: u32,
}

/// A kept copy of a weight port ([`Wt`]).
pub type KeptWeight = KeptSigned<20>;
/// A kept copy of an operand port ([`Code`]).
pub type KeptCode = KeptSigned<18>;

impl<const N: usize> KeptSigned<N> {
    pub fn new(bits: u32) -> Self {
        assert!((1..=N as u32).contains(&bits), "kept width {bits} of {N}");
        KeptSigned {
            clock: Default::default(),
            d: Default::default(),
            q: Default::default(),
            _bits: bits,
        }
    }
}

impl<const N: usize> Logic for KeptSigned<N> {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.q.next = tc(wrap(sx(self.d.val()), self._bits));
        }
    }
    fn connect(&mut self) {
        self.q.connect();
    }
    fn hdl(&self) -> Verilog {
        let n = self._bits;
        let port = N as u32;
        let unused = if n < port {
            format!("wire unused_d_high = ^{{1'b0, d[{}:{n}]}};\n", port - 1)
        } else {
            String::new()
        };
        Verilog::Custom(format!(
            "\
{unused}reg [{top}:0] kept;
initial begin
   kept = {n}'h0;
end
(* keep *)
always @(posedge clock) begin
   kept <= d[{top}:0];
end
{q}",
            top = n - 1,
            q = extend("q", "kept", n, port),
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
        let mut r = Requant::<18>::new(
            48,
            crate::fixed::contract::Format::new(8)
                .unwrap()
                .state_narrow(),
        );
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

    /// Splitting a row's offset at the bias alignment loses nothing: the
    /// loaded value is the aligned bias plus the whole offset, for the
    /// contract's z/r and candidate offsets at W = 8 and 16 and any bias.
    #[test]
    fn row_offsets_load_the_aligned_bias_plus_the_offset() {
        for w in [8u32, 16] {
            let fmt = crate::fixed::Format::new(w).unwrap();
            let o = RowOffsets {
                gate: (1i64 << fmt.acc_frac()) + (1 << (w - 1)),
                cand: 1 << (w - 2),
                shift: w - 1,
            };
            let lim = 1i64 << (w + 2);
            for bias in [-lim, -lim + 1, -3, -1, 0, 1, 5, lim - 1] {
                assert_eq!(o.load(bias, true), (bias << (w - 1)) + o.gate);
                assert_eq!(o.load(bias, false), (bias << (w - 1)) + o.cand);
                // bias + high part fits the stage-b register it gets.
                let n = o.bias_bits(w + 3);
                let high = bias + RowOffsets::high(o.gate, o.shift);
                assert_eq!(wrap(high, n), high);
            }
        }
    }

    /// A lane's copy is one register: it shows its input one edge later,
    /// and a weight copy keeps the low `bits`, sign-extended; the Verilog
    /// carries the `keep` that stops yosys merging the copies.
    #[test]
    fn kept_copies_are_one_register_later() {
        let mut k = Kept::<Addr>::default();
        k.connect_all();
        let mut w = KeptWeight::new(8);
        w.connect_all();
        let mut last = (Addr::default(), 0i64);
        for (i, v) in [5i64, -3, 300, -129, 127, -128, 0].into_iter().enumerate() {
            k.d.next = (i as u64 * 7).into();
            w.d.next = tc(v);
            settle(&mut k);
            settle(&mut w);
            assert_eq!(k.q.val(), last.0, "before edge {i}");
            assert_eq!(sx(w.q.val()), last.1, "before edge {i}");
            for b in [true, false] {
                k.clock.next = Clock { clk: b };
                w.clock.next = Clock { clk: b };
                settle(&mut k);
                settle(&mut w);
            }
            last = ((i as u64 * 7).into(), wrap(v, 8));
            assert_eq!(k.q.val(), last.0);
            assert_eq!(sx(w.q.val()), last.1, "{v} at 8 bits");
        }
        for v in [k.hdl(), w.hdl()] {
            match v {
                Verilog::Custom(text) => {
                    assert!(
                        text.contains("(* keep *)\nalways @(posedge clock)"),
                        "{text}"
                    )
                }
                _ => panic!("custom Verilog expected"),
            }
        }
    }

    #[test]
    fn mac_accumulates_signed() {
        let mut m = Mac::new(
            Widths::new(crate::fixed::Format::new(16).unwrap(), 32, 3),
            Dsp::Inferred,
        );
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
        // The last term lands MAC_LATENCY edges after it was presented.
        m.en.next = false;
        for _ in 1..MAC_LATENCY {
            assert_ne!(
                sx(m.acc.val()),
                -9 + terms.iter().map(|(w, x)| w * x).sum::<i64>()
            );
            m.clock.next = Clock { clk: true };
            settle(&mut m);
            m.clock.next = Clock { clk: false };
            settle(&mut m);
        }
        let want = -9 + terms.iter().map(|(w, x)| w * x).sum::<i64>();
        assert_eq!(sx(m.acc.val()), want);
    }

    /// The primitives read only their `Widths`: bits above are ignored, as
    /// in the Verilog (the exported co-simulation checks the in-range side).
    #[test]
    fn product_computes_at_its_widths_two_edges_late() {
        let widths = Widths::new(crate::fixed::Format::new(8).unwrap(), 32, 3);
        assert_eq!(
            (widths.code, widths.weight, widths.acc, widths.product),
            (9, 11, 25, 19)
        );
        let mut m = Product::new(widths, Dsp::Inferred);
        m.connect_all();
        let edge = |m: &mut Product| {
            m.clock.next = Clock { clk: true };
            settle(m);
            m.clock.next = Clock { clk: false };
            settle(m);
        };
        // Bit 9 and above of an operand are not read.
        let inputs = [
            (128i64, -254),
            (-255 + (5 << 9), 255),
            (3, -5),
            (0, 0),
            (0, 0),
        ];
        let mut seen = vec![];
        for (a, b) in inputs {
            m.a.next = tc(a);
            m.b.next = tc(b);
            settle(&mut m);
            edge(&mut m);
            seen.push(sx(m.out.val()));
        }
        assert_eq!(seen, [0, 128 * -254, -255 * 255, -15, 0]);
        assert_eq!(wrap(300, 9), 300 - 512);
        assert_eq!(wrap(-1, 64), -1);
    }

    /// The update's narrowing with its addend in the offset is the
    /// contract's sat(rshr(v + (c << s), s)) of the whole sum.
    #[test]
    fn requant_sum_is_rshr_sat_of_the_sum() {
        use crate::fixed::contract::{rshr, sat};
        let mut r = RequantSum::<18>::new(
            19,
            9,
            crate::fixed::contract::Format::new(8)
                .unwrap()
                .state_narrow(),
        );
        r.connect_all();
        for v in [-32768i64, -16384, -193, -64, -63, 0, 64, 191, 16255, 32767] {
            for c in [-256i64, -127, -1, 0, 1, 127, 255] {
                r.v.next = tc(v);
                r.c.next = tc(c);
                settle(&mut r);
                let want = sat(rshr(v + (c << 7), 7), -127, 127);
                assert_eq!(sx(r.out.val()), want, "{v} {c}");
            }
        }
        let Verilog::Custom(v) = r.hdl() else {
            panic!("RequantSum's Verilog is custom")
        };
        // The addend is the offset's high part: one adder, no second one;
        // a signed wire (a bare concatenation would make the sum unsigned
        // and its >>> a logical shift).
        assert!(
            v.contains("wire signed [19:0] q_addend = {{{4{c_s[8]}}, c_s}, 7'h40};"),
            "{v}"
        );
        assert_eq!(v.matches(" + ").count(), 1, "{v}");
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
        // A wrapping RAM of 8 words: address 11 is word 3, 19 too, and its
        // Verilog indexes with the low bits, no compare.
        let mut w = Mem::<18>::wrapping(3);
        w.connect_all();
        w.we.next = true;
        w.waddr.next = 11.into();
        w.wdata.next = tc(-9);
        w.clock.next = Clock { clk: true };
        settle(&mut w);
        w.we.next = false;
        w.raddr0.next = 3.into();
        w.raddr1.next = 19.into();
        w.clock.next = Clock { clk: false };
        settle(&mut w);
        assert_eq!(sx(w.rdata0.val()), -9);
        assert_eq!(sx(w.rdata1.val()), -9);
        let Verilog::Custom(v) = w.hdl() else {
            panic!("Mem's Verilog is custom")
        };
        assert!(
            v.contains("mem[raddr1[2:0]]") && !v.contains("addr0 <"),
            "{v}"
        );
        let mut r = Rom::<20>::signed(&[5, -6, 7]);
        r.connect_all();
        r.address.next = 1.into();
        r.clock.next = Clock { clk: true };
        settle(&mut r);
        assert_eq!(sx(r.data.val()), -6);
        // Only a block() ROM asks synthesis for block RAM.
        let style = |r: &Rom<20>| match r.hdl() {
            Verilog::Custom(v) => v.contains("(* rom_style = \"block\" *)\nreg [19:0] mem"),
            _ => panic!("Rom's Verilog is custom"),
        };
        assert!(!style(&r));
        assert!(style(&Rom::<20>::signed(&[5, -6, 7]).pipelined().block()));
    }
}
