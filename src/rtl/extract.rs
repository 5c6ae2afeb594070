//! Lifetime extraction (contract section 6), one lane after the other:
//! for channels 1 and 2 the ratio q = min(2^24 - 1, floor(T 2^16 / A)) on
//! the restoring divider (tau code 0 when A <= 0 or T <= 0), the tau code
//! as the number of thresholds THR[k] <= q by a 12-step binary search over
//! the threshold ROM, then the fraction floor((a1 2^16 + d) / (2 d)). Each
//! pixel's result (index, tau1, tau2, fraction) leaves on a valid/ready
//! stream in input order.

use super::divider::{divide_cycles, Divider};
use super::prim::Rom;
use super::protocol::{FractionCode, PixelIndex, TauCode};
use super::{Acc, Addr};
use crate::fixed::contract::{FRACTION_FRAC_BITS, FRACTION_ONE, RATIO_BITS};
use rust_hdl::prelude::*;

#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum ExtractState {
    Idle,
    /// The lane / channel just changed: its operands are being registered.
    Select,
    /// The operands are registered: their sign and zero tests are.
    Check,
    RatioStart,
    RatioWait,
    SearchAddr,
    /// The threshold ROM's output register (a block RAM's clock-to-out
    /// straight into the 24-bit compare was the critical path).
    SearchWait,
    SearchCmp,
    FracStart,
    FracWait,
    Emit,
}

#[derive(LogicBlock)]
pub struct Extract {
    pub clock: Signal<In, Clock>,
    pub load: Signal<In, Bit>,
    pub amp1: Vec<Signal<In, Acc>>,
    pub amp2: Vec<Signal<In, Acc>>,
    pub sum1: Vec<Signal<In, Acc>>,
    pub sum2: Vec<Signal<In, Acc>>,
    pub busy: Signal<Out, Bit>,
    pub out_valid: Signal<Out, Bit>,
    pub out_ready: Signal<In, Bit>,
    pub out_pixel: Signal<Out, PixelIndex>,
    pub out_tau1: Signal<Out, TauCode>,
    pub out_tau2: Signal<Out, TauCode>,
    pub out_fraction: Signal<Out, FractionCode>,
    state: DFF<ExtractState>,
    /// `state != Idle`, kept beside it: it is the clock enable of every
    /// lane's operand registers (four state bits and the load in front of
    /// that enable were P = 2's critical path, and then one LUT of it and
    /// the load with 7.5 ns of routing to the enables).
    running: DFF<Bit>,
    a1: Vec<DFF<Acc>>,
    a2: Vec<DFF<Acc>>,
    t1: Vec<DFF<Acc>>,
    t2: Vec<DFF<Acc>>,
    /// A second group's inputs, waiting (the two pixel sets finish one
    /// slot apart).
    pa1: Vec<DFF<Acc>>,
    pa2: Vec<DFF<Acc>>,
    pt1: Vec<DFF<Acc>>,
    pt2: Vec<DFF<Acc>>,
    pending: DFF<Bit>,
    lane: DFF<Addr>,
    channel: DFF<Bit>,
    tau1: DFF<Bits<12>>,
    tau2: DFF<Bits<12>>,
    fraction: DFF<Bits<16>>,
    ratio: DFF<Bits<32>>,
    found: DFF<Bits<12>>,
    probe_bit: DFF<Bits<4>>,
    pixel: DFF<Bits<32>>,
    /// The divider's start, registered (the state decode and `sel_bad` in
    /// front of the divider's control were P = 2's critical path).
    div_start: DFF<Bit>,
    /// The selected lane's (and channel's) operands, registered a cycle
    /// after `lane` / `channel` change (the P-way select and the decisions
    /// on it are two paths); the fraction's sums one and two cycles later.
    sel_amp: DFF<Acc>,
    sel_sum: DFF<Acc>,
    /// A <= 0 or T <= 0 for the registered operands, registered itself:
    /// the lane mux and the 48-bit zero tests in one path were P = 3's
    /// critical path, and the zero tests and the state decision on them
    /// P = 1, M = 96's (docs/hardware.md).
    sel_bad: DFF<Bit>,
    /// The fraction's denominator is not zero, registered for the same
    /// reason (denom_r is stable from the lane's Select on).
    denom_nz: DFF<Bit>,
    sel_pos1: DFF<Acc>,
    sel_pos2: DFF<Acc>,
    denom_r: DFF<Acc>,
    frac_num: DFF<Bits<64>>,
    divider: Divider,
    thresholds: Rom<24>,
    amp: Signal<Local, Acc>,
    sum: Signal<Local, Acc>,
    pos1: Signal<Local, Acc>,
    pos2: Signal<Local, Acc>,
    denom: Signal<Local, Acc>,
    candidate: Signal<Local, Bits<12>>,
    result: Signal<Local, Bits<12>>,
    one12: Constant<Bits<12>>,
    half: Constant<Bits<16>>,
    last_lane: Constant<Addr>,
    ratio_bits: Constant<Bits<8>>,
    fraction_bits: Constant<Bits<8>>,
    _lanes: usize,
}

