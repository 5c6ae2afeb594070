//! The fixed-point contract of docs/fixed-point.md as constants and scalar
//! functions. Every width and rounding lives here once; the golden model,
//! the QAT forward pass and the circuit generators read them from here.

use anyhow::{bail, Result};
use num_traits::{AsPrimitive, PrimInt, Signed};

/// Gate counts are saturated to the 16-bit ingest width.
pub const COUNT_MAX: u32 = 65_535;
/// Default baseline window, the gates summed for the baseline (a grid's
/// `baseline_gates` sets the model's own, 0..=64).
pub const BASELINE_GATES: usize = crate::data::preprocess::BASELINE_GATES;
/// Largest per-tensor exponent: weights up to |w| < 8.
pub const E_MAX: u32 = 3;
/// Smallest and largest supported bit widths.
pub const MIN_BITS: u32 = 4;
pub const MAX_BITS: u32 = 16;
/// Fraction bits of the tau codes: tau = code / 256 ns.
pub const TAU_FRAC_BITS: u32 = 8;
/// Width of the tau codes; codes 0..TAU_CODES.
pub const TAU_BITS: u32 = 12;
pub const TAU_CODES: usize = 1 << TAU_BITS;
/// Fraction bits of the sum-over-amplitude ratio q.
pub const RATIO_FRAC_BITS: u32 = 16;
/// Width of q (saturated): ratios up to 256.
pub const RATIO_BITS: u32 = 24;
pub const RATIO_MAX: i64 = (1 << RATIO_BITS) - 1;
/// Fraction bits of the fraction code: fraction = code / 32768.
pub const FRACTION_FRAC_BITS: u32 = 15;
pub const FRACTION_ONE: u32 = 1 << FRACTION_FRAC_BITS;
/// Largest gate count the contract (and its widths) allow.
pub const MAX_GATES: usize = 1024;
/// Largest hidden size the contract allows.
pub const MAX_HIDDEN: usize = 512;

/// Round half up: floor((v + 2^(s-1)) / 2^s), s >= 1.
#[inline(always)]
pub fn rshr(v: i64, s: u32) -> i64 {
    (v + (1i64 << (s - 1))) >> s
}

/// Saturate to [lo, hi] (every narrowing; never wrap).
#[inline(always)]
pub fn sat(v: i64, lo: i64, hi: i64) -> i64 {
    v.clamp(lo, hi)
}

/// One narrowing of the GRU step, `sat((v + offset) >> shift, lo, hi)`
/// (arithmetic shift): the constants the golden model computes with
/// ([`Format::ops`]) and the circuits wire (src/rtl/lane.rs, head.rs),
/// defined once by [`Format::gate_narrow`], [`Format::candidate_narrow`],
/// [`Format::state_narrow`] and [`Format::head_narrow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Narrow {
    pub offset: i64,
    pub shift: u32,
    pub lo: i64,
    pub hi: i64,
}

impl Narrow {
    pub fn apply(&self, v: i64) -> i64 {
        sat((v + self.offset) >> self.shift, self.lo, self.hi)
    }
}

/// The widths of one build: weights on Ww = `bits` bits, activations and
/// state (inputs, gates, reset product, candidate, state) on
/// Wa = `act_bits` bits. `Format::new(W)` is the uniform W-bit contract
/// (Ww = Wa = W); `Format::mixed(Ww, Wa)` the mixed one (docs/fixed-point.md
/// section 9). Every derived width and rounding constant comes from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Format {
    /// Weight width Ww.
    pub bits: u32,
    /// Activation and state width Wa (>= Ww).
    pub act_bits: u32,
}

impl Format {
    /// The uniform contract: weights and activations on `bits` bits.
    pub fn new(bits: u32) -> Result<Format> {
        Self::mixed(bits, bits)
    }

