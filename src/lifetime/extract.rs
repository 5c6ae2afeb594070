//! Lifetimes from the Seq2Seq's three channels (`[G, 3]`: full decay,
//! short component, long component; see [`crate::data::targets`]).
//!
//! Two rules:
//!
//! - [`extract_paper`]: the source paper's post-processing,
//!   tau_i = trapezoid-integral(ch_i) * dt / ch_i[0]. It assumes an
//!   infinite window and a continuous decay, so it is biased for short
//!   lifetimes (gate width comparable to tau: the trapezoid over-estimates
//!   the area of a sampled exponential) and for long ones (the window of
//!   G gates truncates the tail). Kept for comparison tables.
//! - [`extract`] (the default): the exact inversion for a sampled
//!   exponential. With q = sum_k ch_i[k] / ch_i[0] over the G gates, a
//!   channel c r^k gives q = (1 - r^G) / (1 - r), r = exp(-dt / tau);
//!   [`tau_from_ratio`] solves that for tau. On noise-free targets the
//!   only error left is the f32 rounding of the channels.
//!
//! Both return guarded values, never NaN and never panic: an amplitude
//! ch_i[0] below [`AMPLITUDE_MIN`] (or NaN) gives tau_i = 0, a fraction
//! denominator below [`AMPLITUDE_MIN`] gives fraction 0.5.

use super::Lifetimes;
use ndarray::{ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// Channel amplitudes (ch_i[0]) below this are "no component": tau_i = 0.
pub const AMPLITUDE_MIN: f64 = 1e-6;

/// Largest lifetime any estimator in this module returns (ns). A flat or
/// rising channel (q >= G) or a decay too slow to tell from flat within the
/// window maps here rather than to infinity.
pub const TAU_MAX_NS: f64 = 100.0;

/// Bisection steps of [`tau_from_ratio`]; see there.
pub const RATIO_BISECTION_STEPS: usize = 64;

/// The exponent x = dt / tau above which r = exp(-x) is indistinguishable
/// from 0 in q = (1 - r^G) / (1 - r) at f64 precision (e^-40 ~ 4e-18).
const X_MAX: f64 = 40.0;

/// q(x) = sum_{k<G} exp(-k x) = (1 - e^{-G x}) / (1 - e^{-x}), stable for
/// small x via `expm1`.
fn geometric_ratio(x: f64, gates: usize) -> f64 {
    (-(gates as f64) * x).exp_m1() / (-x).exp_m1()
}

/// The sum-over-peak ratio q of a sampled exponential with lifetime `tau_ns`
/// over `gates` gates of `dt_ns`: q = (1 - r^G) / (1 - r), r = exp(-dt/tau).
/// The forward map of [`tau_from_ratio`] (tests and table generation).
pub fn ratio_from_tau(tau_ns: f64, gates: usize, dt_ns: f64) -> f64 {
    if tau_ns.is_nan() || tau_ns <= 0.0 || gates == 0 {
        return if gates == 0 { 0.0 } else { 1.0 };
    }
    if tau_ns.is_infinite() {
        return gates as f64;
    }
    geometric_ratio(dt_ns / tau_ns, gates)
}

/// Lifetime (ns) of a sampled exponential c r^k whose sum over `gates`
/// gates is `q` times its first sample: solves q = (1 - r^G) / (1 - r) for
/// r = exp(-dt/tau) and returns tau = -dt / ln r. The single place this
/// inversion lives (hardware later tabulates q -> tau from it).
///
/// Method: bisection on u = ln(x), x = dt/tau = -ln r, over the fixed
/// bracket x in [dt / [`TAU_MAX_NS`], 40], for [`RATIO_BISECTION_STEPS`]
/// (64) steps. q(x) is strictly decreasing in x, so bisection always
/// converges; the bracket spans ln(40 * 100 / dt) < 20 in u, and 64
/// halvings shrink it below 1e-17, i.e. to the last bit of f64. Because
/// the bracket and the step count are fixed, the result is exactly
/// monotone (non-decreasing) in q even under floating-point rounding of
/// q(x): two targets q1 < q2 follow the same left/right decisions until
/// the first one that differs, after which q1's interval lies entirely at
/// larger x (shorter tau) than q2's.
///
/// Guards (all documented, never NaN):
/// - NaN q, `gates` < 2, or a non-positive / non-finite `dt_ns` -> 0;
/// - q <= 1 (everything in the first gate, no decay resolved) -> 0; just
///   above 1 the result is at least dt / 40 (the bracket's short end);
/// - q near or above G (flat or rising channel, or tau beyond
///   [`TAU_MAX_NS`]) -> [`TAU_MAX_NS`], continuously: the bracket's long
///   end is tau = [`TAU_MAX_NS`].
pub fn tau_from_ratio(q: f64, gates: usize, dt_ns: f64) -> f64 {
    if q.is_nan() || gates < 2 || !(dt_ns.is_finite() && dt_ns > 0.0) {
        return 0.0;
    }
    if q <= 1.0 {
        return 0.0;
    }
    // Bracket in u = ln x. The long end is x = dt / TAU_MAX_NS, kept below
    // the short end for absurd gate widths (dt > 40 * TAU_MAX_NS).
    let u_hi = X_MAX.ln();
    let u_lo = (dt_ns / TAU_MAX_NS).ln().min(u_hi - 1.0);
    if q >= geometric_ratio(u_lo.exp(), gates) {
        return (dt_ns / u_lo.exp()).min(TAU_MAX_NS);
    }
    let (mut lo, mut hi) = (u_lo, u_hi); // q(e^lo) > q, q(e^hi) <= q (approximately)
    for _ in 0..RATIO_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if geometric_ratio(mid.exp(), gates) > q {
            lo = mid; // still too slow a decay: need larger x
        } else {
            hi = mid;
        }
    }
    let x = (0.5 * (lo + hi)).exp();
    (dt_ns / x).min(TAU_MAX_NS)
}

