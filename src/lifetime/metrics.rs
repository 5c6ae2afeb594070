//! Accuracy metrics: lifetime errors against the simulation's truth,
//! channel errors against the Seq2Seq targets, the F-value, and the
//! accuracy table that puts methods side by side.
//!
//! Conventions:
//! - Errors are estimate - truth; bias is their mean, RMSE the root of the
//!   mean square.
//! - tau1 is compared on every pixel (for mono pixels tau1 is the lifetime);
//!   tau2 and fraction only on bi-exponential pixels (`Truth::mono ==
//!   false`); tau_mean = a tau1 + (1 - a) tau2 (the amplitude-weighted mean
//!   lifetime; tau1 for mono truth) on every pixel, the estimate's from its
//!   own fraction and taus.
//! - A NaN or infinite estimate of a quantity is counted (`ErrStats::nan`)
//!   and left out of that quantity's means.
//! - Photon bins are half-open [lo, hi) on `Truth::photons`
//!   ([`PHOTON_BINS`]); pixels outside every bin count only overall.
//! - An empty set has `rmse = bias = None` (serialized as `null`, shown as
//!   "-").

use super::Lifetimes;
use crate::data::Truth;
use anyhow::{bail, Result};
use ndarray::{ArrayView3, Axis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Photon-count bins [lo, hi) on `Truth::photons`.
pub const PHOTON_BINS: [(u64, u64); 3] = [(50, 300), (300, 1000), (1000, 5000)];

/// Error statistics of one quantity over a set of pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrStats {
    /// Pixels with a finite estimate (the ones in the means).
    pub n: usize,
    /// Pixels whose estimate was NaN or infinite (excluded).
    pub nan: usize,
    pub rmse: Option<f64>,
    pub bias: Option<f64>,
}

impl ErrStats {
    /// From (estimate, truth) pairs; non-finite estimates are counted and
    /// skipped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (f64, f64)>) -> Self {
        let (mut n, mut nan, mut s, mut s2) = (0usize, 0usize, 0.0f64, 0.0f64);
        for (est, truth) in pairs {
            if !est.is_finite() {
                nan += 1;
                continue;
            }
            let e = est - truth;
            n += 1;
            s += e;
            s2 += e * e;
        }
        let (rmse, bias) = if n == 0 {
            (None, None)
        } else {
            ((s2 / n as f64).sqrt().into(), (s / n as f64).into())
        };
        ErrStats { n, nan, rmse, bias }
    }
}

/// Errors of one photon-count bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinMetrics {
    /// Bin [lo, hi) on detected photons.
    pub lo: u64,
    pub hi: u64,
    /// Pixels in the bin.
    pub n: usize,
    pub tau1: ErrStats,
    pub tau2: ErrStats,
    pub fraction: ErrStats,
    pub tau_mean: ErrStats,
}

/// Predicted channels against targets (`[n, G, 3]`), as in the paper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelMetrics {
    pub n_pixels: usize,
    /// Full-decay channel (ch0): RMSE over all its elements.
    pub ch0_rmse: Option<f64>,
    /// 1 - SS_res / SS_tot over all elements of ch0 (None if SS_tot = 0).
    pub ch0_r2: Option<f64>,
    /// Mean over pixels of the Euclidean norm of the ch0 error vector.
    pub ch0_l2: Option<f64>,
    /// RMSE of each channel (0 full, 1 short, 2 long).
    pub rmse: [Option<f64>; 3],
    /// R^2 of each channel.
    pub r2: [Option<f64>; 3],
    /// Element pairs with a non-finite prediction or target (excluded).
    pub nonfinite: usize,
}

impl ChannelMetrics {
    /// Metrics of `pred` against `target`, both `[n, G, 3]`.
    pub fn compute(pred: ArrayView3<f32>, target: ArrayView3<f32>) -> Result<Self> {
        if pred.dim() != target.dim() {
            bail!(
                "channel shapes differ: prediction {:?}, target {:?}",
                pred.dim(),
                target.dim()
            );
        }
        let (n, _g, c) = pred.dim();
        if c != 3 {
            bail!("channels need 3 columns, got {c}");
        }
        let mut rmse = [None; 3];
        let mut r2 = [None; 3];
        let mut nonfinite = 0usize;
        let mut l2_sum = 0.0f64;
        for ch in 0..3 {
            let p = pred.index_axis(Axis(2), ch);
            let t = target.index_axis(Axis(2), ch);
            let (mut m, mut sum_t, mut sum_t2, mut ss_res) = (0usize, 0.0f64, 0.0f64, 0.0f64);
            for (pp, tt) in p.axis_iter(Axis(0)).zip(t.axis_iter(Axis(0))) {
                let mut px = 0.0f64;
                for (&a, &b) in pp.iter().zip(tt.iter()) {
                    if !(a.is_finite() && b.is_finite()) {
                        nonfinite += 1;
                        continue;
                    }
                    let (a, b) = (a as f64, b as f64);
                    let e = a - b;
                    m += 1;
                    sum_t += b;
                    sum_t2 += b * b;
                    ss_res += e * e;
                    px += e * e;
                }
                if ch == 0 {
                    l2_sum += px.sqrt();
                }
            }
            if m > 0 {
                rmse[ch] = Some((ss_res / m as f64).sqrt());
                let mean = sum_t / m as f64;
                let ss_tot = (sum_t2 - m as f64 * mean * mean).max(0.0);
                if ss_tot > 0.0 {
                    r2[ch] = Some(1.0 - ss_res / ss_tot);
                }
            }
        }
        Ok(ChannelMetrics {
            n_pixels: n,
            ch0_rmse: rmse[0],
            ch0_r2: r2[0],
            ch0_l2: (n > 0).then(|| l2_sum / n as f64),
            rmse,
            r2,
            nonfinite,
        })
    }
}