    /// Weights on `weight_bits`, activations and state on `act_bits`.
    pub fn mixed(weight_bits: u32, act_bits: u32) -> Result<Format> {
        let range = MIN_BITS..=MAX_BITS;
        if !range.contains(&weight_bits) || !range.contains(&act_bits) {
            if weight_bits == act_bits {
                bail!("bit width {weight_bits} is outside the contract's range {MIN_BITS}..={MAX_BITS}");
            }
            bail!(
                "widths W{weight_bits}A{act_bits} (weights {weight_bits}, activations {act_bits} bits): each must be in {MIN_BITS}..={MAX_BITS}"
            );
        }
        if act_bits < weight_bits {
            bail!(
                "widths W{weight_bits}A{act_bits}: activations ({act_bits} bits) narrower than weights ({weight_bits} bits) are not in the contract"
            );
        }
        let f = Format {
            bits: weight_bits,
            act_bits,
        };
        // The widest accumulator (MAX_HIDDEN units) must fit the golden
        // model's i64 with the head's headroom.
        if f.acc_bits(MAX_HIDDEN) > 62 {
            bail!(
                "widths W{weight_bits}A{act_bits}: the accumulator needs {} bits, more than the contract's 62",
                f.acc_bits(MAX_HIDDEN)
            );
        }
        Ok(f)
    }

    /// Ww == Wa.
    pub fn is_uniform(&self) -> bool {
        self.bits == self.act_bits
    }

    /// "W8" for a uniform format, "W8A12" for a mixed one.
    pub fn name(&self) -> String {
        if self.is_uniform() {
            format!("W{}", self.bits)
        } else {
            format!("W{}A{}", self.bits, self.act_bits)
        }
    }

    /// S = 2^(Wa-1): the state grid's one.
    #[inline(always)]
    pub fn one(&self) -> i64 {
        1 << (self.act_bits - 1)
    }

    /// QMAX = 2^(Wa-1) - 1: largest symmetric state code.
    #[inline(always)]
    pub fn qmax(&self) -> i64 {
        self.one() - 1
    }

    /// 2^(Ww-1) - 1: largest symmetric weight code.
    #[inline(always)]
    pub fn weight_qmax(&self) -> i64 {
        (1 << (self.bits - 1)) - 1
    }

    /// Fraction bits of every accumulator: Ww + Wa - 2.
    #[inline(always)]
    pub fn acc_frac(&self) -> u32 {
        self.bits + self.act_bits - 2
    }

    /// Accumulator width (signed) for `hidden` units: Ww + Wa + 3 + ceil(log2(H + 2)).
    pub fn acc_bits(&self, hidden: usize) -> u32 {
        self.bits + self.act_bits + 3 + ceil_log2(hidden as u64 + 2)
    }

    /// Operand codes of the step (signed): states and inputs on Wa bits,
    /// gates 0..=S and differences h - c, so Wa + 1.
    pub fn operand_bits(&self) -> u32 {
        self.act_bits + 1
    }

    /// The state-grid products before [`Format::state_narrow`] (signed):
    /// r h and S c + z (h - c), 2 Wa + 3.
    pub fn state_product_bits(&self) -> u32 {
        2 * self.act_bits + 3
    }

    /// Head outputs: Ww + Wa + 2 bits signed, saturated to +-OMAX.
    pub fn head_bits(&self) -> u32 {
        self.acc_frac() + 4
    }

    #[inline(always)]
    pub fn head_max(&self) -> i64 {
        (1i64 << (self.acc_frac() + 3)) - 1
    }

    /// Width of the per-channel sum over `gates` head outputs.
    pub fn channel_sum_bits(&self, gates: usize) -> u32 {
        self.head_bits() + ceil_log2(gates as u64)
    }

    /// Left shift of a bias code onto the accumulator grid (on top of its
    /// exponent): Wa - 1.
    pub fn bias_shift(&self) -> u32 {
        self.act_bits - 1
    }

    /// The hard sigmoid's narrowing: the accumulator (fraction Ww + Wa - 2)
    /// plus 0.5 onto the gate grid [0, S], rounded half up.
    pub fn gate_narrow(&self) -> Narrow {
        Narrow {
            offset: (1i64 << self.acc_frac()) + (1i64 << (self.bits - 1)),
            shift: self.bits,
            lo: 0,
            hi: self.one(),
        }
    }

