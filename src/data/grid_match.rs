//! Map a recording's histograms onto the model's gate grid: rebin, crop
//! and shift so that the image's summed decay sits where the training data
//! had it, and say in plain words what was done (or why it cannot be).
//!
//! Time axes: source bin i covers `[i, i + 1) * bin_width_ns`; target gate
//! j covers `[j, j + 1) * dt` on the model's axis. The anchor (peak, or the
//! half-maximum of the rising edge) of the summed source decay is found at
//! source time `a`; gate j then takes the source interval `[t0 + j dt,
//! t0 + (j + 1) dt)` with `t0 = a - target_peak_ns`.
//!
//! * `dt` an integer multiple k of the bin width (within 1e-6): `t0` is
//!   rounded to a whole source bin and each gate sums k bins exactly (the
//!   1:1 case with the anchor already in place is the identity).
//! * otherwise: exact fractional rebinning, each source bin contributing
//!   its overlap fraction with the gate (counts uniform within a bin).
//!
//! Gates reaching outside the recorded window are padded with the pixel's
//! mean rate over the nearest recorded bins (at most `max_pad_gates`).

use super::simulate::{simulate, SimSpec};
use super::GateGrid;
use anyhow::{bail, Result};
use ndarray::{Array2, ArrayView2, Axis};
use std::fmt;

/// What the alignment looks for in the summed decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// The maximum (smoothed over one target gate, parabolic refinement).
    Peak,
    /// The half-maximum crossing of the rising edge (linear interpolation).
    RisingEdge,
}

/// Options of [`match_to_grid_with`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatchOptions {
    pub anchor: Anchor,
    /// Most gates that may be padded (start and end together).
    pub max_pad_gates: usize,
    /// Bin widths up to `dt * (1 + tolerance)` are accepted.
    pub coarse_tolerance: f64,
    /// Laser period (ns). When the recording spans one whole period (within
    /// a bin), the histogram is periodic and gates beyond either end wrap
    /// around instead of being padded.
    pub period_ns: Option<f64>,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            anchor: Anchor::Peak,
            max_pad_gates: 4,
            coarse_tolerance: 0.02,
            period_ns: None,
        }
    }
}

/// What [`match_to_grid`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchReport {
    pub source_bins: usize,
    pub source_bin_width_ns: f64,
    pub target: GateGrid,
    /// Target gate width / source bin width.
    pub rebin_factor: f64,
    /// Whether gates are exact sums of whole source bins.
    pub integer_rebin: bool,
    pub anchor: Anchor,
    /// Where the anchor was found in the recording (ns).
    pub anchor_found_ns: f64,
    pub target_peak_ns: f64,
    /// Source time that became gate 0's start (ns): the crop.
    pub crop_start_ns: f64,
    /// Time shift applied to the data (target time = source time + shift).
    pub shift_ns: f64,
    /// Distance between the anchor's position after matching and the
    /// target (ns; non-zero when the shift was rounded to whole bins).
    pub residual_ns: f64,
    pub padded_start: usize,
    pub padded_end: usize,
    /// Gates beyond the recording taken from the other end of a periodic
    /// (whole laser period) histogram instead of padding.
    pub wrapped: usize,
    /// Recorded time left unused before gate 0 and after the last gate (ns).
    pub unused_start_ns: f64,
    pub unused_end_ns: f64,
}

impl fmt::Display for MatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bins of {:.4} ns -> {} gates of {:.4} ns: ",
            self.source_bins, self.source_bin_width_ns, self.target.gates, self.target.dt_ns
        )?;
        if self.integer_rebin {
            if self.rebin_factor.round() == 1.0 {
                write!(f, "no rebinning")?;
            } else {
                write!(f, "summed {} bins per gate", self.rebin_factor.round())?;
            }
        } else {
            write!(
                f,
                "fractional rebinning by {:.4} (overlap fractions)",
                self.rebin_factor
            )?;
        }
        write!(
            f,
            "; {} {:.3} ns moved to {:.3} ns (shift {:+.3} ns, residual {:+.3} ns); gate 0 starts at recorded {:.3} ns",
            match self.anchor {
                Anchor::Peak => "decay peak",
                Anchor::RisingEdge => "rising edge",
            },
            self.anchor_found_ns,
            self.target_peak_ns,
            self.shift_ns,
            self.residual_ns,
            self.crop_start_ns
        )?;
        if self.unused_start_ns > 0.0 || self.unused_end_ns > 0.0 {
            write!(
                f,
                "; cropped {:.3} ns at the start and {:.3} ns at the end",
                self.unused_start_ns, self.unused_end_ns
            )?;
        }
        if self.wrapped > 0 {
            write!(
                f,
                "; {} gate(s) wrapped around the laser period",
                self.wrapped
            )?;
        }
        if self.padded_start + self.padded_end > 0 {
            write!(
                f,
                "; padded {} gate(s) at the start and {} at the end with the nearest recorded rate",
                self.padded_start, self.padded_end
            )?;
        } else {
            write!(f, "; no padding")?;
        }
        Ok(())
    }
}