impl Extract {
    pub fn new(lanes: usize, thresholds: &[i64]) -> Self {
        Extract {
            clock: Default::default(),
            load: Default::default(),
            amp1: super::many(lanes),
            amp2: super::many(lanes),
            sum1: super::many(lanes),
            sum2: super::many(lanes),
            busy: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            out_pixel: Default::default(),
            out_tau1: Default::default(),
            out_tau2: Default::default(),
            out_fraction: Default::default(),
            state: Default::default(),
            running: Default::default(),
            a1: super::many(lanes),
            a2: super::many(lanes),
            t1: super::many(lanes),
            t2: super::many(lanes),
            pa1: super::many(lanes),
            pa2: super::many(lanes),
            pt1: super::many(lanes),
            pt2: super::many(lanes),
            pending: Default::default(),
            lane: Default::default(),
            channel: Default::default(),
            tau1: Default::default(),
            tau2: Default::default(),
            fraction: Default::default(),
            ratio: Default::default(),
            found: Default::default(),
            probe_bit: Default::default(),
            pixel: Default::default(),
            div_start: Default::default(),
            sel_amp: Default::default(),
            sel_sum: Default::default(),
            sel_bad: Default::default(),
            denom_nz: Default::default(),
            sel_pos1: Default::default(),
            sel_pos2: Default::default(),
            denom_r: Default::default(),
            frac_num: Default::default(),
            divider: Divider::default(),
            thresholds: Rom::signed(thresholds).pipelined(),
            amp: Default::default(),
            sum: Default::default(),
            pos1: Default::default(),
            pos2: Default::default(),
            denom: Default::default(),
            candidate: Default::default(),
            result: Default::default(),
            one12: Constant::new(1.into()),
            half: Constant::new(((FRACTION_ONE / 2) as u64).into()),
            last_lane: Constant::new((lanes as u64 - 1).into()),
            ratio_bits: Constant::new((RATIO_BITS as u64).into()),
            fraction_bits: Constant::new((FRACTION_FRAC_BITS as u64 + 1).into()),
            _lanes: lanes,
        }
    }
}

/// Cycles the extraction spends on one lane when the result stream is ready
/// (both ratios computed and searched: the worst case).
pub fn extract_lane_cycles() -> usize {
    // Select, check, start, the start's register, divide, 12 search steps
    // of three cycles; the fraction's start and its register, divide, emit.
    let ratio = 4 + divide_cycles(RATIO_BITS as usize) + 12 * 3;
    2 * ratio + 2 + divide_cycles(FRACTION_FRAC_BITS as usize + 1) + 1
}