    /// The clipped-identity candidate's narrowing: the accumulator onto
    /// the state grid, saturated to +-QMAX.
    pub fn candidate_narrow(&self) -> Narrow {
        Narrow {
            offset: 1i64 << (self.bits - 2),
            shift: self.bits - 1,
            lo: -self.qmax(),
            hi: self.qmax(),
        }
    }

    /// A product of two state-grid codes (the reset product r h, the
    /// update S c + z (h - c)) back onto the state grid, saturated.
    pub fn state_narrow(&self) -> Narrow {
        Narrow {
            offset: 1i64 << (self.act_bits - 2),
            shift: self.act_bits - 1,
            lo: -self.qmax(),
            hi: self.qmax(),
        }
    }

    /// The head outputs: the accumulator saturated to +-OMAX, no shift.
    pub fn head_narrow(&self) -> Narrow {
        Narrow {
            offset: 0,
            shift: 0,
            lo: -self.head_max(),
            hi: self.head_max(),
        }
    }

    /// The step arithmetic's constants in integer type `T`.
    #[inline(always)]
    pub fn ops<T: PrimInt + 'static>(&self) -> Ops<T>
    where
        i64: AsPrimitive<T>,
    {
        self.ops_narrowed(&Narrowing::default())
    }

    /// [`Format::ops`] with the precision probe's extra narrowings (none
    /// in a build; see [`Narrowing`]).
    #[inline(always)]
    pub fn ops_narrowed<T: PrimInt + 'static>(&self, n: &Narrowing) -> Ops<T>
    where
        i64: AsPrimitive<T>,
    {
        let (gate, cand, state) = (
            self.gate_narrow(),
            self.candidate_narrow(),
            self.state_narrow(),
        );
        Ops {
            narrowing: *n,
            head_max: self.head_max().as_(),
            gate_shift: gate.shift as usize,
            acc_shift: cand.shift as usize,
            state_shift: state.shift as usize,
            one: gate.hi.as_(),
            qmax: state.hi.as_(),
            gate_offset: gate.offset.as_(),
            half_acc: cand.offset.as_(),
            half_state: state.offset.as_(),
        }
    }

    /// Hard sigmoid of a gate pre-activation (see [`Ops::gate`]).
    pub fn gate(&self, a: i64) -> i64 {
        self.ops::<i64>().gate(a)
    }

    /// Reset product (see [`Ops::reset`]).
    pub fn reset(&self, r: i64, h: i64) -> i64 {
        self.ops::<i64>().reset(r, h)
    }

    /// Candidate (see [`Ops::candidate`]).
    pub fn candidate(&self, a: i64) -> i64 {
        self.ops::<i64>().candidate(a)
    }

    /// State update (see [`Ops::update`]).
    pub fn update(&self, z: i64, h: i64, c: i64) -> i64 {
        self.ops::<i64>().update(z, h, c)
    }

    /// Head output saturation.
    #[inline(always)]
    pub fn head(&self, a: i64) -> i64 {
        let m = self.head_max();
        sat(a, -m, m)
    }

    /// Decoded value of a state/input/gate code.
    pub fn state_value(&self, code: i64) -> f64 {
        code as f64 / self.one() as f64
    }

    /// Decoded value of a head output code.
    pub fn head_value(&self, code: i64) -> f64 {
        code as f64 / (1i64 << self.acc_frac()) as f64
    }
}

/// The four nonlinear steps of section 4, in any integer type wide enough
/// for the accumulator (the golden model runs them in i32 or i64 over
/// lanes of pixels; the results are the same integers).
#[derive(Clone, Copy, Debug)]
pub struct Ops<T> {
    /// Ww: the hard sigmoid's shift from the accumulator to the gate grid.
    gate_shift: usize,
    /// Ww - 1: accumulator (frac Ww + Wa - 2) onto the state grid.
    acc_shift: usize,
    /// Wa - 1: a product of two state-grid codes back onto the state grid.
    state_shift: usize,
    one: T,
    qmax: T,
    /// 2^(Ww+Wa-2) (the hard sigmoid's +0.5) plus the rounding half of 2^Ww.
    gate_offset: T,
    /// Rounding halves of the two narrowing shifts.
    half_acc: T,
    half_state: T,
    /// Saturation bound of the head outputs.
    head_max: T,
    /// The precision probe's coarser grids (all 0 in a build).
    narrowing: Narrowing,
}

