//! Rapid lifetime determination (RLD): the classical closed-form estimate
//! from a few window integrals of the raw histogram, the fast baseline a
//! user would run on the camera instead of a network.
//!
//! Steps shared by both variants:
//!
//! 1. Peak p = first index of the largest count (NaN counts ignored).
//! 2. Background b = mean of the gates [0, min(BASELINE_GATES, p - m)),
//!    i.e. the first [`BASELINE_GATES`] gates as in preprocessing, but
//!    never the IRF's rising edge: m = [`RLD_IRF_MARGIN_NS`] / dt gates
//!    before the peak are left out (with an early IRF the first 10 gates
//!    hold the rise, and subtracting it zeroes the late window). No gate
//!    left (a decay starting at gate 0) -> b = 0.
//! 3. Windows start at s = p + `offset_gates` ([`RLD_OFFSET_NS`] / dt by
//!    default, clearing the IRF's trailing edge, which otherwise biases
//!    tau low) and are
//!    contiguous and of equal width W gates, dT = W dt. Default W: the
//!    gates after s split evenly, floor((G - s) / m) for m windows (2 for
//!    mono, 4 for bi), i.e. the windows cover the decay after the peak;
//!    the mono variant then adapts the width to ~2.5 tau (see
//!    [`rld_mono`]). A fixed width can be set in [`RldOptions`] (clipped to
//!    what fits).
//! 4. D_j = sum over window j of (counts - b), not clipped (clipping
//!    would bias the sums upwards at low counts).
//!
//! Counts are taken as gate integrals of the decay rate (gate k covers
//! [k dt, (k + 1) dt), as [`GateGrid`] documents). For an exponential
//! a exp(-t/tau) both variants are then exact on noise-free data: the
//! window sums are S u^j with u = exp(-dT/tau).
//!
//! Mono (Ballew & Demas): tau = dT / ln(D0 / D1).
//! Bi (Sharman et al. 1999, four windows): the sums obey
//! D_{j+2} = P D_{j+1} - Q D_j with P = u1 + u2, Q = u1 u2, solved from
//! D0..D3; u1,2 are the roots of u^2 - P u + Q, tau_i = -dT / ln u_i, and the
//! window-0 sums S_i of each component give the amplitudes at the window
//! start a_i = S_i / (tau_i (1 - u_i)) (the integral of a_i exp(-t/tau_i)
//! over a window), extrapolated back to the peak; fraction = a_short /
//! (a_short + a_long). The peak stands in for the (unknown) excitation
//! time: with an IRF the fraction leans slightly to the long component.

use super::extract::TAU_MAX_NS;
use super::Lifetimes;
use crate::data::{GateGrid, BASELINE_GATES};

/// Gates closer than this before the peak are the IRF's rising edge, not
/// background (the widest default IRF has a 0.4 ns FWHM).
pub const RLD_IRF_MARGIN_NS: f64 = 0.5;

/// Default start of the first window after the peak: past most of the
/// IRF's trailing edge.
pub const RLD_OFFSET_NS: f64 = 0.3;

/// Window placement for [`rld_mono_with`] / [`rld_bi_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RldOptions {
    /// Gates skipped after the peak before the first window (e.g. to clear
    /// the trailing edge of the IRF). Default 0.
    pub offset_gates: usize,
    /// Width of each window in gates; `None` (default) splits the gates
    /// after the start evenly among the windows.
    pub window_gates: Option<usize>,
}

impl RldOptions {
    /// The defaults of [`rld_mono`] and [`rld_bi`] on a grid: start
    /// [`RLD_OFFSET_NS`] after the peak, adaptive widths.
    pub fn for_grid(grid: &GateGrid) -> Self {
        RldOptions {
            offset_gates: (RLD_OFFSET_NS / grid.dt_ns).round() as usize,
            window_gates: None,
        }
    }
}

/// Guarded mono result: tau2 = tau1, fraction 1.
fn mono(tau: f64) -> Lifetimes {
    Lifetimes {
        tau1: tau,
        tau2: tau,
        fraction: 1.0,
    }
}

