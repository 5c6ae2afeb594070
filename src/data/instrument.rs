//! An instrument, described: the time grid a recording was made on (bin
//! width, bins, the valid window, the laser period) and its IRF, either
//! measured (a file given by the user) or estimated from the recording's
//! rising edge. `flimgru instrument FILE` writes one as JSON; the
//! simulator and the trainer take it as a data spec
//! ([`Instrument::sim_spec`]), so a model can be trained for the grid and
//! IRF the recording has.

use super::formats::Recording;
use super::grid_match::smoothed;
use super::irf::{IrfSamples, IrfSpec, MeasuredIrf, MeasuredIrfSpec};
use super::simulate::SimSpec;
use super::GateGrid;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tag in every instrument file.
pub const INSTRUMENT_FORMAT: &str = "flimgru-instrument";
pub const INSTRUMENT_VERSION: u32 = 1;
/// Instrument files larger than this are refused before parsing.
const MAX_INSTRUMENT_BYTES: u64 = 64 << 20;
/// Most gates a model for an instrument reads: bins are merged by an
/// integer factor until the window fits (training time grows with G).
pub const MAX_MODEL_GATES: usize = 160;
/// Bins left at each end of the valid window, so a recording whose peak
/// sits a little earlier or later than the described one still matches
/// without padding.
pub const WINDOW_MARGIN_NS: f64 = 0.25;
/// Longest window a model reads (ns): past this a decay of the training
/// range holds no photons worth a gate.
pub const MAX_WINDOW_NS: f64 = 40.0;

/// Where an instrument's IRF came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IrfOrigin {
    /// A measured IRF file.
    Measured { file: String },
    /// Deconvolved from the image-summed decay's rising edge:
    /// irf = f' + f / tau, with tau the decay's log-slope after the peak
    /// (exact for a mono-exponential decay).
    RisingEdge { tail_tau_ns: f64 },
}

/// One instrument's time grid and IRF.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instrument {
    pub format: String,
    pub version: u32,
    /// The recording it was described from.
    pub source: String,
    /// What the reader saw (e.g. "PTU T3 image (PicoHarp)").
    pub kind: String,
    pub bin_width_ns: f64,
    pub bins: usize,
    /// Laser period (ns), when the file records the sync rate.
    pub period_ns: Option<f64>,
    /// The bins that hold photons (the ADC's window), `[start, end)`.
    pub valid_bins: (usize, usize),
    /// The image-summed decay's peak (ns after bin 0).
    pub peak_ns: f64,
    /// Photons in the recording.
    pub photons: u64,
    /// The reader's notes (channels, blocks, frames).
    pub notes: Vec<String>,
    /// The IRF, on the recording's time axis.
    pub irf: IrfSamples,
    pub irf_origin: IrfOrigin,
    /// Its full width at half maximum (ns).
    pub irf_fwhm_ns: f64,
}

impl Instrument {
    /// Describe the instrument of `rec` (read from `source`); `irf` is a
    /// measured IRF, else it is estimated from the rising edge.
    pub fn describe(
        rec: &Recording,
        source: &str,
        irf: Option<(&MeasuredIrf, &str)>,
    ) -> Result<Instrument> {
        let decay = summed_decay(rec);
        let (lo, hi) = (rec.valid_bins.start, rec.valid_bins.end);
        if hi <= lo + 4 {
            bail!(
                "{source}: only {} bins hold photons; too few to describe an instrument",
                hi.saturating_sub(lo)
            );
        }
        let dt = rec.bin_width_ns;
        let peak = (lo..hi)
            .max_by(|&a, &b| decay[a].total_cmp(&decay[b]).then(b.cmp(&a)))
            .expect("a non-empty window");
        let (curve, origin) = match irf {
            Some((m, file)) => (
                IrfSamples {
                    t0_ns: m.t0_ns,
                    spacing_ns: m.spacing_ns,
                    values: m.values.clone(),
                },
                IrfOrigin::Measured {
                    file: file.to_string(),
                },
            ),
            None => {
                let (values, tau) =
                    rising_edge_irf(&decay[lo..hi], peak - lo, dt).with_context(|| {
                        format!("{source}: estimating the IRF from the rising edge")
                    })?;
                (
                    IrfSamples {
                        t0_ns: (lo as f64 + 0.5) * dt,
                        spacing_ns: dt,
                        values,
                    },
                    IrfOrigin::RisingEdge { tail_tau_ns: tau },
                )
            }
        };
        let fwhm = curve.curve(source)?.fwhm();
        let inst = Instrument {
            format: INSTRUMENT_FORMAT.into(),
            version: INSTRUMENT_VERSION,
            source: source.to_string(),
            kind: rec.source.clone(),
            bin_width_ns: dt,
            bins: rec.bins(),
            period_ns: rec.period_ns,
            valid_bins: (lo, hi),
            peak_ns: (peak as f64 + 0.5) * dt,
            photons: rec.photons(),
            notes: rec.notes.clone(),
            irf: curve,
            irf_origin: origin,
            irf_fwhm_ns: fwhm,
        };
        inst.validate()?;
        Ok(inst)
    }