/// The precision budget's probe (docs/precision.md): points of the step
/// computed on the format's activation grid and then rounded onto a grid
/// `shift` bits coarser (round half up, saturated to the coarse grid's
/// range), so one student can be run with every point narrow but one. All
/// zero (the default) is the contract itself; no circuit builds a probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Narrowing {
    /// Input codes x (section 1).
    pub input: u32,
    /// Update and reset gates z, r.
    pub gates: u32,
    /// The reset product r h.
    pub reset: u32,
    /// The candidate.
    pub candidate: u32,
    /// The hidden state h.
    pub state: u32,
    /// The head outputs.
    pub head: u32,
}

impl Narrowing {
    /// Every activation point of `fmt` narrowed onto `bits`, except the
    /// points `keep` names ("input", "gates", "reset", "candidate",
    /// "state", "head").
    pub fn to_bits_except(fmt: Format, bits: u32, keep: &[&str]) -> Result<Narrowing> {
        if bits < MIN_BITS || bits > fmt.act_bits {
            bail!(
                "narrowing {} onto {bits} bits: must be in {MIN_BITS}..={}",
                fmt.name(),
                fmt.act_bits
            );
        }
        let d = fmt.act_bits - bits;
        let mut n = Narrowing {
            input: d,
            gates: d,
            reset: d,
            candidate: d,
            state: d,
            head: d,
        };
        for k in keep {
            *match *k {
                "input" => &mut n.input,
                "gates" => &mut n.gates,
                "reset" => &mut n.reset,
                "candidate" => &mut n.candidate,
                "state" => &mut n.state,
                "head" => &mut n.head,
                other => bail!(
                    "unknown quantisation point {other:?} (input, gates, reset, candidate, state, head)"
                ),
            } = 0;
        }
        Ok(n)
    }

    /// Whether this is the contract itself.
    pub fn is_none(&self) -> bool {
        *self == Narrowing::default()
    }

    /// Shifts must leave at least [`MIN_BITS`] bits of `fmt`'s activations.
    pub fn validate(&self, fmt: Format) -> Result<()> {
        let most = fmt.act_bits - MIN_BITS;
        for (name, s) in [
            ("input", self.input),
            ("gates", self.gates),
            ("reset", self.reset),
            ("candidate", self.candidate),
            ("state", self.state),
            ("head", self.head),
        ] {
            if s > most {
                bail!(
                    "narrowing the {name} of {} by {s} bits leaves fewer than {MIN_BITS}",
                    fmt.name()
                );
            }
        }
        Ok(())
    }
}

impl<T: PrimInt + Signed> Ops<T> {
    /// Hard sigmoid: sat(rshr(a + 2^(Ww+Wa-2), Ww), 0, S).
    #[inline(always)]
    pub fn gate(&self, a: T) -> T {
        let g = ((a + self.gate_offset) >> self.gate_shift)
            .max(T::zero())
            .min(self.one);
        self.coarsen(g, self.narrowing.gates, self.one, false)
    }

    /// Reset product on the state grid: sat(rshr(r h, Wa-1), +-QMAX).
    #[inline(always)]
    pub fn reset(&self, r: T, h: T) -> T {
        let v = self.narrow(r * h, self.half_state, self.state_shift);
        self.coarsen(v, self.narrowing.reset, self.qmax, true)
    }

    /// Clipped-identity candidate: sat(rshr(a, Ww-1), +-QMAX).
    #[inline(always)]
    pub fn candidate(&self, a: T) -> T {
        let v = self.narrow(a, self.half_acc, self.acc_shift);
        self.coarsen(v, self.narrowing.candidate, self.qmax, true)
    }

    /// State update: sat(rshr(S c + z (h - c), Wa-1), +-QMAX).
    #[inline(always)]
    pub fn update(&self, z: T, h: T, c: T) -> T {
        let v = self.narrow(
            self.one * c + z * (h - c),
            self.half_state,
            self.state_shift,
        );
        self.coarsen(v, self.narrowing.state, self.qmax, true)
    }