/// One method's accuracy against the truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodMetrics {
    pub name: String,
    /// Pixels evaluated.
    pub n: usize,
    /// Pixels with at least one non-finite field in the estimate.
    pub nan_estimates: usize,
    pub tau1: ErrStats,
    pub tau2: ErrStats,
    pub fraction: ErrStats,
    pub tau_mean: ErrStats,
    pub per_bin: Vec<BinMetrics>,
    pub channels: Option<ChannelMetrics>,
    /// Throughput, filled in by whoever timed the method.
    pub pixels_per_second: Option<f64>,
}

fn truth_tau_mean(t: &Truth) -> f64 {
    if t.mono {
        t.tau1
    } else {
        t.fraction * t.tau1 + (1.0 - t.fraction) * t.tau2
    }
}

/// The four error statistics over the pixels `idx`.
fn stats_over(
    truth: &[Truth],
    est: &[Lifetimes],
    idx: &[usize],
) -> (ErrStats, ErrStats, ErrStats, ErrStats) {
    let tau1 = ErrStats::from_pairs(idx.iter().map(|&i| (est[i].tau1, truth[i].tau1)));
    let bi = || idx.iter().copied().filter(|&i| !truth[i].mono);
    let tau2 = ErrStats::from_pairs(bi().map(|i| (est[i].tau2, truth[i].tau2)));
    let fraction = ErrStats::from_pairs(bi().map(|i| (est[i].fraction, truth[i].fraction)));
    let tau_mean = ErrStats::from_pairs(
        idx.iter()
            .map(|&i| (est[i].tau_mean(), truth_tau_mean(&truth[i]))),
    );
    (tau1, tau2, fraction, tau_mean)
}

impl MethodMetrics {
    /// Errors of `est` against `truth` (same length, same order), overall
    /// and per [`PHOTON_BINS`] bin, plus channel metrics when
    /// `channels = Some((predicted, target))` is given. Errors on length or
    /// shape mismatch; odd values (NaN estimates) are counted, not errors.
    pub fn compute(
        name: impl Into<String>,
        truth: &[Truth],
        est: &[Lifetimes],
        channels: Option<(ArrayView3<f32>, ArrayView3<f32>)>,
    ) -> Result<Self> {
        if truth.len() != est.len() {
            bail!(
                "truth has {} pixels but the estimates {}",
                truth.len(),
                est.len()
            );
        }
        let channels = match channels {
            Some((p, t)) => {
                if p.len_of(Axis(0)) != truth.len() {
                    bail!(
                        "channels have {} pixels, truth {}",
                        p.len_of(Axis(0)),
                        truth.len()
                    );
                }
                Some(ChannelMetrics::compute(p, t)?)
            }
            None => None,
        };
        let all: Vec<usize> = (0..truth.len()).collect();
        let (tau1, tau2, fraction, tau_mean) = stats_over(truth, est, &all);
        let per_bin = PHOTON_BINS
            .iter()
            .map(|&(lo, hi)| {
                let idx: Vec<usize> = all
                    .iter()
                    .copied()
                    .filter(|&i| (lo..hi).contains(&truth[i].photons))
                    .collect();
                let (tau1, tau2, fraction, tau_mean) = stats_over(truth, est, &idx);
                BinMetrics {
                    lo,
                    hi,
                    n: idx.len(),
                    tau1,
                    tau2,
                    fraction,
                    tau_mean,
                }
            })
            .collect();
        let nan_estimates = est
            .iter()
            .filter(|e| !(e.tau1.is_finite() && e.tau2.is_finite() && e.fraction.is_finite()))
            .count();
        Ok(MethodMetrics {
            name: name.into(),
            n: truth.len(),
            nan_estimates,
            tau1,
            tau2,
            fraction,
            tau_mean,
            per_bin,
            channels,
            pixels_per_second: None,
        })
    }

