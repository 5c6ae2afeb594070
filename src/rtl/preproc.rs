//! Preprocessing per the contract (section 1) on the ingested raw counts,
//! all lanes in lockstep: a pass for the peak of `y_k = max(0, B' c_k -
//! S0)` (B' = max(B, 1), B the grid's baseline window; B' c_k is a sum of
//! shifted copies of c_k, one per set bit of B', so no multiplier),
//! then per gate the exact division `x_k = min(QMAX, floor((2^W y_k + P) /
//! (2P)))` on a restoring divider (W quotient bits; 0 when P = 0), written
//! into the GRU's input buffer of the pixel set the group goes to (sets
//! alternate 0, 1, 0, ...). The buffer is written only once the GRU has
//! freed it, so preprocessing of the next group overlaps the GRU compute.

use super::divider::{divide_cycles, Divider};
use super::ingest::READ_LATENCY;
use super::{Addr, Code, Count};
use crate::data::MAX_BASELINE_GATES;
use crate::fixed::contract::Format;
use rust_hdl::prelude::*;

#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum PreprocState {
    Idle,
    Peak,
    WaitBuffer,
    DivRead,
    DivStart,
    DivWait,
}

#[derive(LogicBlock)]
pub struct Preproc {
    pub clock: Signal<In, Clock>,
    /// From ingest.
    pub full: Signal<In, Bit>,
    pub release: Signal<Out, Bit>,
    pub raddr: Signal<Out, Addr>,
    pub rdata: Vec<Signal<In, Count>>,
    pub s0: Vec<Signal<In, Bits<24>>>,
    /// From the GRU: input buffer of set 0 / 1 is free.
    pub x_free0: Signal<In, Bit>,
    pub x_free1: Signal<In, Bit>,
    /// Input buffer write port and the "set filled" pulse.
    pub x_we: Signal<Out, Bit>,
    pub x_set: Signal<Out, Bit>,
    pub x_addr: Signal<Out, Addr>,
    pub x_data: Vec<Signal<Out, Code>>,
    pub x_done: Signal<Out, Bit>,
    state: DFF<PreprocState>,
    gate: DFF<Addr>,
    /// gate == the last gate, registered: in DivWait the gate has not
    /// changed for at least READ_LATENCY + 2 cycles, so the end-of-group
    /// test (release, x_done: a wide fan-out into ingest and the GRU) starts
    /// from a register, not from a compare (W = 8, P = 2's critical path
    /// under a DSP floorplan: gate -> compare -> release -> ingest sum0).
    gate_last: DFF<Bit>,
    set: DFF<Bit>,
    peak: Vec<DFF<Bits<24>>>,
    /// peak != 0, kept beside it (some y > 0 seen since the reset) so the
    /// output select does not wait for a 24-bit zero test of the peak
    /// (W = 8, M = 32's critical path: peak -> zero test -> x_data).
    peak_nz: Vec<DFF<Bit>>,
    divider: Vec<Divider>,
    /// B' c_k.
    scaled_c: Vec<Signal<Local, Bits<24>>>,
    /// All ones where bit i of B' is set, else 0 (B' < 2^SCALE_BITS).
    scale_mask: Vec<Constant<Bits<24>>>,
    y: Vec<Signal<Local, Bits<24>>>,
    /// y of the count that arrived in the previous cycle: the count's
    /// arithmetic is one path, the peak compare / divider load another.
    y_reg: Vec<DFF<Bits<24>>>,
    /// The count arriving in one / now, and y arriving now, belong to the
    /// peak pass (the ingest read takes READ_LATENCY cycles, y one more).
    peak_count0: DFF<Bit>,
    peak_count: DFF<Bit>,
    peak_read: DFF<Bit>,
    /// Cycles spent waiting for a gate's y (READ_LATENCY + 1 from its address).
    read_wait: DFF<Bits<2>>,
    free: Signal<Local, Bit>,
    lane_raw: Signal<Local, Count>,
    lane_c: Signal<Local, Bits<24>>,
    lane_y: Signal<Local, Bits<24>>,
    lane_peak: Signal<Local, Bits<24>>,
    lane_q: Signal<Local, Bits<32>>,
    last_gate: Constant<Addr>,
    w_bits: Constant<Bits<8>>,
    qmax: Constant<Bits<32>>,
    _lanes: usize,
}