    /// Head output: the accumulator saturated to +-OMAX.
    #[inline(always)]
    pub fn head(&self, a: T) -> T {
        let v = a.max(-self.head_max).min(self.head_max);
        self.coarsen(v, self.narrowing.head, self.head_max, true)
    }

    /// An input code (section 1 gives it on the state grid).
    #[inline(always)]
    pub fn input(&self, x: T) -> T {
        self.coarsen(x, self.narrowing.input, self.qmax, false)
    }

    /// sat(rshr(v, s), +-QMAX): every narrowing onto the state grid.
    #[inline(always)]
    fn narrow(&self, v: T, half: T, shift: usize) -> T {
        ((v + half) >> shift).max(-self.qmax).min(self.qmax)
    }

    /// The probe's rounding of `v` onto a grid `shift` bits coarser,
    /// saturated to [-(hi >> shift), hi >> shift] (`signed`) or
    /// [0, hi >> shift]; `v` itself when shift is 0.
    #[inline(always)]
    fn coarsen(&self, v: T, shift: u32, hi: T, signed: bool) -> T {
        if shift == 0 {
            return v;
        }
        let s = shift as usize;
        let hi = hi >> s;
        let lo = if signed { -hi } else { T::zero() };
        ((v + (T::one() << (s - 1))) >> s).max(lo).min(hi) << s
    }
}

/// ceil(log2(n)) for n >= 1.
pub fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Section 1: raw counts -> input codes (W-1 fraction bits, 0..=QMAX),
/// the baseline the sum S0 of the first `baseline_gates` gates (B; none
/// when 0): y = max(max(B, 1) c - S0, 0), B times the baseline-subtracted
/// count, so no division before the peak's. `out.len()` must equal
/// `counts.len()`.
pub fn preprocess(fmt: Format, baseline_gates: usize, counts: &[u32], out: &mut [i64]) {
    debug_assert_eq!(counts.len(), out.len());
    let b = baseline_gates.min(counts.len());
    let s0: i64 = counts[..b].iter().map(|&c| c.min(COUNT_MAX) as i64).sum();
    let scale = b.max(1) as i64;
    let mut peak = 0i64;
    for (o, &c) in out.iter_mut().zip(counts) {
        let y = (scale * c.min(COUNT_MAX) as i64 - s0).max(0);
        *o = y;
        peak = peak.max(y);
    }
    if peak == 0 {
        out.iter_mut().for_each(|o| *o = 0);
        return;
    }
    let (s, q) = (fmt.one(), fmt.qmax());
    for o in out.iter_mut() {
        *o = ((2 * s * *o + peak) / (2 * peak)).min(q);
    }
}

/// Section 6: the tau threshold table THR[k], k = 0..TAU_CODES (THR[0] is
/// unused and 0): THR[k] = ceil(2^16 R((k - 1/2) 2^-8 ns)), clamped to
/// RATIO_MAX. A build-time constant of the gate grid.
pub fn tau_thresholds(gates: usize, dt_ns: f64) -> Vec<i64> {
    let mut thr = vec![0i64; TAU_CODES];
    let lsb = 1.0 / (1u64 << TAU_FRAC_BITS) as f64;
    for (k, t) in thr.iter_mut().enumerate().skip(1) {
        let tau = (k as f64 - 0.5) * lsb;
        let x = dt_ns / tau;
        // R = (1 - e^{-Gx}) / (1 - e^{-x}), stable via expm1 (libm: the same
        // bits on every machine).
        let ratio = libm::expm1(-(gates as f64) * x) / libm::expm1(-x);
        let scaled = (ratio * (1u64 << RATIO_FRAC_BITS) as f64).ceil();
        *t = if scaled.is_finite() {
            (scaled as i64).min(RATIO_MAX)
        } else {
            RATIO_MAX
        };
    }
    // Guard monotonicity against any rounding wobble.
    for k in 2..TAU_CODES {
        thr[k] = thr[k].max(thr[k - 1]);
    }
    thr
}