    /// Set the measured throughput.
    pub fn with_throughput(mut self, pixels_per_second: f64) -> Self {
        self.pixels_per_second = Some(pixels_per_second);
        self
    }
}

/// The (tau ns, photons) points where `flimgru eval` reports F and the
/// recipe's F validation measures it: the precision targets' points.
pub const F_POINTS: [(f64, f64); 4] = [(0.5, 1000.0), (1.0, 1000.0), (2.0, 1000.0), (1.0, 5000.0)];

/// F-value of a mono-exponential estimator: F = sqrt(N) std(tau_est) / tau
/// over estimates of pixels sharing the true `tau` and photon count `n`
/// (1 is the Cramer-Rao bound for an infinite window, no IRF). std is the
/// sample standard deviation (n - 1); non-finite estimates are skipped.
/// `None` with fewer than 2 finite estimates or a non-positive tau or N.
pub fn f_value(estimates: &[f64], tau: f64, photons: f64) -> Option<f64> {
    let v = f_estimates(estimates, tau, photons)?;
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (v.len() - 1) as f64;
    Some(photons.sqrt() * var.sqrt() / tau)
}

/// The finite estimates an F is computed on; `None` with fewer than 2 or
/// a non-positive tau or N.
fn f_estimates(estimates: &[f64], tau: f64, photons: f64) -> Option<Vec<f64>> {
    if !(tau > 0.0 && photons > 0.0) {
        return None;
    }
    let v: Vec<f64> = estimates
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    (v.len() >= 2).then_some(v)
}

/// [`f_value`] with the bias in: sqrt(N) RMS(tau_est - tau) / tau, so an
/// estimator that returns one lifetime for every pixel scores its bias,
/// not 0. Same skipping and `None` cases as [`f_value`].
pub fn rms_f_value(estimates: &[f64], tau: f64, photons: f64) -> Option<f64> {
    let v = f_estimates(estimates, tau, photons)?;
    let ms = v.iter().map(|x| (x - tau) * (x - tau)).sum::<f64>() / v.len() as f64;
    Some(photons.sqrt() * ms.sqrt() / tau)
}

/// One group of [`f_value_table`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FValueRow {
    /// True lifetime of the group (ns).
    pub tau: f64,
    /// Expected photons of the group (the grouping key).
    pub expected_photons: f64,
    /// Mean detected photons, the N used in F.
    pub photons: f64,
    pub n: usize,
    pub f: Option<f64>,
}

/// F-values of the mono-exponential pixels of `truth`, grouped by exact
/// (tau1, expected_photons); N is the group's mean detected photon count.
/// Bi-exponential pixels are ignored. Rows sorted by (tau, photons).
pub fn f_value_table(truth: &[Truth], est: &[Lifetimes]) -> Vec<FValueRow> {
    let mut groups: BTreeMap<(u64, u64), (Vec<f64>, f64)> = BTreeMap::new();
    for (t, e) in truth.iter().zip(est) {
        if !t.mono {
            continue;
        }
        // Positive finite f64s order like their bit patterns.
        let g = groups
            .entry((t.tau1.to_bits(), t.expected_photons.to_bits()))
            .or_default();
        g.0.push(e.tau1);
        g.1 += t.photons as f64;
    }
    groups
        .into_iter()
        .map(|((tau, ep), (v, ph))| {
            let tau = f64::from_bits(tau);
            let photons = ph / v.len() as f64;
            FValueRow {
                tau,
                expected_photons: f64::from_bits(ep),
                photons,
                n: v.len(),
                f: f_value(&v, tau, photons),
            }
        })
        .collect()
}

/// The methods side by side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccuracyTable {
    pub methods: Vec<MethodMetrics>,
    /// Free-form notes printed under the tables (data set, grid, seeds).
    pub notes: Vec<String>,
}

fn fmt_opt(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        Some(v) => format!("{v}"),
        None => "-".to_string(),
    }
}

fn fmt_signed(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:+.4}"),
        other => fmt_opt(other),
    }
}

fn fmt_rate(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() && v >= 1e6 => format!("{:.2} M", v / 1e6),
        Some(v) if v.is_finite() && v >= 1e3 => format!("{:.1} k", v / 1e3),
        Some(v) if v.is_finite() => format!("{v:.0}"),
        _ => "-".to_string(),
    }
}

impl AccuracyTable {
    pub fn new(methods: Vec<MethodMetrics>) -> Self {
        AccuracyTable {
            methods,
            notes: Vec::new(),
        }
    }