/// Background-subtracted sums of `m` contiguous equal windows and the
/// window width in ns, or `None` when the histogram is empty, all NaN, or
/// too short after the peak for `m` windows of at least one gate.
/// Also returns the width used and the largest width that fits.
fn window_sums(
    counts: &[f32],
    grid: &GateGrid,
    opts: &RldOptions,
    m: usize,
) -> Option<(Vec<f64>, f64, usize, usize)> {
    let g = counts.len().min(grid.gates);
    let counts = &counts[..g];
    // Peak: first maximum, NaN skipped.
    let mut p = None;
    let mut best = f32::NEG_INFINITY;
    for (k, &c) in counts.iter().enumerate() {
        if c > best {
            best = c;
            p = Some(k);
        }
    }
    let p = p?;
    let b = background_before(counts, p, grid);
    let s = p.checked_add(opts.offset_gates)?;
    let avail = g.checked_sub(s)?;
    let w_max = avail / m;
    let w = match opts.window_gates {
        Some(w) => w.min(w_max),
        None => w_max,
    };
    if w == 0 {
        return None;
    }
    let sums = (0..m)
        .map(|j| {
            counts[s + j * w..s + (j + 1) * w]
                .iter()
                .filter(|c| c.is_finite())
                .map(|&c| c as f64 - b)
                .sum()
        })
        .collect();
    Some((sums, w as f64 * grid.dt_ns, w, w_max))
}

/// Background per gate of a histogram whose first maximum is at gate
/// `peak` (step 2 of the module doc): the mean of the gates before the
/// rise, never the IRF's rising edge; 0 when no such gate is left. The
/// phasor subtracts the same level ([`super::phasor`]).
pub fn background_before(counts: &[f32], peak: usize, grid: &GateGrid) -> f64 {
    let margin = (RLD_IRF_MARGIN_NS / grid.dt_ns).ceil() as usize;
    let nb = BASELINE_GATES
        .min(peak.saturating_sub(margin))
        .min(counts.len());
    if nb == 0 {
        return 0.0;
    }
    let s: f64 = counts[..nb]
        .iter()
        .filter(|c| c.is_finite())
        .map(|&c| c as f64)
        .sum();
    s / nb as f64
}

/// [`background_before`] with the peak found as RLD finds it (the first
/// largest count, NaN skipped); 0 for an empty or all-NaN histogram.
pub fn background(counts: &[f32], grid: &GateGrid) -> f64 {
    let mut p = None;
    let mut best = f32::NEG_INFINITY;
    for (k, &c) in counts.iter().enumerate() {
        if c > best {
            best = c;
            p = Some(k);
        }
    }
    p.map_or(0.0, |p| background_before(counts, p, grid))
}

/// tau = dT / ln(D0 / D1) with the guards of [`rld_mono`].
fn mono_from_sums(d0: f64, d1: f64, dt_window: f64) -> f64 {
    if d0.is_nan() || d0 <= 0.0 || !d1.is_finite() {
        return 0.0; // no signal
    }
    if d1 <= 0.0 {
        return 0.0; // decay over within the first window
    }
    if d0 <= d1 {
        return TAU_MAX_NS; // flat or rising
    }
    let tau = dt_window / (d0 / d1).ln();
    if tau.is_finite() {
        tau.min(TAU_MAX_NS)
    } else {
        TAU_MAX_NS
    }
}

/// Window width of the adaptive mono RLD in units of the estimated tau:
/// Ballew & Demas (1989) find dT ~ 2.5 tau minimises the variance of the
/// two-gate estimate under Poisson noise.
pub const RLD_WIDTH_PER_TAU: f64 = 2.5;

/// Most width refinements of the adaptive mono RLD.
pub const RLD_REFINE_STEPS: usize = 6;

/// Mono-exponential RLD with adaptive windows. Returns tau2 = tau1 and
/// fraction 1.
///
/// Windows: first the gates after the peak split evenly into two; if the
/// second window holds no signal (D1 <= 0: a decay much shorter than the
/// window), the width is halved until it does (or is 1 gate); then
/// up to [`RLD_REFINE_STEPS`] refinements re-evaluate with the width
/// round(2.5 tau / dt) (capped at the even split) from the current
/// estimate (again halving while D1 <= 0), until the width repeats; a
/// refinement is kept only if it is itself a valid (0 < tau < cap)
/// estimate. On noise-free exponentials every
/// width is exact; the adaptation matters with noise and background,
/// where a window much longer than tau makes D1 pure background.
///
/// Guards: no usable windows (empty / all-NaN histogram, peak in the last
/// gate) or D0 <= 0 (no signal) -> tau 0; D1 <= 0 (everything decayed
/// within the first window) -> tau 0; D0 <= D1 (flat or rising) ->
/// [`TAU_MAX_NS`]; results are clamped to [`TAU_MAX_NS`].
pub fn rld_mono(counts: &[f32], grid: &GateGrid) -> Lifetimes {
    rld_mono_with(counts, grid, &RldOptions::for_grid(grid))
}