/// Section 6: tau code of one channel from its amplitude and sum.
#[inline]
pub fn tau_code(thresholds: &[i64], amplitude: i64, sum: i64) -> u32 {
    if amplitude <= 0 || sum <= 0 {
        return 0;
    }
    let q = ratio(amplitude, sum);
    // Count of THR[k] <= q over k = 1..TAU_CODES (the table is sorted).
    thresholds[1..].partition_point(|&t| t <= q) as u32
}

/// q = min(RATIO_MAX, floor(sum 2^16 / amplitude)) for amplitude, sum > 0.
#[inline]
pub fn ratio(amplitude: i64, sum: i64) -> i64 {
    // sum < 2^43 (head 35 bits x 1024 gates), so sum << 16 fits in i64.
    ((sum << RATIO_FRAC_BITS) / amplitude).min(RATIO_MAX)
}

/// Section 6: fraction code from the two amplitudes.
#[inline]
pub fn fraction_code(a1: i64, a2: i64) -> u32 {
    let (a1, a2) = (a1.max(0), a2.max(0));
    let d = a1 + a2;
    if d == 0 {
        return FRACTION_ONE / 2;
    }
    ((a1 * (2 * FRACTION_ONE as i64) + d) / (2 * d)) as u32
}

/// Decoded tau (ns) of a tau code.
pub fn tau_ns(code: u32) -> f64 {
    code as f64 / (1u64 << TAU_FRAC_BITS) as f64
}

