//! Histogram ingest: a valid/ready stream of beats, each carrying gate k's
//! raw photon count for all P lanes (P pixels side by side), written into
//! a double-buffered raw-count RAM per lane while the baseline sum S0 of
//! the first B gates (the grid's baseline window) accumulates. The two banks are 2^ceil(log2 G)
//! words each and the bank is the address's top bit: no adder and no
//! bounds compare in front of the block RAM. When G beats are in, the
//! bank is the preprocessor's (`full`, its `rdata` and `s0`) until it
//! pulses `release`; meanwhile the next group streams into the other
//! bank. The read is registered twice: `rdata` is the count at the
//! `raddr` of [`READ_LATENCY`] cycles earlier (synthesis maps the banks to
//! block RAM, whose clock-to-out, the read and the preprocessor's
//! arithmetic are three paths).

use super::prim::Mem;
use super::{Addr, Count};
use rust_hdl::prelude::*;

/// Cycles from `raddr` to `rdata`.
pub const READ_LATENCY: usize = 2;

#[derive(LogicBlock)]
pub struct Ingest {
    pub clock: Signal<In, Clock>,
    pub valid: Signal<In, Bit>,
    pub ready: Signal<Out, Bit>,
    /// Lane l's count of the current gate.
    pub count: Vec<Signal<In, Count>>,
    /// The bank being read holds a complete histogram per lane.
    pub full: Signal<Out, Bit>,
    /// Pulse from the preprocessor: the bank being read may be refilled.
    pub release: Signal<In, Bit>,
    pub raddr: Signal<In, Addr>,
    pub rdata: Vec<Signal<Out, Count>>,
    /// Baseline sums of the bank being read (valid while `full`).
    pub s0: Vec<Signal<Out, Bits<24>>>,
    raw: Vec<Mem<16>>,
    rdata_reg: Vec<DFF<Count>>,
    rdata_out: Vec<DFF<Count>>,
    sum0: Vec<DFF<Bits<24>>>,
    sum1: Vec<DFF<Bits<24>>>,
    gate: DFF<Addr>,
    full0: DFF<Bit>,
    full1: DFF<Bit>,
    write_bank: DFF<Bit>,
    read_bank: DFF<Bit>,
    accept: Signal<Local, Bit>,
    write_full: Signal<Local, Bit>,
    write_base: Signal<Local, Addr>,
    read_base: Signal<Local, Addr>,
    lane_raw: Signal<Local, Count>,
    lane_count: Signal<Local, Bits<24>>,
    last_gate: Constant<Addr>,
    baseline: Constant<Addr>,
    bank_size: Constant<Addr>,
    _lanes: usize,
}

impl Ingest {
    pub fn new(lanes: usize, gates: usize, baseline_gates: usize) -> Self {
        let bank_bits = gates.next_power_of_two().trailing_zeros().max(1);
        Ingest {
            clock: Default::default(),
            valid: Default::default(),
            ready: Default::default(),
            count: super::many(lanes),
            full: Default::default(),
            release: Default::default(),
            raddr: Default::default(),
            rdata: super::many(lanes),
            s0: super::many(lanes),
            raw: (0..lanes).map(|_| Mem::wrapping(bank_bits + 1)).collect(),
            rdata_reg: super::many(lanes),
            rdata_out: super::many(lanes),
            sum0: super::many(lanes),
            sum1: super::many(lanes),
            gate: Default::default(),
            full0: Default::default(),
            full1: Default::default(),
            write_bank: Default::default(),
            read_bank: Default::default(),
            accept: Default::default(),
            write_full: Default::default(),
            write_base: Default::default(),
            read_base: Default::default(),
            lane_raw: Default::default(),
            lane_count: Default::default(),
            last_gate: Constant::new((gates as u64 - 1).into()),
            baseline: Constant::new((baseline_gates as u64).into()),
            bank_size: Constant::new((1u64 << bank_bits).into()),
            _lanes: lanes,
        }
    }
}