impl Logic for Extract {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, running, pending, lane, channel, tau1, tau2, fraction, ratio,
            found, probe_bit, pixel, div_start, sel_amp, sel_sum, sel_bad, sel_pos1, sel_pos2,
            denom_r, denom_nz, frac_num
        );
        self.divider.clock.next = self.clock.val();
        self.divider.start.next = self.div_start.q.val();
        self.div_start.d.next = false;
        self.thresholds.clock.next = self.clock.val();
        self.busy.next = self.pending.q.val();
        if self.load.val() && self.running.q.val() {
            self.pending.d.next = true;
        }
        self.out_valid.next = self.state.q.val() == ExtractState::Emit;
        self.out_pixel.next = self.pixel.q.val();
        self.out_tau1.next = self.tau1.q.val();
        self.out_tau2.next = self.tau2.q.val();
        self.out_fraction.next = self.fraction.q.val();
        self.amp.next = 0.into();
        self.sum.next = 0.into();
        self.pos1.next = 0.into();
        self.pos2.next = 0.into();
        for l in 0..self._lanes {
            self.a1[l].clock.next = self.clock.val();
            self.a2[l].clock.next = self.clock.val();
            self.t1[l].clock.next = self.clock.val();
            self.t2[l].clock.next = self.clock.val();
            self.a1[l].d.next = self.a1[l].q.val();
            self.a2[l].d.next = self.a2[l].q.val();
            self.t1[l].d.next = self.t1[l].q.val();
            self.t2[l].d.next = self.t2[l].q.val();
            self.pa1[l].clock.next = self.clock.val();
            self.pa2[l].clock.next = self.clock.val();
            self.pt1[l].clock.next = self.clock.val();
            self.pt2[l].clock.next = self.clock.val();
            self.pa1[l].d.next = self.pa1[l].q.val();
            self.pa2[l].d.next = self.pa2[l].q.val();
            self.pt1[l].d.next = self.pt1[l].q.val();
            self.pt2[l].d.next = self.pt2[l].q.val();
            // While idle the operands follow the lanes (or the waiting
            // group): the load or the pending group that starts a run is
            // the value they hold from then on. The waiting group's
            // registers take every load; they are read only when a load
            // came while running. So each enable is one register's output.
            if !self.running.q.val() {
                if self.pending.q.val() {
                    self.a1[l].d.next = self.pa1[l].q.val();
                    self.a2[l].d.next = self.pa2[l].q.val();
                    self.t1[l].d.next = self.pt1[l].q.val();
                    self.t2[l].d.next = self.pt2[l].q.val();
                } else {
                    self.a1[l].d.next = self.amp1[l].val();
                    self.a2[l].d.next = self.amp2[l].val();
                    self.t1[l].d.next = self.sum1[l].val();
                    self.t2[l].d.next = self.sum2[l].val();
                }
            }
            if self.load.val() {
                self.pa1[l].d.next = self.amp1[l].val();
                self.pa2[l].d.next = self.amp2[l].val();
                self.pt1[l].d.next = self.sum1[l].val();
                self.pt2[l].d.next = self.sum2[l].val();
            }
            if self.lane.q.val().index() == l {
                if self.channel.q.val() {
                    self.amp.next = self.a2[l].q.val();
                    self.sum.next = self.t2[l].q.val();
                } else {
                    self.amp.next = self.a1[l].q.val();
                    self.sum.next = self.t1[l].q.val();
                }
                if !self.a1[l].q.val().get_bit(47) {
                    self.pos1.next = self.a1[l].q.val();
                }
                if !self.a2[l].q.val().get_bit(47) {
                    self.pos2.next = self.a2[l].q.val();
                }
            }
        }
        self.sel_amp.d.next = self.amp.val();
        self.sel_sum.d.next = self.sum.val();
        self.sel_bad.d.next = self.sel_amp.q.val().get_bit(47)
            || !self.sel_amp.q.val().any()
            || self.sel_sum.q.val().get_bit(47)
            || !self.sel_sum.q.val().any();
        self.sel_pos1.d.next = self.pos1.val();
        self.sel_pos2.d.next = self.pos2.val();
        self.denom_r.d.next = self.sel_pos1.q.val() + self.sel_pos2.q.val();
        self.denom.next = self.denom_r.q.val();
        self.denom_nz.d.next = self.denom_r.q.val().any();
        self.frac_num.d.next = (bit_cast::<64, 48>(self.sel_pos1.q.val()) << 16)
            + bit_cast::<64, 48>(self.denom_r.q.val());
        self.candidate.next = self.found.q.val() | (self.one12.val() << self.probe_bit.q.val());
        self.thresholds.address.next = bit_cast::<16, 12>(self.candidate.val());
        self.result.next = self.found.q.val();
        if bit_cast::<32, 24>(self.thresholds.data.val()) <= self.ratio.q.val() {
            self.result.next = self.candidate.val();
        }
        self.divider.num.next = bit_cast::<64, 48>(self.sel_sum.q.val()) << 16;
        self.divider.den.next = bit_cast::<64, 48>(self.sel_amp.q.val());
        self.divider.qbits.next = self.ratio_bits.val();
        match self.state.q.val() {
            ExtractState::Idle => {
                if self.pending.q.val() {
                    self.pending.d.next = false;
                }
                if self.load.val() || self.pending.q.val() {
                    self.running.d.next = true;
                    self.lane.d.next = 0.into();
                    self.channel.d.next = false;
                    self.state.d.next = ExtractState::Select;
                }
            }
            ExtractState::Select => {
                self.state.d.next = ExtractState::Check;
            }
            ExtractState::Check => {
                self.state.d.next = ExtractState::RatioStart;
            }
            ExtractState::RatioStart => {
                if self.sel_bad.q.val() {
                    if self.channel.q.val() {
                        self.tau2.d.next = 0.into();
                        self.state.d.next = ExtractState::FracStart;
                    } else {
                        self.tau1.d.next = 0.into();
                        self.channel.d.next = true;
                        self.state.d.next = ExtractState::Select;
                    }
                } else {
                    self.div_start.d.next = true;
                    self.state.d.next = ExtractState::RatioWait;
                }
            }
            ExtractState::RatioWait => {
                if self.divider.done.val() {
                    self.ratio.d.next = self.divider.quotient.val();
                    self.found.d.next = 0.into();
                    self.probe_bit.d.next = 11.into();
                    self.state.d.next = ExtractState::SearchAddr;
                }
            }
            ExtractState::SearchAddr => {
                self.state.d.next = ExtractState::SearchWait;
            }
            ExtractState::SearchWait => {
                self.state.d.next = ExtractState::SearchCmp;
            }
            ExtractState::SearchCmp => {
                self.found.d.next = self.result.val();
                self.probe_bit.d.next = self.probe_bit.q.val() - 1;
                self.state.d.next = ExtractState::SearchAddr;
                if !self.probe_bit.q.val().any() {
                    if self.channel.q.val() {
                        self.tau2.d.next = self.result.val();
                        self.state.d.next = ExtractState::FracStart;
                    } else {
                        self.tau1.d.next = self.result.val();
                        self.channel.d.next = true;
                        self.state.d.next = ExtractState::Select;
                    }
                }
            }
            ExtractState::FracStart => {
                self.divider.num.next = self.frac_num.q.val();
                self.divider.den.next = bit_cast::<64, 48>(self.denom.val()) << 1;
                self.divider.qbits.next = self.fraction_bits.val();
                if self.denom_nz.q.val() {
                    self.div_start.d.next = true;
                    self.state.d.next = ExtractState::FracWait;
                } else {
                    self.fraction.d.next = self.half.val();
                    self.state.d.next = ExtractState::Emit;
                }
            }
            ExtractState::FracWait => {
                self.divider.num.next = self.frac_num.q.val();
                self.divider.den.next = bit_cast::<64, 48>(self.denom.val()) << 1;
                self.divider.qbits.next = self.fraction_bits.val();
                if self.divider.done.val() {
                    self.fraction.d.next = bit_cast::<16, 32>(self.divider.quotient.val());
                    self.state.d.next = ExtractState::Emit;
                }
            }
            ExtractState::Emit => {
                if self.out_ready.val() {
                    self.pixel.d.next = self.pixel.q.val() + 1;
                    self.lane.d.next = self.lane.q.val() + 1;
                    self.channel.d.next = false;
                    self.state.d.next = ExtractState::Select;
                    if self.lane.q.val() == self.last_lane.val() {
                        self.state.d.next = ExtractState::Idle;
                        self.running.d.next = false;
                    }
                }
            }
            _ => {
                self.state.d.next = ExtractState::Idle;
                self.running.d.next = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::contract::{fraction_code, tau_code, tau_thresholds};
    use crate::rtl::prim::tc;
    use rand::{Rng, SeedableRng};

    /// Amplitudes and sums at the corners of section 6, then random ones.
    fn cases(rng: &mut impl Rng) -> Vec<[i64; 4]> {
        let big = (1i64 << 33) - 1;
        let mut v = vec![
            [0, 0, 0, 0],
            [-5, 100, 7, -1],
            [1, 1 << 42, 1, 1],
            [big, big * 135, -big, big],
            [3, 3, 5, 1000],
            [1000, 999, 1000, 1001],
            [7, 0, 0, 9],
            [2, 1, 1, 2],
        ];
        for _ in 0..40 {
            let a = |r: &mut dyn rand::RngCore| match r.gen_range(0..4) {
                0 => r.gen_range(-big..=big),
                1 => r.gen_range(1..1000),
                2 => r.gen_range(-10..=10),
                _ => r.gen_range(1 << 20..1 << 33),
            };
            let a1 = a(rng);
            let a2 = a(rng);
            let s1 = a1.saturating_mul(rng.gen_range(-2..200)) + rng.gen_range(-100..100);
            let s2 = a2.saturating_mul(rng.gen_range(-2..200)) + rng.gen_range(-100..100);
            v.push([a1, s1, a2, s2]);
        }
        v
    }

    #[test]
    fn matches_the_contract() {
        let thr = tau_thresholds(135, 0.09);
        let lanes = 3;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let all = cases(&mut rng);
        let mut x = Extract::new(lanes, &thr);
        x.connect_all();
        check_all(&x).unwrap();
        let mut got = Vec::new();
        let mut next = 0;
        let mut cycles = 0;
        while got.len() < all.len() {
            x.load.next = false;
            if !x.busy.val() && next < all.len() && cycles % 7 == 0 {
                for l in 0..lanes {
                    let c = all[(next + l).min(all.len() - 1)];
                    x.amp1[l].next = tc(c[0]);
                    x.sum1[l].next = tc(c[1]);
                    x.amp2[l].next = tc(c[2]);
                    x.sum2[l].next = tc(c[3]);
                }
                x.load.next = true;
                next += lanes;
            }
            x.out_ready.next = cycles % 3 != 0;
            x.clock.next = Clock { clk: false };
            assert!(simulate(&mut x, 100));
            if x.out_valid.val() && x.out_ready.val() {
                got.push((
                    x.out_pixel.val().to_u64() as usize,
                    x.out_tau1.val().to_u64() as u32,
                    x.out_tau2.val().to_u64() as u32,
                    x.out_fraction.val().to_u64() as u32,
                ));
            }
            x.clock.next = Clock { clk: true };
            assert!(simulate(&mut x, 100));
            cycles += 1;
            assert!(cycles < 200_000);
        }
        for (i, g) in got.iter().enumerate() {
            let c = all[i.min(all.len() - 1)];
            let want = (
                i,
                tau_code(&thr, c[0], c[1]),
                tau_code(&thr, c[2], c[3]),
                fraction_code(c[0], c[2]),
            );
            assert_eq!(*g, want, "case {c:?}");
        }
        assert!(got.iter().any(|g| g.1 == 4095) && got.iter().any(|g| g.1 > 0 && g.1 < 4095));
    }
}