/// True when the view is usable as `[G, 3]` channels.
fn shape_ok(channels: &ArrayView2<f32>) -> bool {
    channels.nrows() >= 1 && channels.ncols() >= 3
}

/// The fraction rule shared by both extractions, from the amplitudes.
fn fraction_from(a1: f64, a2: f64) -> f64 {
    let den = a1 + a2;
    if den >= AMPLITUDE_MIN {
        a1 / den
    } else {
        0.5
    }
}

/// Corrected (default) extraction from one pixel's channels `[G, 3]`.
///
/// tau_i = [`tau_from_ratio`](sum_k ch_i[k] / ch_i[0], G, dt) for i = 1, 2;
/// exact for the target channels of [`crate::data::targets`]. The sum is
/// the plain sum of the channel (negative network outputs included, no
/// clipping, which would bias it).
///
/// fraction = ch1[0] / (ch1[0] + ch2[0]) with negative (or NaN) amplitudes
/// taken as 0 first, so it always lies in [0, 1] (the paper's rule, which
/// [`extract_paper`] keeps, can leave [0, 1] when the network predicts a
/// negative amplitude); a denominator below [`AMPLITUDE_MIN`] gives 0.5.
/// Mono-exponential pixels (ch2 ~ 0) get tau2 = 0 and fraction ~ 1.
///
/// Odd input never panics: a view with fewer than 3 columns or no rows
/// gives `{ tau1: 0, tau2: 0, fraction: 0.5 }`.
pub fn extract(channels: ArrayView2<f32>, dt_ns: f64) -> Lifetimes {
    if !shape_ok(&channels) {
        return Lifetimes {
            tau1: 0.0,
            tau2: 0.0,
            fraction: 0.5,
        };
    }
    let gates = channels.nrows();
    let tau = |i| {
        channel_tau(&channels, i, |sum, c0, _| {
            tau_from_ratio(sum / c0, gates, dt_ns)
        })
    };
    let amp = |i: usize| (channels[[0, i]] as f64).max(0.0); // NaN -> 0
    Lifetimes {
        tau1: tau(1),
        tau2: tau(2),
        fraction: fraction_from(amp(1), amp(2)),
    }
}

/// The source paper's extraction from one pixel's channels `[G, 3]`:
/// tau_i = trapezoid-integral(ch_i) * dt / ch_i[0] (the trapezoid over the
/// G samples, i.e. dt * (sum - (ch_i[0] + ch_i[G-1]) / 2)), fraction =
/// ch1[0] / (ch1[0] + ch2[0]). Guards as in the paper: amplitude below
/// [`AMPLITUDE_MIN`] -> tau 0, denominator below it -> fraction 0.5; and
/// beyond the paper, NaN amplitudes count as below the guard and a
/// non-finite result is returned as 0 (tau) or 0.5 (fraction). Taus are
/// not clamped (the paper does not clamp); the fraction is not either.
pub fn extract_paper(channels: ArrayView2<f32>, dt_ns: f64) -> Lifetimes {
    if !shape_ok(&channels) {
        return Lifetimes {
            tau1: 0.0,
            tau2: 0.0,
            fraction: 0.5,
        };
    }
    let tau = |i| {
        channel_tau(&channels, i, |sum, c0, last| {
            let t = (sum - 0.5 * (c0 + last)) * dt_ns / c0;
            if t.is_finite() {
                t
            } else {
                0.0
            }
        })
    };
    let (a1, a2) = (channels[[0, 1]] as f64, channels[[0, 2]] as f64);
    let f = fraction_from(a1, a2);
    Lifetimes {
        tau1: tau(1),
        tau2: tau(2),
        fraction: if f.is_finite() { f } else { 0.5 },
    }
}