/// Anchor time (ns) of the summed decay of `counts` `[n, bins]`.
pub fn find_anchor(
    counts: ArrayView2<f32>,
    bin_width_ns: f64,
    smooth_ns: f64,
    anchor: Anchor,
) -> Result<f64> {
    let sum: Vec<f64> = counts.sum_axis(Axis(0)).iter().map(|&v| v as f64).collect();
    anchor_of(&sum, bin_width_ns, smooth_ns, anchor)
}

fn anchor_of(sum: &[f64], b: f64, smooth_ns: f64, anchor: Anchor) -> Result<f64> {
    let n = sum.len();
    if n == 0 || !sum.iter().all(|v| v.is_finite()) {
        bail!("summed decay is empty or not finite");
    }
    if sum.iter().all(|&v| v <= 0.0) {
        bail!("no photons: the summed decay is zero");
    }
    let s = smoothed(sum, b, smooth_ns);
    let ip = (0..n).fold(0, |m, i| if s[i] > s[m] { i } else { m });
    match anchor {
        Anchor::Peak => {
            let mut d = 0.0;
            if ip > 0 && ip + 1 < n {
                let (l, c, r) = (s[ip - 1], s[ip], s[ip + 1]);
                let den = l - 2.0 * c + r;
                if den < 0.0 {
                    d = (0.5 * (l - r) / den).clamp(-0.5, 0.5);
                }
            }
            Ok((ip as f64 + 0.5 + d) * b)
        }
        Anchor::RisingEdge => {
            let base = s[..=ip].iter().cloned().fold(f64::INFINITY, f64::min);
            Ok(crossing(&s, ip, base + 0.5 * (s[ip] - base), b))
        }
    }
}

/// Box smoothing over about `smooth_ns` (odd width, edges clamped).
pub(crate) fn smoothed(sum: &[f64], b: f64, smooth_ns: f64) -> Vec<f64> {
    let n = sum.len();
    let half = ((smooth_ns / b / 2.0).floor() as usize).min(n / 4);
    (0..n)
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half).min(n - 1));
            sum[lo..=hi].iter().sum::<f64>() / (hi - lo + 1) as f64
        })
        .collect()
}

/// Time (ns) where the smoothed decay `s` last rises through `level`
/// before its peak `ip` (linear interpolation; bins of `b` ns).
fn crossing(s: &[f64], ip: usize, level: f64, b: f64) -> f64 {
    let mut i = ip;
    while i > 0 && s[i - 1] > level {
        i -= 1;
    }
    if i == 0 {
        return 0.5 * b;
    }
    let (lo, hi) = (s[i - 1], s[i]);
    let frac = if hi > lo {
        (level - lo) / (hi - lo)
    } else {
        0.5
    };
    (i as f64 - 0.5 + frac) * b
}

/// 10-90 % rise time (ns) of the summed decay of `counts` (bins of `b`
/// ns, smoothed over `smooth_ns`, above its lowest level before the
/// peak): how wide the IRF is, together with the lifetime's own rise.
pub fn rise_time_ns(counts: ArrayView2<f32>, b: f64, smooth_ns: f64) -> Result<f64> {
    let sum: Vec<f64> = counts.sum_axis(Axis(0)).iter().map(|&v| v as f64).collect();
    if sum.is_empty() || !sum.iter().all(|v| v.is_finite()) || sum.iter().all(|&v| v <= 0.0) {
        bail!("summed decay is empty, zero or not finite");
    }
    let s = smoothed(&sum, b, smooth_ns);
    let ip = (0..s.len()).fold(0, |m, i| if s[i] > s[m] { i } else { m });
    let base = s[..=ip].iter().cloned().fold(f64::INFINITY, f64::min);
    let at = |f: f64| crossing(&s, ip, base + f * (s[ip] - base), b);
    Ok(at(0.9) - at(0.1))
}