impl Logic for Ingest {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, gate, full0, full1, write_bank, read_bank);
        self.write_full.next = (self.write_bank.q.val() && self.full1.q.val())
            || (!self.write_bank.q.val() && self.full0.q.val());
        self.accept.next = self.valid.val() && !self.write_full.val();
        self.ready.next = !self.write_full.val();
        self.full.next = (self.read_bank.q.val() && self.full1.q.val())
            || (!self.read_bank.q.val() && self.full0.q.val());
        self.write_base.next = 0.into();
        if self.write_bank.q.val() {
            self.write_base.next = self.bank_size.val();
        }
        self.read_base.next = 0.into();
        if self.read_bank.q.val() {
            self.read_base.next = self.bank_size.val();
        }
        for l in 0..self._lanes {
            self.sum0[l].clock.next = self.clock.val();
            self.sum1[l].clock.next = self.clock.val();
            self.sum0[l].d.next = self.sum0[l].q.val();
            self.sum1[l].d.next = self.sum1[l].q.val();
            self.raw[l].clock.next = self.clock.val();
            self.raw[l].we.next = self.accept.val();
            self.raw[l].waddr.next = self.write_base.val() | self.gate.q.val();
            self.raw[l].wdata.next = self.count[l].val();
            self.raw[l].raddr0.next = self.read_base.val() | self.raddr.val();
            self.raw[l].raddr1.next = 0.into();
            self.rdata_reg[l].clock.next = self.clock.val();
            self.rdata_reg[l].d.next = self.raw[l].rdata0.val();
            self.rdata_out[l].clock.next = self.clock.val();
            self.rdata_out[l].d.next = self.rdata_reg[l].q.val();
            self.rdata[l].next = self.rdata_out[l].q.val();
            self.s0[l].next = self.sum0[l].q.val();
            if self.read_bank.q.val() {
                self.s0[l].next = self.sum1[l].q.val();
            }
            self.lane_raw.next = self.count[l].val();
            self.lane_count.next = bit_cast::<24, 16>(self.lane_raw.val());
            if self.accept.val() && (self.gate.q.val() < self.baseline.val()) {
                if self.write_bank.q.val() {
                    self.sum1[l].d.next = self.sum1[l].q.val() + self.lane_count.val();
                } else {
                    self.sum0[l].d.next = self.sum0[l].q.val() + self.lane_count.val();
                }
            }
            if self.release.val() {
                if self.read_bank.q.val() {
                    self.sum1[l].d.next = 0.into();
                } else {
                    self.sum0[l].d.next = 0.into();
                }
            }
        }
        if self.accept.val() {
            self.gate.d.next = self.gate.q.val() + 1;
            if self.gate.q.val() == self.last_gate.val() {
                self.gate.d.next = 0.into();
                self.write_bank.d.next = !self.write_bank.q.val();
                if self.write_bank.q.val() {
                    self.full1.d.next = true;
                } else {
                    self.full0.d.next = true;
                }
            }
        }
        if self.release.val() {
            self.read_bank.d.next = !self.read_bank.q.val();
            if self.read_bank.q.val() {
                self.full1.d.next = false;
            } else {
                self.full0.d.next = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycle(b: &mut Ingest) {
        b.clock.next = Clock { clk: false };
        assert!(simulate(b, 100));
        b.clock.next = Clock { clk: true };
        assert!(simulate(b, 100));
        b.clock.next = Clock { clk: false };
        assert!(simulate(b, 100));
    }

    #[test]
    fn double_buffers_sums_the_baseline_and_waits_for_release() {
        let (g, lanes) = (12, 2);
        let mut b = Ingest::new(lanes, g, crate::fixed::contract::BASELINE_GATES);
        b.connect_all();
        check_all(&b).unwrap();
        assert!(simulate(&mut b, 100));
        // Two groups fill both banks; a third waits.
        for grp in 0..2u64 {
            for k in 0..g {
                assert!(b.ready.val());
                b.valid.next = true;
                b.count[0].next = (k as u64 + 1 + 100 * grp).into();
                b.count[1].next = 65535.into();
                cycle(&mut b);
            }
            assert!(b.full.val());
        }
        assert!(!b.ready.val());
        b.valid.next = false;
        assert_eq!(b.s0[0].val().to_u64(), (1..=10).sum::<u64>());
        assert_eq!(b.s0[1].val().to_u64(), 10 * 65535);
        b.raddr.next = 11.into();
        for _ in 0..READ_LATENCY {
            cycle(&mut b);
        }
        assert_eq!(b.rdata[0].val().to_u64(), 12);
        b.release.next = true;
        cycle(&mut b);
        b.release.next = false;
        for _ in 0..READ_LATENCY {
            cycle(&mut b);
        }
        // The second group is now the one read; the first bank is free.
        assert!(b.ready.val() && b.full.val());
        assert_eq!(b.rdata[0].val().to_u64(), 112);
        assert_eq!(b.s0[0].val().to_u64(), (101..=110).sum::<u64>());
        b.release.next = true;
        cycle(&mut b);
        b.release.next = false;
        cycle(&mut b);
        assert!(b.ready.val() && !b.full.val());
    }
}