/// [`rld_mono`] with explicit window placement. With a fixed
/// `window_gates` this is one closed-form evaluation; with `None` it adapts
/// the width (see [`rld_mono`]).
pub fn rld_mono_with(counts: &[f32], grid: &GateGrid, opts: &RldOptions) -> Lifetimes {
    let eval = |w: Option<usize>| {
        let o = RldOptions {
            offset_gates: opts.offset_gates,
            window_gates: w,
        };
        window_sums(counts, grid, &o, 2)
            .map(|(d, dt_w, w, w_max)| (mono_from_sums(d[0], d[1], dt_w), d[0], d[1], w, w_max))
    };
    let Some((tau0, _, _, w0, w_max)) = eval(opts.window_gates) else {
        return mono(0.0);
    };
    if opts.window_gates.is_some() {
        return mono(tau0);
    }
    // Evaluate at width w; while the second window holds no signal
    // (D1 <= 0: the windows are much longer than the decay), halve it.
    let shrinking = |w: usize| {
        let (mut tau, d0, mut d1, mut w, _) = eval(Some(w))?;
        while d0 > 0.0 && d1 <= 0.0 && w > 1 {
            (tau, _, d1, w, _) = eval(Some(w / 2))?;
        }
        Some((tau, w))
    };
    let Some((mut tau, mut w)) = shrinking(w0) else {
        return mono(tau0);
    };
    // Refine towards the noise-optimal width dT ~ 2.5 tau: re-evaluate at
    // the width the current estimate asks for, until it stops changing.
    for _ in 0..RLD_REFINE_STEPS {
        if !(tau > 0.0 && tau < TAU_MAX_NS) {
            break;
        }
        let w2 = ((RLD_WIDTH_PER_TAU * tau / grid.dt_ns).round() as usize).clamp(1, w_max);
        if w2 == w {
            break;
        }
        match shrinking(w2) {
            Some((t2, w3)) if t2 > 0.0 && t2 < TAU_MAX_NS => (tau, w) = (t2, w3),
            _ => break,
        }
    }
    mono(tau)
}

/// Bi-exponential RLD from four contiguous equal windows after the peak
/// (Sharman et al. 1999). Returns tau1 <= tau2 and the amplitude fraction
/// of tau1 at the window start.
///
/// Window width: the gates after the peak split evenly into four; if the
/// solution's short lifetime is below a third of the window (the short
/// component then sits almost entirely in window 0 and the system is
/// nearly singular under noise), the width is halved, down to an eighth of
/// the even split or 2 gates; the first solution with window <= 3 tau1 is
/// returned, else the narrowest valid one.
///
/// Falls back to [`rld_mono`] (tau2 = tau1, fraction 1) when the 2x2
/// system is singular, the discriminant P^2 - 4Q is negative, a root u is
/// outside (0, 1) (non-decaying component), or a component amplitude is
/// negative: the data do not support two decaying exponentials.
pub fn rld_bi(counts: &[f32], grid: &GateGrid) -> Lifetimes {
    rld_bi_with(counts, grid, &RldOptions::for_grid(grid))
}

/// [`rld_bi`] with explicit window placement (`window_gates` is the width
/// of each of the four windows). The mono fallback uses two windows of
/// twice that width from the same start (adaptive when `None`).
pub fn rld_bi_with(counts: &[f32], grid: &GateGrid, opts: &RldOptions) -> Lifetimes {
    let fallback = || {
        let o = RldOptions {
            offset_gates: opts.offset_gates,
            window_gates: opts.window_gates.map(|w| 2 * w),
        };
        rld_mono_with(counts, grid, &o)
    };
    let solve = |w: Option<usize>| {
        let o = RldOptions {
            offset_gates: opts.offset_gates,
            window_gates: w,
        };
        let (d, dt_w, w, w_max) = window_sums(counts, grid, &o, 4)?;
        let back_ns = opts.offset_gates as f64 * grid.dt_ns;
        Some((
            bi_from_sums([d[0], d[1], d[2], d[3]], dt_w, back_ns),
            dt_w,
            w,
            w_max,
        ))
    };
    let Some((first, dt_w, w, w_max)) = solve(opts.window_gates) else {
        return fallback();
    };
    if opts.window_gates.is_some() {
        return first.unwrap_or_else(fallback);
    }
    // Adaptive width: the widest of w_max, w_max/2, w_max/4, w_max/8 whose
    // solution resolves the short component (window <= 3 tau1), else the
    // narrowest valid solution, else mono.
    let mut best = None;
    let (mut sol, mut dt_w, mut w) = (first, dt_w, w);
    loop {
        if let Some(l) = sol {
            if dt_w <= BI_WINDOW_PER_TAU1 * l.tau1 {
                return l;
            }
            best = Some(l);
        }
        if w <= 2 || w * 8 <= w_max {
            break;
        }
        match solve(Some(w / 2)) {
            Some((s2, d2, w2, _)) => (sol, dt_w, w) = (s2, d2, w2),
            None => break,
        }
    }
    best.unwrap_or_else(fallback)
}