impl Preproc {
    /// Section 1 of the contract for the activation format of `fmt` (codes
    /// with Wa - 1 fraction bits, saturated at its QMAX) and a baseline
    /// window of `baseline_gates` (the grid's).
    pub fn new(lanes: usize, gates: usize, fmt: Format, baseline_gates: usize) -> Self {
        assert!(baseline_gates <= MAX_BASELINE_GATES, "baseline window");
        let bits = fmt.act_bits;
        let scale = baseline_gates.max(1);
        Preproc {
            clock: Default::default(),
            full: Default::default(),
            release: Default::default(),
            raddr: Default::default(),
            rdata: super::many(lanes),
            s0: super::many(lanes),
            x_free0: Default::default(),
            x_free1: Default::default(),
            x_we: Default::default(),
            x_set: Default::default(),
            x_addr: Default::default(),
            x_data: super::many(lanes),
            x_done: Default::default(),
            state: Default::default(),
            gate: Default::default(),
            gate_last: Default::default(),
            set: Default::default(),
            peak: super::many(lanes),
            peak_nz: super::many(lanes),
            divider: (0..lanes).map(|_| Divider::default()).collect(),
            scaled_c: super::many(lanes),
            scale_mask: (0..SCALE_BITS)
                .map(|i| {
                    let ones = if scale >> i & 1 == 1 {
                        (1u64 << 24) - 1
                    } else {
                        0
                    };
                    Constant::new(ones.into())
                })
                .collect(),
            y: super::many(lanes),
            y_reg: super::many(lanes),
            peak_count0: Default::default(),
            peak_count: Default::default(),
            read_wait: Default::default(),
            peak_read: Default::default(),
            free: Default::default(),
            lane_raw: Default::default(),
            lane_c: Default::default(),
            lane_y: Default::default(),
            lane_peak: Default::default(),
            lane_q: Default::default(),
            last_gate: Constant::new((gates as u64 - 1).into()),
            w_bits: Constant::new((bits as u64).into()),
            qmax: Constant::new((fmt.qmax() as u64).into()),
            _lanes: lanes,
        }
    }
}

/// Bits of B' = max(B, 1) <= MAX_BASELINE_GATES.
const SCALE_BITS: usize = 7;
const _: () = assert!(MAX_BASELINE_GATES < 1 << SCALE_BITS);

/// Cycles the preprocessor spends on one group after ingest (cycle model).
pub fn preproc_cycles(gates: usize, bits: u32) -> usize {
    // Idle, the peak pass, one buffer wait, then per gate the start cycle
    // and the divider, and READ_LATENCY + 1 cycles for the read and y (the
    // buffer wait is the first gate's first).
    let read = READ_LATENCY + 1;
    1 + gates + 1 + gates * (1 + divide_cycles(bits as usize)) + (read * gates - 1)
}

// The peak flags and the read wait are written for this read latency.
const _: () = assert!(READ_LATENCY == 2);