/// The slowest rise the training data of `spec` has: the rise time of
/// 4,096 pixels (seed 0) drawn with the spec's widest parametric IRF at
/// one centre (a measured IRF as the spec draws it), so the spread of
/// IRF centres in the training data does not widen it.
pub fn reference_rise_time_ns(spec: &SimSpec) -> Result<f64> {
    let mut widest = spec.clone();
    let irf = &mut widest.irf;
    let mid = 0.5 * (irf.centre_ns.0 + irf.centre_ns.1);
    irf.centre_ns = (mid, mid);
    irf.fwhm_ns = (irf.fwhm_ns.1, irf.fwhm_ns.1);
    irf.tail_weight = (irf.tail_weight.1, irf.tail_weight.1);
    irf.tail_tau_ns = (irf.tail_tau_ns.1, irf.tail_tau_ns.1);
    let d = simulate(&widest, 4096, 0)?;
    let c = d.counts.mapv(|v| v as f32);
    rise_time_ns(c.view(), spec.grid.dt_ns, spec.grid.dt_ns)
}

/// Where the training data's summed decay has its anchor: the same
/// estimator run on 4096 pixels simulated from `spec` (seed 0). Pass this
/// as `target_peak_ns` so recordings land where the model was trained.
pub fn reference_anchor_ns(spec: &SimSpec, anchor: Anchor) -> Result<f64> {
    let d = simulate(spec, 4096, 0)?;
    let c = d.counts.mapv(|v| v as f32);
    find_anchor(c.view(), spec.grid.dt_ns, spec.grid.dt_ns, anchor)
}

/// [`match_to_grid_with`] with the default options (peak anchor, at most 4
/// padded gates, bin widths up to 2 % wider than the gate).
pub fn match_to_grid(
    counts: ArrayView2<f32>,
    bin_width_ns: f64,
    target: &GateGrid,
    target_peak_ns: f64,
) -> Result<(Array2<f32>, MatchReport)> {
    match_to_grid_with(
        counts,
        bin_width_ns,
        target,
        target_peak_ns,
        &MatchOptions::default(),
    )
}

/// Rebin, crop and shift `counts` `[n, bins]` (bin width `bin_width_ns`)
/// onto `target` with the anchor of the summed decay at `target_peak_ns`.
pub fn match_to_grid_with(
    counts: ArrayView2<f32>,
    bin_width_ns: f64,
    target: &GateGrid,
    target_peak_ns: f64,
    opts: &MatchOptions,
) -> Result<(Array2<f32>, MatchReport)> {
    let (n_px, nb) = counts.dim();
    let b = bin_width_ns;
    let (g, dt) = (target.gates, target.dt_ns);
    if !(b.is_finite() && b > 0.0) {
        bail!("grid matching: bin width {b} ns is not positive");
    }
    if n_px == 0 || nb == 0 {
        bail!("grid matching: no histograms");
    }
    if !(target_peak_ns.is_finite() && (0.0..target.window_ns()).contains(&target_peak_ns)) {
        bail!(
            "grid matching: target peak {target_peak_ns} ns is outside the {:.3} ns gate window",
            target.window_ns()
        );
    }
    if b > dt * (1.0 + opts.coarse_tolerance) {
        bail!(
            "cannot match: resolution too coarse: the recording's bins are {b:.4} ns wide, the model's gates {dt:.4} ns (rebinning can only merge bins, not split them)"
        );
    }
    if counts.iter().any(|v| !v.is_finite() || *v < 0.0) {
        bail!("grid matching: counts must be finite and non-negative");
    }
    let found = find_anchor(counts, b, dt, opts.anchor)
        .map_err(|e| anyhow::anyhow!("cannot match: {e}"))?;
    let r = dt / b;
    let k = r.round();
    let integer = k >= 1.0 && (r - k).abs() <= 1e-6 * r;
    let window = nb as f64 * b;
    let anchor_name = match opts.anchor {
        Anchor::Peak => "decay peak",
        Anchor::RisingEdge => "rising edge",
    };
    let place = |t0_exact: f64| -> Result<Placement> {
        let (t0, s0) = if integer {
            let s0 = (t0_exact / b).round() as i64;
            (s0 as f64 * b, s0)
        } else {
            (t0_exact, 0)
        };
        let eps = 1e-9 * dt;
        let mut padded_start = (0..g).filter(|&j| t0 + j as f64 * dt < -eps).count();
        let mut padded_end = (0..g)
            .filter(|&j| t0 + (j + 1) as f64 * dt > window + eps)
            .count();
        let periodic = opts.period_ns.is_some_and(|p| {
            (p - window).abs() <= b && t0 > -window && t0 + g as f64 * dt < 2.0 * window
        });
        let mut wrapped = 0;
        if periodic {
            wrapped = padded_start + padded_end;
            padded_start = 0;
            padded_end = 0;
        }
        if padded_start + padded_end > opts.max_pad_gates {
            bail!(
                "cannot match: window too short: the recording covers {window:.3} ns; with its {anchor_name} at {found:.3} ns moved to {target_peak_ns:.3} ns the {g} gates ({:.3} ns) would need {padded_start} gate(s) padded before the recording and {padded_end} after it (at most {} allowed)",
                target.window_ns(),
                opts.max_pad_gates
            );
        }
        let out = resample(counts, b, dt, g, integer, k as i64, t0, s0, periodic, r);
        Ok(Placement {
            t0,
            padded_start,
            padded_end,
            wrapped,
            out,
        })
    };
    let mut pl = place(found - target_peak_ns)?;
    let mut residual = 0.0;
    if !integer {
        // The anchor estimate depends on the bin layout: measure it again
        // on the target grid (where the reference was measured) and
        // correct once.
        let again = find_anchor(pl.out.view(), dt, dt, opts.anchor)?;
        pl = place(pl.t0 + again - target_peak_ns)?;
        residual = find_anchor(pl.out.view(), dt, dt, opts.anchor)? - target_peak_ns;
    } else {
        residual += (found - pl.t0) - target_peak_ns;
    }
    let Placement {
        t0,
        padded_start,
        padded_end,
        wrapped,
        out,
    } = pl;
    let report = MatchReport {
        source_bins: nb,
        source_bin_width_ns: b,
        target: *target,
        rebin_factor: r,
        integer_rebin: integer,
        anchor: opts.anchor,
        anchor_found_ns: found,
        target_peak_ns,
        crop_start_ns: t0,
        shift_ns: -t0,
        residual_ns: residual,
        padded_start,
        padded_end,
        wrapped,
        unused_start_ns: t0.max(0.0),
        unused_end_ns: (window - (t0 + g as f64 * dt)).max(0.0),
    };
    Ok((out, report))
}