/// Largest window (in units of the short lifetime) at which the adaptive
/// bi-exponential RLD accepts a solution outright.
pub const BI_WINDOW_PER_TAU1: f64 = 3.0;

/// Solve the four-window system; `None` when it has no valid
/// two-decay solution. Amplitudes are extrapolated `back_ns` before the
/// first window (to the peak), where the fraction is reported.
fn bi_from_sums(d: [f64; 4], dt_w: f64, back_ns: f64) -> Option<Lifetimes> {
    let [d0, d1, d2, d3] = d;
    let det = d0 * d2 - d1 * d1;
    let scale = d0 * d0 + d1 * d1 + d2 * d2;
    if det.is_nan() || det.abs() <= 1e-12 * scale {
        return None; // singular (a single exponential) or NaN
    }
    let p = (d0 * d3 - d1 * d2) / det;
    let q = (d1 * d3 - d2 * d2) / det;
    let disc = p * p - 4.0 * q;
    if disc.is_nan() || disc <= 0.0 {
        return None;
    }
    let sq = disc.sqrt();
    let u_long = 0.5 * (p + sq);
    let u_short = 0.5 * (p - sq);
    if !(u_short > 0.0 && u_long < 1.0 && u_short < u_long) {
        return None;
    }
    // Window-0 sums of each component: S_s + S_l = D0, S_s u_s + S_l u_l = D1.
    let s_short = (d1 - u_long * d0) / (u_short - u_long);
    let s_long = d0 - s_short;
    if !(s_short > 0.0 && s_long > 0.0) {
        return None;
    }
    let tau_short = -dt_w / u_short.ln();
    let tau_long = -dt_w / u_long.ln();
    let a_short = s_short / (tau_short * (1.0 - u_short)) * (back_ns / tau_short).exp();
    let a_long = s_long / (tau_long * (1.0 - u_long)) * (back_ns / tau_long).exp();
    let fraction = a_short / (a_short + a_long);
    if !(tau_short.is_finite() && tau_long.is_finite() && fraction.is_finite()) {
        return None;
    }
    Some(Lifetimes {
        tau1: tau_short.min(TAU_MAX_NS),
        tau2: tau_long.min(TAU_MAX_NS),
        fraction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_histograms_do_not_panic() {
        let g = GateGrid::PAPER;
        for c in [
            vec![],
            vec![0.0f32; 135],
            vec![f32::NAN; 135],
            vec![5.0f32; 135],
            vec![1.0f32; 3],
        ] {
            let m = rld_mono(&c, &g);
            let b = rld_bi(&c, &g);
            assert!(m.tau1.is_finite() && b.tau1.is_finite() && b.tau2.is_finite());
            assert!(b.fraction.is_finite());
        }
        // Peak in the last gate: no windows.
        let mut c = vec![1.0f32; 135];
        c[134] = 50.0;
        assert_eq!(rld_mono(&c, &g).tau1, 0.0);
    }

    #[test]
    fn rising_is_capped() {
        // Peak at 0 then a plateau: D0 == D1 -> cap.
        let mut c = vec![1.0f32; 40];
        c[0] = 2.0;
        let g = GateGrid {
            gates: 40,
            dt_ns: 0.1,
            ..GateGrid::PAPER
        };
        let o = RldOptions {
            offset_gates: 1,
            window_gates: None,
        };
        assert_eq!(rld_mono_with(&c, &g, &o).tau1, TAU_MAX_NS);
    }
}
