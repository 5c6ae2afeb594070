//! Out of range: a pixel whose decay is longer than anything the model was
//! trained on gets a flag, not a confident number. A network can only
//! answer inside its training distribution (a 20 ns decay comes out near
//! the longest lifetime it saw), so the check uses two model-free
//! features of the pixel's histogram, each compared with the same feature
//! on pixels simulated from the model's own data spec with a similar
//! photon count:
//! - the mono-exponential RLD lifetime ([`rld_mono`]): a decay longer than
//!   the training range that still fits in the window;
//! - the level at the end of the window relative to the peak (mean of the
//!   last [`BASELINE_GATES`] gates over the largest gate): a decay so long
//!   that it has not fallen by the end of the window (the RLD, which
//!   subtracts the level before the peak, misses one that wraps round the
//!   laser period), or a background far above the training range.
//!
//! A pixel is out of range when either feature is above the
//! [`RANGE_QUANTILE`] quantile of those training pixels: on the training
//! distribution itself about 2 (1 - [`RANGE_QUANTILE`]) = 0.1 % of the
//! pixels are flagged (9 of 5,000 held-out pixels, 0.18 %, in the test).

use super::rld::rld_mono;
use crate::data::simulate::{simulate, SimSpec};
use crate::data::{GateGrid, BASELINE_GATES};
use anyhow::Result;

/// Training pixels simulated for the thresholds.
pub const RANGE_PIXELS: usize = 40_000;
/// Seed of those pixels (fixed: the same model always gets the same
/// thresholds).
pub const RANGE_SEED: u64 = 0x05ee_d0f4_a96e;
/// Photon-count bins (log-spaced over the spec's range).
pub const RANGE_BINS: usize = 8;
/// Quantile of the training pixels' RLD lifetime above which a pixel is
/// out of range.
pub const RANGE_QUANTILE: f64 = 0.9995;

/// The two features of a histogram on the model's grid: (RLD lifetime in
/// ns, level at the end of the window over the peak).
fn features(counts: &[f32], grid: &GateGrid) -> [f64; 2] {
    let b = BASELINE_GATES.min(counts.len());
    let tail = &counts[counts.len() - b..];
    let base = tail.iter().map(|&c| c as f64).sum::<f64>() / b.max(1) as f64;
    let peak = counts.iter().fold(0f32, |m, &c| m.max(c)) as f64;
    let level = if peak > 0.0 { base / peak } else { 0.0 };
    [rld_mono(counts, grid).tau1, level]
}

/// Per-photon-bin thresholds on the RLD lifetime for one model's spec.
#[derive(Clone, Debug)]
pub struct RangeCheck {
    grid: GateGrid,
    /// log10 of the photon-bin edges (RANGE_BINS + 1).
    edges: Vec<f64>,
    /// Thresholds per bin on each feature of [`features`].
    thresholds: Vec<[f64; 2]>,
    /// The spec's longest lifetime (ns), for messages.
    pub tau_max_ns: f64,
}

impl RangeCheck {
    /// Thresholds from [`RANGE_PIXELS`] pixels of `spec`.
    pub fn for_spec(spec: &SimSpec) -> Result<RangeCheck> {
        let data = simulate(spec, RANGE_PIXELS, RANGE_SEED)?;
        let (lo, hi) = (
            spec.photons.0.log10(),
            spec.photons.1.log10().max(spec.photons.0.log10() + 1e-9),
        );
        let edges: Vec<f64> = (0..=RANGE_BINS)
            .map(|k| lo + (hi - lo) * k as f64 / RANGE_BINS as f64)
            .collect();
        let mut per_bin: Vec<[Vec<f64>; 2]> = vec![[Vec::new(), Vec::new()]; RANGE_BINS];
        let mut row = vec![0f32; spec.grid.gates];
        for counts in data.counts.outer_iter() {
            row.iter_mut().zip(counts).for_each(|(r, &c)| *r = c as f32);
            let photons: f64 = counts.iter().map(|&c| c as f64).sum();
            let f = features(&row, &spec.grid);
            let bin = &mut per_bin[bin_of(&edges, photons)];
            bin[0].push(f[0]);
            bin[1].push(f[1]);
        }
        let quantile = |mut v: Vec<f64>| {
            v.retain(|t| t.is_finite());
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                f64::NAN
            } else {
                v[((v.len() - 1) as f64 * RANGE_QUANTILE).round() as usize]
            }
        };
        let mut thresholds: Vec<[f64; 2]> = per_bin
            .into_iter()
            .map(|[a, b]| [quantile(a), quantile(b)])
            .collect();
        // An empty bin (a spec with a narrow photon range) takes its
        // neighbour's thresholds.
        for k in 1..RANGE_BINS {
            if thresholds[k][0].is_nan() {
                thresholds[k] = thresholds[k - 1];
            }
        }
        for k in (0..RANGE_BINS - 1).rev() {
            if thresholds[k][0].is_nan() {
                thresholds[k] = thresholds[k + 1];
            }
        }
        Ok(RangeCheck {
            grid: spec.grid,
            edges,
            thresholds,
            tau_max_ns: spec.mono_tau_ns().1,
        })
    }

    /// Whether a histogram on the model's grid is out of range.
    pub fn out_of_range(&self, counts: &[f32]) -> bool {
        let photons: f64 = counts.iter().map(|&c| c as f64).sum();
        let t = self.thresholds(photons);
        let f = features(counts, &self.grid);
        f[0] > t[0] || f[1] > t[1]
    }

    /// The thresholds at a photon count: RLD lifetime (ns), level at the
    /// end of the window over the peak.
    pub fn thresholds(&self, photons: f64) -> [f64; 2] {
        self.thresholds[bin_of(&self.edges, photons)]
    }
}

/// Bin of a photon count; counts outside the spec's range use the end bins.
fn bin_of(edges: &[f64], photons: f64) -> usize {
    let x = photons.max(1.0).log10();
    edges[1..edges.len() - 1].partition_point(|&e| e <= x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_long_decays_and_few_training_pixels() {
        let spec = SimSpec::default();
        let check = RangeCheck::for_spec(&spec).unwrap();
        // Thresholds fall as photons grow (less noise), and stay above the
        // spec's longest lifetime.
        eprintln!("thresholds {:?}", check.thresholds);
        let (low, high) = (check.thresholds(60.0), check.thresholds(4000.0));
        assert!(low[0] >= high[0] && low[1] >= high[1]);
        assert!(high[0] > 0.8 * spec.tau_ns.1);
        // Held-out pixels of the training distribution: 9 of 5,000 (0.18 %)
        // flagged when measured; at most 0.5 % allowed.
        let held = simulate(&spec, 5000, 99).unwrap();
        let flagged = |d: &crate::data::Dataset| {
            d.counts
                .outer_iter()
                .filter(|c| {
                    let row: Vec<f32> = c.iter().map(|&v| v as f32).collect();
                    check.out_of_range(&row)
                })
                .count()
        };
        let f = flagged(&held);
        assert!(f <= 25, "{f} of 5000 in-range pixels flagged");
        // Mono decays of 12 ns (about the laser period) with 1,000-5,000
        // photons: all flagged.
        let long = SimSpec {
            tau_ns: (12.0, 12.0),
            mono_fraction: 1.0,
            photons: (1000.0, 5000.0),
            ..spec.clone()
        };
        let d = simulate(&long, 500, 5).unwrap();
        assert_eq!(flagged(&d), 500);
    }
}