/// Decoded fraction of a fraction code.
pub fn fraction_value(code: u32) -> f64 {
    code as f64 / FRACTION_ONE as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_rounds_onto_the_coarse_grid_and_none_is_the_contract() {
        let fmt = Format::mixed(8, 16).unwrap();
        let plain = fmt.ops::<i64>();
        let n = Narrowing::to_bits_except(fmt, 8, &["candidate"]).unwrap();
        assert_eq!(n.state, 8);
        assert_eq!(n.candidate, 0, "kept points are not narrowed");
        let probe = fmt.ops_narrowed::<i64>(&n);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = ((rng >> 20) as i64 % (1 << 28)) - (1 << 27);
            let (z, h) = (plain.gate(a), plain.candidate(a >> 3));
            // Gates: on multiples of 2^8 within [0, S], within half a
            // coarse step of the fine value.
            let g = probe.gate(a);
            assert_eq!(g % 256, 0);
            assert!((0..=fmt.one()).contains(&g));
            assert!((g - z).abs() <= 128, "gate {z} -> {g}");
            // State: symmetric +-127 * 256, rounded half up.
            let u = probe.update(z, h, plain.candidate(a));
            let fine = plain.update(z, h, plain.candidate(a));
            assert_eq!(u % 256, 0);
            assert!(u.abs() <= 127 * 256);
            assert_eq!(u, ((fine + 128) >> 8).clamp(-127, 127) << 8);
            // The kept point is the contract's.
            assert_eq!(probe.candidate(a), plain.candidate(a));
            assert_eq!(plain.head(a), a.clamp(-fmt.head_max(), fmt.head_max()));
        }
        assert!(Narrowing::default().is_none());
        assert!(Narrowing::to_bits_except(fmt, 3, &[]).is_err());
        assert!(Narrowing::to_bits_except(fmt, 8, &["bias"]).is_err());
        let too_far = Narrowing {
            state: 13,
            ..Narrowing::default()
        };
        assert!(too_far.validate(fmt).is_err());
    }

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(rshr(3, 1), 2); // 1.5 -> 2
        assert_eq!(rshr(-3, 1), -1); // -1.5 -> -1
        assert_eq!(rshr(5, 2), 1); // 1.25 -> 1
        assert_eq!(rshr(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rshr(-6, 2), -1); // -1.5 -> -1
    }

    #[test]
    fn gate_is_hard_sigmoid() {
        let f = Format::new(8).unwrap();
        let one_acc = 1i64 << f.acc_frac();
        assert_eq!(f.gate(0), 64); // 0.5
        assert_eq!(f.gate(one_acc / 2), 96); // x = 0.5 -> 0.75
        assert_eq!(f.gate(-one_acc / 2), 32); // x = -0.5 -> 0.25
        assert_eq!(f.gate(one_acc), 128); // x = 1 -> 1
        assert_eq!(f.gate(10 * one_acc), 128);
        assert_eq!(f.gate(-one_acc), 0);
        assert_eq!(f.gate(-10 * one_acc), 0);
    }

    #[test]
    fn update_forms_agree() {
        let f = Format::new(6).unwrap();
        for z in 0..=f.one() {
            for h in -f.qmax()..=f.qmax() {
                for c in [-f.qmax(), -7, 0, 5, f.qmax()] {
                    let two = z * h + (f.one() - z) * c;
                    let q = f.qmax();
                    assert_eq!(f.update(z, h, c), sat(rshr(two, 5), -q, q));
                }
            }
        }
    }

    #[test]
    fn preprocess_matches_float_rounded() {
        let f = Format::new(8).unwrap();
        let mut c = vec![2u32; 30];
        c[12] = 10;
        c[13] = 6;
        c[14] = 1;
        let mut o = vec![0; 30];
        preprocess(f, BASELINE_GATES, &c, &mut o);
        assert_eq!(o[12], 127);
        assert_eq!(o[13], 64);
        assert_eq!(o[14], 0);
        let flat = vec![7u32; 30];
        preprocess(f, BASELINE_GATES, &flat, &mut o);
        assert!(o.iter().all(|&v| v == 0));
        let big = vec![u32::MAX; 30];
        preprocess(f, BASELINE_GATES, &big, &mut o);
        assert!(o.iter().all(|&v| v == 0));
    }

    #[test]
    fn preprocess_baseline_window_matches_float() {
        let f = Format::new(8).unwrap();
        let mut c = vec![2u32; 30];
        c[1] = 5;
        c[12] = 10;
        c[13] = 6;
        let mut o = vec![0; 30];
        let mut x = vec![0.0f32; 30];
        for b in [0, 1, 2, 10] {
            preprocess(f, b, &c, &mut o);
            let cf: Vec<f32> = c.iter().map(|&v| v as f32).collect();
            crate::data::preprocess(&cf, &mut x, b);
            for (k, (&q, &v)) in o.iter().zip(&x).enumerate() {
                let want = (v * f.one() as f32).round() as i64;
                assert!((q - want).abs() <= 1, "B {b}, gate {k}: {q} vs {want}");
            }
        }
        preprocess(f, 0, &c, &mut o);
        assert_eq!((o[0], o[12], o[13]), (26, 127, 77));
    }

    #[test]
    fn tau_codes_invert_the_ratio() {
        let thr = tau_thresholds(135, 0.09);
        assert!(thr.windows(2).all(|w| w[0] <= w[1]));
        for tau in [0.1, 0.5, 1.0, 2.5, 6.0] {
            let r = crate::lifetime::extract::ratio_from_tau(tau, 135, 0.09);
            let amp = 1i64 << 30;
            let sum = (r * amp as f64).round() as i64;
            let code = tau_code(&thr, amp, sum);
            assert!(
                (tau_ns(code) - tau).abs() <= 0.5 / 256.0 + 1e-6,
                "{tau}: {code}"
            );
        }
        assert_eq!(tau_code(&thr, 0, 100), 0);
        assert_eq!(tau_code(&thr, 5, -1), 0);
        assert_eq!(tau_code(&thr, 1, 1 << 40), (TAU_CODES - 1) as u32);
    }

    #[test]
    fn fraction_rounds_and_guards() {
        assert_eq!(fraction_code(0, 0), 16384);
        assert_eq!(fraction_code(-5, -1), 16384);
        assert_eq!(fraction_code(1, 1), 16384);
        assert_eq!(fraction_code(1, 0), 32768);
        assert_eq!(fraction_code(0, 9), 0);
        assert_eq!(fraction_code(1, 2), 10923); // 10922.67
    }

    /// The 8-bit formats expressed with the `fixed` crate's types (state
    /// I1F7 on an i16, accumulator F14 on an i32): an independent
    /// statement of the narrowings, exhaustively over every state code.
    #[test]
    fn eight_bit_narrowings_agree_with_the_fixed_crate() {
        use fixed::types::extra::{U14, U7};
        use fixed::{FixedI16, FixedI32};
        let f = Format::new(8).unwrap();
        let lim = FixedI16::<U7>::from_bits(127);
        let narrow = |a: FixedI32<U14>| {
            // Round half up = floor after adding half an output LSB.
            let v: FixedI16<U7> = (a + FixedI32::<U14>::from_bits(1 << 6)).saturating_to_num();
            v.clamp(-lim, lim).to_bits() as i64
        };
        for a in (-(1i64 << 20)..(1i64 << 20)).step_by(37) {
            assert_eq!(
                f.candidate(a),
                narrow(FixedI32::<U14>::from_bits(a as i32)),
                "{a}"
            );
        }
        for r in 0..=128i64 {
            for h in -127..=127i64 {
                let p = FixedI32::<U14>::from_bits((r * h) as i32);
                assert_eq!(f.reset(r, h), narrow(p), "{r} {h}");
            }
        }
        for a in (-(1i64 << 18)..(1i64 << 18)).step_by(11) {
            // 0.5 a + 0.5 in F14, then onto the gate grid 0..=128 (F7).
            let x = FixedI32::<U14>::from_bits(a as i32) / 2 + FixedI32::<U14>::from_num(0.5);
            let g: FixedI32<U7> = (x + FixedI32::<U14>::from_bits(1 << 6)).to_num();
            let g = g.clamp(FixedI32::<U7>::ZERO, FixedI32::<U7>::ONE).to_bits() as i64;
            // a / 2 drops a's last bit before the rounding add: compare on even a.
            if a % 2 == 0 {
                assert_eq!(f.gate(a), g, "{a}");
            }
        }
    }

    #[test]
    fn widths() {
        let f = Format::new(8).unwrap();
        assert_eq!(f.acc_bits(32), 25);
        assert_eq!(Format::new(16).unwrap().acc_bits(32), 41);
        assert!(Format::new(3).is_err());
        assert!(Format::new(17).is_err());
        let m = Format::mixed(8, 12).unwrap();
        assert_eq!((m.acc_frac(), m.acc_bits(32), m.one()), (18, 29, 2048));
        assert_eq!(m.weight_qmax(), 127);
        assert_eq!(m.name(), "W8A12");
    }

    #[test]
    fn mixed_widths_the_contract_cannot_build_are_refused_by_both_widths() {
        for (w, a, want) in [(8, 6, "narrower"), (8, 17, "4..=16"), (3, 8, "4..=16")] {
            let e = Format::mixed(w, a).unwrap_err().to_string();
            assert!(e.contains(&format!("W{w}A{a}")) && e.contains(want), "{e}");
        }
        assert!(Format::mixed(16, 16).is_ok());
    }

    /// A mixed format's narrowings are the uniform ones' with each shift
    /// taken from its own width: the candidate narrows the accumulator by
    /// Ww - 1, the reset product and the update by Wa - 1.
    #[test]
    fn mixed_narrowings_shift_by_their_own_widths() {
        let m = Format::mixed(8, 12).unwrap();
        let one_acc = 1i64 << m.acc_frac();
        assert_eq!(m.gate(0), 1024);
        assert_eq!(m.gate(one_acc), 2048);
        assert_eq!(m.gate(one_acc / 2), 1536);
        assert_eq!(m.candidate(one_acc / 4), 512); // 0.25 on the 1/2048 grid
        assert_eq!(m.candidate(3 * one_acc), 2047); // saturates at QMAX
        assert_eq!(m.reset(1024, 1000), 500); // 0.5 * h
        assert_eq!(m.update(2048, 700, -300), 700); // z = 1 keeps h
        assert_eq!(m.update(0, 700, -300), -300); // z = 0 takes c
        let q = m.qmax();
        for (z, h, c) in [(1000, 1500, -2000), (17, -2047, 2047), (2048, 3, 5)] {
            let two = z * h + (m.one() - z) * c;
            assert_eq!(m.update(z, h, c), sat(rshr(two, 11), -q, q));
        }
    }
}