/// Lifetime of channel `i` from its sum, first and last sample; 0 when the
/// amplitude (first sample) is below [`AMPLITUDE_MIN`] or NaN.
fn channel_tau(channels: &ArrayView2<f32>, i: usize, rule: impl Fn(f64, f64, f64) -> f64) -> f64 {
    let c = channels.column(i);
    let c0 = c[0] as f64;
    if c0.is_nan() || c0 < AMPLITUDE_MIN {
        return 0.0;
    }
    let sum: f64 = c.iter().map(|&v| v as f64).sum();
    rule(sum, c0, c[c.len() - 1] as f64)
}

/// Lifetime of the full-decay channel (ch0) by the same ratio rule:
/// tau_from_ratio(sum ch0 / ch0[0]). For a mono-exponential decay it is
/// the lifetime; for a bi-exponential one, a single-exponential summary
/// that does not depend on how the network splits the decay between its
/// components (the amplitude-weighted mean does). Guards as [`extract`].
pub fn full_decay_tau(channels: ArrayView2<f32>, dt_ns: f64) -> f64 {
    if !shape_ok(&channels) {
        return 0.0;
    }
    let gates = channels.nrows();
    channel_tau(&channels, 0, |sum, c0, _| {
        tau_from_ratio(sum / c0, gates, dt_ns)
    })
}

/// [`extract`] over `[n, G, 3]`, in parallel, order preserved.
pub fn extract_batch(channels: ArrayView3<f32>, dt_ns: f64) -> Vec<Lifetimes> {
    batch(channels, dt_ns, extract)
}

/// [`extract_paper`] over `[n, G, 3]`, in parallel, order preserved.
pub fn extract_paper_batch(channels: ArrayView3<f32>, dt_ns: f64) -> Vec<Lifetimes> {
    batch(channels, dt_ns, extract_paper)
}

fn batch(
    channels: ArrayView3<f32>,
    dt_ns: f64,
    f: fn(ArrayView2<f32>, f64) -> Lifetimes,
) -> Vec<Lifetimes> {
    let rows: Vec<ArrayView2<f32>> = channels.axis_iter(Axis(0)).collect();
    rows.into_par_iter().map(|c| f(c, dt_ns)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn ratio_round_trip_simple() {
        for &tau in &[0.02, 0.05, 0.3, 1.0, 3.0, 10.0] {
            let q = ratio_from_tau(tau, 135, 0.09);
            let back = tau_from_ratio(q, 135, 0.09);
            assert!((back - tau).abs() / tau < 1e-9, "{tau} -> {q} -> {back}");
        }
    }

    #[test]
    fn ratio_guards() {
        assert_eq!(tau_from_ratio(f64::NAN, 135, 0.09), 0.0);
        assert_eq!(tau_from_ratio(1.0, 135, 0.09), 0.0);
        assert_eq!(tau_from_ratio(0.3, 135, 0.09), 0.0);
        assert_eq!(tau_from_ratio(-5.0, 135, 0.09), 0.0);
        assert_eq!(tau_from_ratio(135.0, 135, 0.09), TAU_MAX_NS);
        assert_eq!(tau_from_ratio(1e9, 135, 0.09), TAU_MAX_NS);
        assert_eq!(tau_from_ratio(f64::INFINITY, 135, 0.09), TAU_MAX_NS);
        assert_eq!(tau_from_ratio(3.0, 1, 0.09), 0.0);
        assert_eq!(tau_from_ratio(3.0, 135, f64::NAN), 0.0);
        assert_eq!(tau_from_ratio(3.0, 135, 0.0), 0.0);
        let just_above = tau_from_ratio(1.0 + 1e-15, 135, 0.09);
        assert!(just_above > 0.0 && just_above < 0.09 / 30.0);
    }

    #[test]
    fn odd_channels_do_not_panic() {
        let z = Array2::<f32>::zeros((135, 3));
        let l = extract(z.view(), 0.09);
        assert_eq!((l.tau1, l.tau2, l.fraction), (0.0, 0.0, 0.5));
        let n = Array2::<f32>::from_elem((135, 3), f32::NAN);
        for l in [extract(n.view(), 0.09), extract_paper(n.view(), 0.09)] {
            assert_eq!((l.tau1, l.tau2, l.fraction), (0.0, 0.0, 0.5));
        }
        let narrow = Array2::<f32>::ones((135, 2));
        assert_eq!(extract(narrow.view(), 0.09).fraction, 0.5);
        let empty = Array2::<f32>::zeros((0, 3));
        assert_eq!(extract_paper(empty.view(), 0.09).tau1, 0.0);
    }
}