    /// Markdown: the overall table (rows = methods), one table per photon
    /// bin, the channel table for methods that have channels, and the notes.
    /// Lifetimes in ns; empty cells "-".
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let head = "| method | n | tau1 RMSE | tau1 bias | tau2 RMSE | tau2 bias | \
                    fraction RMSE | fraction bias | tau_mean RMSE |";
        let rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|";
        let row = |name: &str, n: usize, st: [&ErrStats; 4]| -> String {
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                name,
                n,
                fmt_opt(st[0].rmse),
                fmt_signed(st[0].bias),
                fmt_opt(st[1].rmse),
                fmt_signed(st[1].bias),
                fmt_opt(st[2].rmse),
                fmt_signed(st[2].bias),
                fmt_opt(st[3].rmse),
            )
        };
        let _ = writeln!(s, "### Lifetime accuracy (all pixels)\n");
        let _ = writeln!(s, "{head} NaN estimates | pixels/s |");
        let _ = writeln!(s, "{rule}---:|---:|");
        for m in &self.methods {
            let r = row(&m.name, m.n, [&m.tau1, &m.tau2, &m.fraction, &m.tau_mean]);
            let _ = writeln!(
                s,
                "{} {} | {} |",
                r,
                m.nan_estimates,
                fmt_rate(m.pixels_per_second)
            );
        }
        let bins: Vec<(u64, u64)> = self
            .methods
            .first()
            .map(|m| m.per_bin.iter().map(|b| (b.lo, b.hi)).collect())
            .unwrap_or_default();
        for (lo, hi) in bins {
            let _ = writeln!(s, "\n### Photons in [{lo}, {hi})\n");
            let _ = writeln!(s, "{head}\n{rule}");
            for m in &self.methods {
                if let Some(b) = m.per_bin.iter().find(|b| b.lo == lo && b.hi == hi) {
                    let _ = writeln!(
                        s,
                        "{}",
                        row(&m.name, b.n, [&b.tau1, &b.tau2, &b.fraction, &b.tau_mean])
                    );
                }
            }
        }
        if self.methods.iter().any(|m| m.channels.is_some()) {
            let _ = writeln!(s, "\n### Channels (prediction vs target)\n");
            let _ = writeln!(
                s,
                "| method | ch0 RMSE | ch0 R^2 | ch0 L2 | ch1 RMSE | ch2 RMSE | non-finite |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
            for m in &self.methods {
                if let Some(c) = &m.channels {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {} | {} | {} |",
                        m.name,
                        fmt_opt(c.ch0_rmse),
                        fmt_opt(c.ch0_r2),
                        fmt_opt(c.ch0_l2),
                        fmt_opt(c.rmse[1]),
                        fmt_opt(c.rmse[2]),
                        c.nonfinite
                    );
                }
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}

/// The figure training runs are validated on (lower is better): an
/// F-value-like, photon-weighted RMS relative lifetime error,
///
///   sqrt(mean_all(N/1000 e_mean^2)) + sqrt(mean_split(N/1000 (e1^2 + e2^2) / 2)),
///
/// where e_mean is the relative error of the mean lifetime (every pixel),
/// e1 and e2 those of tau1 and tau2 over the bi-exponential pixels whose
/// split is well posed (tau2 >= 2 tau1, fraction in [0.1, 0.9]), and N
/// the pixel's detected photons. Weighting by N makes a pixel count by its
/// error relative to its photon-noise bound, as the F-value does. Each
/// relative error is capped at 1 (100 %; a non-finite estimate counts as
/// 1), so one pixel at the 100 ns guard counts as a wrong pixel, not as
/// the whole set's error.
pub fn precision_score(truth: &[Truth], est: &[Lifetimes]) -> f64 {
    let rel = |e: f64, t: f64| {
        let r = ((e - t) / t).abs();
        if r.is_finite() {
            r.min(1.0).powi(2)
        } else {
            1.0
        }
    };
    let (mut all, mut n_all, mut split, mut n_split) = (0.0, 0usize, 0.0, 0usize);
    for (t, e) in truth.iter().zip(est) {
        let w = t.photons as f64 / 1000.0;
        let true_mean = if t.mono {
            t.tau1
        } else {
            t.fraction * t.tau1 + (1.0 - t.fraction) * t.tau2
        };
        all += w * rel(e.tau_mean(), true_mean);
        n_all += 1;
        if !t.mono && t.tau2 >= 2.0 * t.tau1 && (0.1..=0.9).contains(&t.fraction) {
            split += w * 0.5 * (rel(e.tau1, t.tau1) + rel(e.tau2, t.tau2));
            n_split += 1;
        }
    }
    let part = |s: f64, n: usize| if n == 0 { 0.0 } else { (s / n as f64).sqrt() };
    part(all, n_all) + part(split, n_split)
}