impl Logic for Preproc {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            state,
            gate,
            gate_last,
            set,
            peak_count0,
            peak_count,
            peak_read,
            read_wait
        );
        self.gate_last.d.next = self.gate.q.val() == self.last_gate.val();
        self.peak_count0.d.next = self.state.q.val() == PreprocState::Peak;
        self.peak_count.d.next = self.peak_count0.q.val();
        self.peak_read.d.next = self.peak_count.q.val();
        self.release.next = false;
        self.x_done.next = false;
        self.x_we.next = false;
        self.x_set.next = self.set.q.val();
        self.x_addr.next = self.gate.q.val();
        self.raddr.next = self.gate.q.val();
        self.free.next =
            (self.set.q.val() && self.x_free1.val()) || (!self.set.q.val() && self.x_free0.val());
        for l in 0..self._lanes {
            self.peak[l].clock.next = self.clock.val();
            self.peak[l].d.next = self.peak[l].q.val();
            self.peak_nz[l].clock.next = self.clock.val();
            self.peak_nz[l].d.next = self.peak_nz[l].q.val();
            self.divider[l].clock.next = self.clock.val();
            self.divider[l].start.next = false;
            self.divider[l].qbits.next = self.w_bits.val();
            self.lane_raw.next = self.rdata[l].val();
            self.lane_c.next = bit_cast::<24, 16>(self.lane_raw.val());
            self.scaled_c[l].next = (self.lane_c.val() & self.scale_mask[0].val())
                + ((self.lane_c.val() & self.scale_mask[1].val()) << 1)
                + ((self.lane_c.val() & self.scale_mask[2].val()) << 2)
                + ((self.lane_c.val() & self.scale_mask[3].val()) << 3)
                + ((self.lane_c.val() & self.scale_mask[4].val()) << 4)
                + ((self.lane_c.val() & self.scale_mask[5].val()) << 5)
                + ((self.lane_c.val() & self.scale_mask[6].val()) << 6);
            self.y[l].next = 0.into();
            if self.scaled_c[l].val() >= self.s0[l].val() {
                self.y[l].next = self.scaled_c[l].val() - self.s0[l].val();
            }
            self.y_reg[l].clock.next = self.clock.val();
            self.y_reg[l].d.next = self.y[l].val();
            if self.peak_read.q.val() && (self.y_reg[l].q.val() > self.peak[l].q.val()) {
                self.peak[l].d.next = self.y_reg[l].q.val();
            }
            if self.peak_read.q.val() && self.y_reg[l].q.val().any() {
                self.peak_nz[l].d.next = true;
            }
            self.lane_y.next = self.y_reg[l].q.val();
            self.lane_peak.next = self.peak[l].q.val();
            self.divider[l].num.next = (bit_cast::<64, 24>(self.lane_y.val()) << self.w_bits.val())
                + bit_cast::<64, 24>(self.lane_peak.val());
            self.divider[l].den.next = bit_cast::<64, 24>(self.lane_peak.val()) << 1;
            self.lane_q.next = self.divider[l].quotient.val();
            self.x_data[l].next = 0.into();
            if self.peak_nz[l].q.val() {
                if self.lane_q.val() > self.qmax.val() {
                    self.x_data[l].next = bit_cast::<18, 32>(self.qmax.val());
                } else {
                    self.x_data[l].next = bit_cast::<18, 32>(self.lane_q.val());
                }
            }
        }
        match self.state.q.val() {
            PreprocState::Idle => {
                if self.full.val() {
                    self.gate.d.next = 0.into();
                    self.state.d.next = PreprocState::Peak;
                    for l in 0..self._lanes {
                        self.peak[l].d.next = 0.into();
                        self.peak_nz[l].d.next = false;
                    }
                }
            }
            PreprocState::Peak => {
                self.gate.d.next = self.gate.q.val() + 1;
                if self.gate.q.val() == self.last_gate.val() {
                    self.gate.d.next = 0.into();
                    self.state.d.next = PreprocState::WaitBuffer;
                }
            }
            PreprocState::WaitBuffer => {
                if self.free.val() {
                    self.read_wait.d.next = 1.into();
                    self.state.d.next = PreprocState::DivRead;
                }
            }
            PreprocState::DivRead => {
                // READ_LATENCY + 1 cycles from the address (asserted below).
                self.read_wait.d.next = self.read_wait.q.val() + 1;
                if self.read_wait.q.val() == 2 {
                    self.state.d.next = PreprocState::DivStart;
                }
            }
            PreprocState::DivStart => {
                for l in 0..self._lanes {
                    self.divider[l].start.next = true;
                }
                self.state.d.next = PreprocState::DivWait;
            }
            PreprocState::DivWait => {
                if self.divider[0].done.val() {
                    self.x_we.next = true;
                    self.gate.d.next = self.gate.q.val() + 1;
                    self.read_wait.d.next = 0.into();
                    self.state.d.next = PreprocState::DivRead;
                    if self.gate_last.q.val() {
                        self.gate.d.next = 0.into();
                        self.x_done.next = true;
                        self.release.next = true;
                        self.set.d.next = !self.set.q.val();
                        self.state.d.next = PreprocState::Idle;
                    }
                }
            }
            _ => {
                self.state.d.next = PreprocState::Idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::contract::{preprocess, COUNT_MAX};
    use crate::rtl::ingest::Ingest;
    use crate::rtl::prim::sx;
    use rand::{Rng, SeedableRng};

    /// Ingest + preprocessing on their own: the x codes written into the
    /// input buffer equal the contract's preprocessing.
    #[test]
    fn matches_the_contract() {
        let (g, lanes) = (14, 2);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (bits, base) in [(4u32, 10), (8, 10), (16, 10), (8, 0), (8, 2), (16, 13)] {
            let mut hist: Vec<Vec<u32>> = vec![
                vec![0; g],
                vec![COUNT_MAX; g],
                (0..g).map(|k| if k == 12 { 1 } else { 0 }).collect(),
                (0..g).map(|k| if k == 3 { COUNT_MAX } else { 2 }).collect(),
            ];
            for _ in 0..4 {
                hist.push((0..g).map(|_| rng.gen_range(0..=COUNT_MAX)).collect());
            }
            let mut ing = Ingest::new(lanes, g, base);
            let mut pre = Preproc::new(lanes, g, Format::new(bits).unwrap(), base);
            ing.connect_all();
            pre.connect_all();
            let mut got: Vec<Vec<i64>> = vec![vec![0; g]; hist.len()];
            let (mut beat, mut done_groups, mut cycles) = (0usize, 0usize, 0);
            let groups = hist.len() / lanes;
            while done_groups < groups {
                ing.valid.next = beat < groups * g;
                for l in 0..lanes {
                    let p = (beat / g).min(groups - 1) * lanes + l;
                    ing.count[l].next = (hist[p][beat % g] as u64).into();
                }
                for _ in 0..4 {
                    ing.release.next = pre.release.val();
                    ing.raddr.next = pre.raddr.val();
                    pre.full.next = ing.full.val();
                    for l in 0..lanes {
                        pre.rdata[l].next = ing.rdata[l].val();
                        pre.s0[l].next = ing.s0[l].val();
                    }
                    pre.x_free0.next = true;
                    pre.x_free1.next = true;
                    ing.clock.next = Clock { clk: false };
                    pre.clock.next = Clock { clk: false };
                    assert!(simulate(&mut ing, 100));
                    assert!(simulate(&mut pre, 100));
                }
                if ing.valid.val() && ing.ready.val() {
                    beat += 1;
                }
                if pre.x_we.val() {
                    let k = pre.x_addr.val().index();
                    for l in 0..lanes {
                        got[done_groups * lanes + l][k] = sx(pre.x_data[l].val());
                    }
                }
                if pre.x_done.val() {
                    assert_eq!(pre.x_set.val(), done_groups % 2 == 1);
                    done_groups += 1;
                }
                ing.clock.next = Clock { clk: true };
                pre.clock.next = Clock { clk: true };
                assert!(simulate(&mut ing, 100));
                assert!(simulate(&mut pre, 100));
                cycles += 1;
                assert!(cycles < 100_000);
            }
            let fmt = crate::fixed::Format::new(bits).unwrap();
            for (h, x) in hist.iter().zip(&got) {
                let mut want = vec![0; g];
                preprocess(fmt, base, h, &mut want);
                assert_eq!(x, &want, "W {bits}, B {base}: {h:?}");
            }
        }
    }
}