struct Placement {
    t0: f64,
    padded_start: usize,
    padded_end: usize,
    wrapped: usize,
    out: Array2<f32>,
}

/// Gate j of each row takes the source interval `[t0 + j dt, t0 + (j + 1)
/// dt)`; whole bins from `s0 + j k` when `integer`.
#[allow(clippy::too_many_arguments)]
fn resample(
    counts: ArrayView2<f32>,
    b: f64,
    dt: f64,
    g: usize,
    integer: bool,
    k: i64,
    t0: f64,
    s0: i64,
    periodic: bool,
    r: f64,
) -> Array2<f32> {
    let (n_px, nb) = counts.dim();
    // Per-pixel fill rates (counts per source bin) for padding.
    let m = ((2.0 * r).ceil() as usize).clamp(1, nb);
    let mut out = Array2::<f32>::zeros((n_px, g));
    for (row, mut o) in counts.outer_iter().zip(out.outer_iter_mut()) {
        let x = row.to_vec();
        let fill_start = x[..m].iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let fill_end = x[nb - m..].iter().map(|&v| v as f64).sum::<f64>() / m as f64;
        let val = |i: i64| -> f64 {
            if periodic {
                x[i.rem_euclid(nb as i64) as usize] as f64
            } else if i < 0 {
                fill_start
            } else if i as usize >= nb {
                fill_end
            } else {
                x[i as usize] as f64
            }
        };
        for (j, oj) in o.iter_mut().enumerate() {
            let v = if integer {
                let lo = s0 + j as i64 * k;
                (lo..lo + k).map(val).sum::<f64>()
            } else {
                let (a, e) = (t0 + j as f64 * dt, t0 + (j + 1) as f64 * dt);
                let (i0, i1) = ((a / b).floor() as i64, (e / b).ceil() as i64);
                (i0..i1)
                    .map(|i| {
                        let lo = a.max(i as f64 * b);
                        let hi = e.min((i + 1) as f64 * b);
                        val(i) * ((hi - lo) / b).max(0.0)
                    })
                    .sum::<f64>()
            };
            *oj = v as f32;
        }
    }
    out
}