    /// Every field an allocation or a spec is built from, checked.
    pub fn validate(&self) -> Result<()> {
        if self.format != INSTRUMENT_FORMAT {
            bail!("format {:?}, expected {INSTRUMENT_FORMAT:?}", self.format);
        }
        if self.version != INSTRUMENT_VERSION {
            bail!(
                "version {}; this flimgru reads version {INSTRUMENT_VERSION}",
                self.version
            );
        }
        if !(self.bin_width_ns.is_finite() && self.bin_width_ns > 0.0 && self.bin_width_ns <= 10.0)
        {
            bail!(
                "bin_width_ns {} is not a positive width up to 10 ns",
                self.bin_width_ns
            );
        }
        if !(2..=super::formats::MAX_BINS as usize).contains(&self.bins) {
            bail!(
                "bins {} is outside 2..={}",
                self.bins,
                super::formats::MAX_BINS
            );
        }
        let (lo, hi) = self.valid_bins;
        if !(lo < hi && hi <= self.bins) {
            bail!(
                "valid_bins ({lo}, {hi}) is not a range inside the {} bins",
                self.bins
            );
        }
        let window = (hi - lo) as f64 * self.bin_width_ns;
        if let Some(p) = self.period_ns {
            if !(p.is_finite() && p > 0.0 && p <= 1e6) {
                bail!("period_ns {p} is not a positive finite period");
            }
            // The last bin may run past the period by up to a bin.
            if window > p + self.bin_width_ns {
                bail!(
                    "the valid window ({window:.3} ns) is longer than the laser period ({p:.3} ns)"
                );
            }
        }
        if !(self.peak_ns.is_finite() && self.peak_ns >= 0.0) {
            bail!("peak_ns {} is not a time in the window", self.peak_ns);
        }
        self.irf.curve("the instrument's irf")?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Instrument> {
        let what = || format!("instrument file {}", path.display());
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", what()))?;
        if meta.len() > MAX_INSTRUMENT_BYTES {
            bail!(
                "{} is {} bytes, larger than any instrument description",
                what(),
                meta.len()
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", what()))?;
        let inst: Instrument =
            serde_json::from_str(&text).with_context(|| format!("{} is malformed", what()))?;
        inst.validate().with_context(what)?;
        Ok(inst)
    }

    /// The gate grid a model for this instrument reads: the valid window
    /// less [`WINDOW_MARGIN_NS`] at each end (at most [`MAX_WINDOW_NS`]),
    /// bins merged by the smallest integer factor that gives at most
    /// [`MAX_MODEL_GATES`] gates. Returns the grid and the factor.
    pub fn model_grid(&self) -> Result<(GateGrid, usize)> {
        let dt = self.bin_width_ns;
        let margin = (WINDOW_MARGIN_NS / dt).ceil() as usize;
        let (lo, hi) = self.valid_bins;
        let mut usable = (hi - lo).saturating_sub(2 * margin);
        usable = usable.min((MAX_WINDOW_NS / dt).floor() as usize);
        let factor = usable.div_ceil(MAX_MODEL_GATES).max(1);
        let gates = usable / factor;
        let grid = GateGrid::new(gates, dt * factor as f64).with_context(|| {
            format!(
                "the instrument's window ({} bins of {dt} ns after a {WINDOW_MARGIN_NS} ns margin at each end) gives {gates} gates",
                usable
            )
        })?;
        Ok((grid, factor))
    }

    /// A simulator spec for this instrument: its model grid, its laser
    /// period, its IRF (shifted per pixel by up to a bin either way, and
    /// placed where the recording's rising edge is relative to the grid's
    /// start), and `base`'s lifetime, fraction, photon and background
    /// ranges and baseline window.
    pub fn sim_spec(&self, base: &SimSpec) -> Result<SimSpec> {
        let (grid, _) = self.model_grid()?;
        let grid = grid.with_baseline_gates(base.grid.baseline_gates)?;
        let dt = self.bin_width_ns;
        let margin = (WINDOW_MARGIN_NS / dt).ceil() as usize;
        // Gate 0 of the model starts at this recorded time.
        let start_ns = (self.valid_bins.0 + margin) as f64 * dt;
        let mut irf = self.irf.clone();
        if let IrfOrigin::RisingEdge { .. } = self.irf_origin {
            irf.t0_ns -= start_ns;
        } else {
            // A measured IRF's own time axis is not the recording's: put
            // its peak where the recording's decay rises (the decay's
            // peak lags the IRF's by a fraction of the IRF width; matching
            // aligns peaks, so this only has to be close).
            let curve = irf.curve("the instrument's irf")?;
            let at = curve.peak_ns();
            irf.t0_ns += (self.peak_ns - start_ns) - at;
        }
        let period = self
            .period_ns
            .unwrap_or(grid.window_ns())
            .max(grid.window_ns());
        let spec = SimSpec {
            grid,
            period_ns: period,
            irf: IrfSpec {
                measured: Some(MeasuredIrfSpec {
                    path: Default::default(),
                    samples: Some(irf),
                    spacing_ns: None,
                    shift_ns: (-dt, dt),
                }),
                ..base.irf.clone()
            },
            ..base.clone()
        };
        spec.validate()
            .context("the simulator spec made from the instrument")?;
        Ok(spec)
    }
}

/// The image-summed decay (f64 per bin).
fn summed_decay(rec: &Recording) -> Vec<f64> {
    let mut d = vec![0f64; rec.bins()];
    for px in rec.counts.rows() {
        for (a, &c) in d.iter_mut().zip(px) {
            *a += c as f64;
        }
    }
    d
}

/// The IRF of a summed decay `decay` on bins of `dt` ns (bin k centred at
/// (k + 0.5) dt) estimated from its rising edge as
/// [`Instrument::describe`] does, and the tail's lifetime (ns). The phasor
/// calibrates with it when no measured IRF is known.
pub fn rising_edge_estimate(decay: &[f64], dt: f64) -> Result<(IrfSamples, f64)> {
    let peak = (0..decay.len())
        .max_by(|&a, &b| decay[a].total_cmp(&decay[b]).then(b.cmp(&a)))
        .context("an empty decay has no rising edge")?;
    let (values, tau) = rising_edge_irf(decay, peak, dt)?;
    Ok((
        IrfSamples {
            t0_ns: 0.5 * dt,
            spacing_ns: dt,
            values,
        },
        tau,
    ))
}

/// The IRF of a decay `f` (the valid window; `peak` its peak bin) by
/// deconvolution of a mono-exponential: irf = f' + f / tau, where tau is
/// the log-slope of `f` (background removed) over the bins from 0.3 ns
/// after the peak down to a tenth of it. The decay and the result are
/// smoothed over about 60 ps (at least 3 bins), the result clipped at 0
/// and kept from the rise's start to as far after the peak as the rise
/// took. Returns the samples (one per bin of the window) and tau.
fn rising_edge_irf(f: &[f64], peak: usize, dt: f64) -> Result<(Vec<f64>, f64)> {
    let n = f.len();
    // Background: the lowest 3-bin mean level of the window.
    let bg = f
        .windows(3)
        .map(|w| (w[0] + w[1] + w[2]) / 3.0)
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    // Smoothed over ~60 ps (at least 3 bins): fine bins of a small
    // image are too noisy to differentiate.
    let smooth_ns = 0.06f64.max(3.0 * dt);
    let g = smoothed(
        &f.iter().map(|&v| (v - bg).max(0.0)).collect::<Vec<_>>(),
        dt,
        smooth_ns,
    );
    let top = g[peak];
    if top <= 0.0 {
        bail!("the decay has no peak above its background");
    }
    let start = peak + (0.3 / dt).ceil() as usize;
    let mut end = start;
    while end < n && g[end] > 0.1 * top {
        end += 1;
    }
    if end < start + 3 {
        bail!("the decay falls to a tenth of its peak within 0.3 ns; no tail to fit");
    }
    // Weighted least squares of ln g on t (weights g: Poisson).
    let (mut sw, mut st, mut sy, mut stt, mut sty) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in g.iter().enumerate().take(end).skip(start) {
        let (t, y) = (k as f64 * dt, v.ln());
        sw += v;
        st += v * t;
        sy += v * y;
        stt += v * t * t;
        sty += v * t * y;
    }
    let slope = (sw * sty - st * sy) / (sw * stt - st * st);
    if !(slope.is_finite() && slope < 0.0) {
        bail!("the decay's tail does not fall (log-slope {slope})");
    }
    let tau = -1.0 / slope;
    let mut irf: Vec<f64> = (0..n)
        .map(|k| {
            let d = if k == 0 || k + 1 == n {
                0.0
            } else {
                (g[k + 1] - g[k - 1]) / (2.0 * dt)
            };
            (d + g[k] / tau).max(0.0)
        })
        .collect();
    irf = smoothed(&irf, dt, smooth_ns);
    // Keep the rise: from the last bin before the peak below 1 % of the
    // decay's peak, to as far after the peak as the rise took (twice).
    let rise = (0..peak).rev().find(|&k| g[k] < 0.01 * top).unwrap_or(0);
    let keep_end = (peak + 2 * (peak - rise).max(1)).min(n);
    for (k, v) in irf.iter_mut().enumerate() {
        if k < rise || k >= keep_end {
            *v = 0.0;
        }
    }
    if irf.iter().all(|&v| v == 0.0) {
        bail!("the rising edge gives an empty IRF");
    }
    Ok((irf, tau))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording of one mono decay (tau 2 ns) through a Gaussian IRF
    /// of 0.2 ns FWHM: the estimated IRF's FWHM and centre come back.
    #[test]
    fn rising_edge_recovers_a_gaussian_irf() {
        let dt = 0.04;
        let bins = 256;
        // Gaussian (centre 1.5 ns, FWHM 0.2 ns) convolved with exp(-t/2):
        // the exponentially modified Gaussian, integrated per bin.
        let (mu, tau) = (1.5f64, 2.0f64);
        let sigma = 0.2 / crate::data::irf::FWHM_PER_SIGMA;
        let emg = |t: f64| {
            (sigma * sigma / (2.0 * tau * tau) - (t - mu) / tau).exp()
                * libm::erfc((sigma / tau - (t - mu) / sigma) / std::f64::consts::SQRT_2)
        };
        let curve: Vec<f64> = (0..bins)
            .map(|k| {
                (0..20)
                    .map(|j| emg((k as f64 + (j as f64 + 0.5) / 20.0) * dt))
                    .sum()
            })
            .collect();
        let counts = ndarray::Array3::from_shape_fn((1, 1, bins), |(_, _, k)| {
            (curve[k] * 1e7 / curve.iter().sum::<f64>()).round() as u32
        });
        let rec = Recording {
            counts,
            bin_width_ns: dt,
            period_ns: Some(12.5),
            source: "test".into(),
            notes: vec![],
            valid_bins: 0..bins,
        };
        let inst = Instrument::describe(&rec, "test", None).unwrap();
        assert!(
            (inst.irf_fwhm_ns - 0.2).abs() < 0.05,
            "fwhm {}",
            inst.irf_fwhm_ns
        );
        let c = inst.irf.curve("t").unwrap();
        assert!((c.centroid() - 1.5).abs() < 0.06, "centre {}", c.centroid());
        match inst.irf_origin {
            IrfOrigin::RisingEdge { tail_tau_ns } => {
                assert!((tail_tau_ns - 2.0).abs() < 0.1, "tau {tail_tau_ns}")
            }
            _ => panic!("estimated"),
        }
        // Its model grid and spec: within the window, at most 160 gates.
        let (grid, factor) = inst.model_grid().unwrap();
        assert!(
            grid.gates <= MAX_MODEL_GATES && factor == 2,
            "{grid:?} x{factor}"
        );
        let spec = inst.sim_spec(&SimSpec::default()).unwrap();
        assert_eq!(spec.grid, grid);
        // A window longer than the period is refused by name.
        let mut bad = inst.clone();
        bad.period_ns = Some(5.0);
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("longer than the laser period"), "{e}");
        bad = inst;
        bad.bin_width_ns = 0.0;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("bin_width_ns"));
    }
}
