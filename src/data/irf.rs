//! Instrument response functions (IRF): where in time, relative to the
//! gate grid, the excitation of one pixel happens.
//!
//! Three shapes: a Gaussian (centre, FWHM); the "SPAD" shape, a Gaussian
//! convolved with an exponential diffusion tail,
//! `irf = (1 - w) gauss + w (gauss conv exp(-t/tail_tau)/tail_tau)`; and a
//! measured curve loaded from a file, optionally shifted per pixel.
//!
//! An IRF is turned into probability masses on the forward model's fine
//! grid over one laser period ([`Irf::fill_masses`]); mass falling outside
//! `[0, period)` wraps around (the periodic steady state of a pulsed laser).

use super::fine_grid::{periodic_exp_conv, FineGrid};
use super::io::read_npy_f64;
use anyhow::{bail, Context, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// FWHM of a Gaussian over its standard deviation: 2 sqrt(2 ln 2).
pub const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949;

/// Longest measured IRF curve accepted (samples).
pub const MAX_IRF_SAMPLES: usize = 1 << 20;

/// A measured IRF: non-negative samples on a uniform time axis
/// `t_i = t0 + i spacing`, each standing for the box `[t_i - spacing/2,
/// t_i + spacing/2)`. Values are normalised to sum 1 on load.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredIrf {
    /// Where the curve came from (for messages).
    pub source: String,
    pub t0_ns: f64,
    pub spacing_ns: f64,
    pub values: Vec<f64>,
}

impl MeasuredIrf {
    /// Validate and normalise a curve.
    pub fn new(source: &str, t0_ns: f64, spacing_ns: f64, values: Vec<f64>) -> Result<Self> {
        if !(spacing_ns.is_finite() && spacing_ns > 0.0 && spacing_ns <= 100.0) {
            bail!("IRF {source}: sample spacing {spacing_ns} ns is not a positive finite spacing up to 100 ns");
        }
        if !(t0_ns.is_finite() && t0_ns.abs() <= 1e4) {
            bail!("IRF {source}: start time {t0_ns} ns is not finite or beyond 1e4 ns");
        }
        if values.len() < 2 || values.len() > MAX_IRF_SAMPLES {
            bail!(
                "IRF {source}: {} samples, expected 2..={MAX_IRF_SAMPLES}",
                values.len()
            );
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("IRF {source}: sample {i} is not finite ({})", values[i]);
        }
        if let Some(i) = values.iter().position(|&v| v < 0.0) {
            bail!("IRF {source}: sample {i} is negative ({})", values[i]);
        }
        let sum: f64 = values.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            bail!("IRF {source}: samples sum to {sum}, need a positive finite sum");
        }
        let values = values.into_iter().map(|v| v / sum).collect();
        Ok(MeasuredIrf {
            source: source.to_string(),
            t0_ns,
            spacing_ns,
            values,
        })
    }

    /// Centroid (ns) of the curve.
    pub fn centroid(&self) -> f64 {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| v * (self.t0_ns + i as f64 * self.spacing_ns))
            .sum()
    }

    /// Time (ns) of the largest sample.
    pub fn peak_ns(&self) -> f64 {
        let i = (0..self.values.len())
            .max_by(|&a, &b| self.values[a].total_cmp(&self.values[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        self.t0_ns + i as f64 * self.spacing_ns
    }

    /// Full width at half maximum (ns), by linear interpolation.
    pub fn fwhm(&self) -> f64 {
        let (imax, vmax) =
            self.values
                .iter()
                .enumerate()
                .fold((0, 0.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        let half = vmax / 2.0;
        let mut lo = 0.0;
        for i in (0..imax).rev() {
            if self.values[i] < half {
                let (a, b) = (self.values[i], self.values[i + 1]);
                lo = i as f64 + (half - a) / (b - a);
                break;
            }
        }
        let mut hi = (self.values.len() - 1) as f64;
        for i in imax + 1..self.values.len() {
            if self.values[i] < half {
                let (a, b) = (self.values[i - 1], self.values[i]);
                hi = (i - 1) as f64 + (a - half) / (a - b);
                break;
            }
        }
        (hi - lo) * self.spacing_ns
    }
}

/// The IRF of one pixel.
#[derive(Clone, Debug, PartialEq)]
pub enum Irf {
    Gaussian {
        centre_ns: f64,
        fwhm_ns: f64,
    },
    /// Gaussian convolved with an exponential diffusion tail of weight
    /// `tail_weight` (0..1) and time constant `tail_tau_ns`.
    Spad {
        centre_ns: f64,
        fwhm_ns: f64,
        tail_weight: f64,
        tail_tau_ns: f64,
    },
    /// A measured curve shifted by `shift_ns`.
    Measured {
        curve: Arc<MeasuredIrf>,
        shift_ns: f64,
    },
}

impl Irf {
    pub fn gaussian(centre_ns: f64, fwhm_ns: f64) -> Result<Irf> {
        let irf = Irf::Gaussian { centre_ns, fwhm_ns };
        irf.validate()?;
        Ok(irf)
    }

    pub fn spad(centre_ns: f64, fwhm_ns: f64, tail_weight: f64, tail_tau_ns: f64) -> Result<Irf> {
        let irf = Irf::Spad {
            centre_ns,
            fwhm_ns,
            tail_weight,
            tail_tau_ns,
        };
        irf.validate()?;
        Ok(irf)
    }

    /// Load a measured IRF: a `.csv` with columns `time_ns,value` (header
    /// row optional, uniformly spaced times) or a 1-D `.npy` of any numeric
    /// dtype, whose samples are `npy_spacing_ns` apart starting at t = 0.
    pub fn load(path: &Path, npy_spacing_ns: Option<f64>) -> Result<Irf> {
        let curve = load_curve(path, npy_spacing_ns)?;
        Ok(Irf::Measured {
            curve: Arc::new(curve),
            shift_ns: 0.0,
        })
    }

    /// The same IRF moved later in time by `shift_ns`.
    pub fn shifted(&self, shift_ns: f64) -> Irf {
        match self {
            Irf::Gaussian { centre_ns, fwhm_ns } => Irf::Gaussian {
                centre_ns: centre_ns + shift_ns,
                fwhm_ns: *fwhm_ns,
            },
            Irf::Spad {
                centre_ns,
                fwhm_ns,
                tail_weight,
                tail_tau_ns,
            } => Irf::Spad {
                centre_ns: centre_ns + shift_ns,
                fwhm_ns: *fwhm_ns,
                tail_weight: *tail_weight,
                tail_tau_ns: *tail_tau_ns,
            },
            Irf::Measured { curve, shift_ns: s } => Irf::Measured {
                curve: curve.clone(),
                shift_ns: s + shift_ns,
            },
        }
    }

    pub fn validate(&self) -> Result<()> {
        let check_gauss = |c: f64, f: f64| -> Result<()> {
            if !(c.is_finite() && c.abs() <= 1e4) {
                bail!("IRF centre {c} ns is not finite or beyond 1e4 ns");
            }
            if !(f.is_finite() && f > 0.0 && f <= 100.0) {
                bail!("IRF FWHM {f} ns is not a positive finite width up to 100 ns");
            }
            Ok(())
        };
        match *self {
            Irf::Gaussian { centre_ns, fwhm_ns } => check_gauss(centre_ns, fwhm_ns),
            Irf::Spad {
                centre_ns,
                fwhm_ns,
                tail_weight,
                tail_tau_ns,
            } => {
                check_gauss(centre_ns, fwhm_ns)?;
                if !(0.0..=1.0).contains(&tail_weight) {
                    bail!("IRF tail weight {tail_weight} is not in 0..=1");
                }
                if !(tail_tau_ns.is_finite() && tail_tau_ns > 0.0 && tail_tau_ns <= 1e3) {
                    bail!("IRF tail time constant {tail_tau_ns} ns is not positive and finite");
                }
                Ok(())
            }
            Irf::Measured {
                ref curve,
                shift_ns,
            } => {
                if !(shift_ns.is_finite() && shift_ns.abs() <= 1e4) {
                    bail!(
                        "IRF {}: shift {shift_ns} ns is not finite or beyond 1e4 ns",
                        curve.source
                    );
                }
                Ok(())
            }
        }
    }

    /// Centre (ns): the Gaussian's centre, or the measured curve's centroid.
    pub fn centre_ns(&self) -> f64 {
        match self {
            Irf::Gaussian { centre_ns, .. } | Irf::Spad { centre_ns, .. } => *centre_ns,
            Irf::Measured { curve, shift_ns } => curve.centroid() + shift_ns,
        }
    }

    /// FWHM (ns) of the Gaussian core, or of the measured curve.
    pub fn fwhm_ns(&self) -> f64 {
        match self {
            Irf::Gaussian { fwhm_ns, .. } | Irf::Spad { fwhm_ns, .. } => *fwhm_ns,
            Irf::Measured { curve, .. } => curve.fwhm(),
        }
    }

    /// Weight of the diffusion tail (0 for Gaussian and measured IRFs).
    pub fn tail_weight(&self) -> f64 {
        match self {
            Irf::Spad { tail_weight, .. } => *tail_weight,
            _ => 0.0,
        }
    }

    /// Probability masses of the IRF on the sub-bins of `fine` (one laser
    /// period, wrapping around), normalised to sum 1.
    pub fn fill_masses(&self, fine: &FineGrid, out: &mut [f64]) -> Result<()> {
        self.validate()?;
        let k = fine.len();
        if out.len() != k {
            bail!("IRF masses: buffer of {} for {k} sub-bins", out.len());
        }
        out.iter_mut().for_each(|m| *m = 0.0);
        match *self {
            Irf::Gaussian { centre_ns, fwhm_ns } => gauss_masses(fine, centre_ns, fwhm_ns, out),
            Irf::Spad {
                centre_ns,
                fwhm_ns,
                tail_weight,
                tail_tau_ns,
            } => {
                gauss_masses(fine, centre_ns, fwhm_ns, out);
                if tail_weight > 0.0 {
                    let mut tail = vec![0.0; k];
                    let j0 = out.iter().position(|&m| m > 0.0).unwrap_or(0);
                    periodic_exp_conv(fine, out, j0, tail_tau_ns, k, &mut tail);
                    for (m, t) in out.iter_mut().zip(&tail) {
                        *m = (1.0 - tail_weight) * *m + tail_weight * t / tail_tau_ns;
                    }
                }
            }
            Irf::Measured {
                ref curve,
                shift_ns,
            } => measured_masses(fine, curve, shift_ns, out)?,
        }
        let sum: f64 = out.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            bail!("IRF masses sum to {sum} on the fine grid");
        }
        out.iter_mut().for_each(|m| *m /= sum);
        Ok(())
    }
}

/// Sub-bin containing time `t` (clamped to the grid).
fn bin_of(fine: &FineGrid, t: f64) -> usize {
    let e = fine.edges();
    e.partition_point(|&x| x <= t).clamp(1, e.len() - 1) - 1
}

fn gauss_masses(fine: &FineGrid, centre: f64, fwhm: f64, out: &mut [f64]) {
    let period = fine.period_ns();
    let sigma = fwhm / FWHM_PER_SIGMA;
    let reach = 9.0 * sigma;
    let edges = fine.edges();
    let phi = |x: f64| 0.5 * libm::erfc(-(x - centre) / (sigma * std::f64::consts::SQRT_2));
    // Copies of the Gaussian at centre - n T that reach into [0, T).
    let n_lo = ((centre - reach - period) / period).floor() as i64;
    let n_hi = ((centre + reach) / period).ceil() as i64;
    for n in n_lo..=n_hi {
        let off = n as f64 * period; // time t in the period maps to t + off
        let (lo, hi) = (centre - reach - off, centre + reach - off);
        if hi < 0.0 || lo >= period {
            continue;
        }
        let (j0, j1) = (bin_of(fine, lo.max(0.0)), bin_of(fine, hi.min(period)));
        let mut prev = phi(edges[j0] + off);
        for j in j0..=j1 {
            let next = phi(edges[j + 1] + off);
            out[j] += next - prev;
            prev = next;
        }
    }
}

fn measured_masses(
    fine: &FineGrid,
    curve: &MeasuredIrf,
    shift: f64,
    out: &mut [f64],
) -> Result<()> {
    let period = fine.period_ns();
    if curve.spacing_ns > period {
        bail!(
            "IRF {}: sample spacing {} ns exceeds the laser period {period} ns",
            curve.source,
            curve.spacing_ns
        );
    }
    let edges = fine.edges();
    let mut add = |a: f64, b: f64, density: f64| {
        // a, b in [0, period]
        let mut j = bin_of(fine, a);
        let mut t = a;
        while t < b && j < out.len() {
            let e = edges[j + 1].min(b);
            out[j] += density * (e - t);
            t = e;
            j += 1;
        }
    };
    for (i, &v) in curve.values.iter().enumerate() {
        if v == 0.0 {
            continue;
        }
        let t = curve.t0_ns + i as f64 * curve.spacing_ns + shift - 0.5 * curve.spacing_ns;
        let a = t.rem_euclid(period);
        let b = a + curve.spacing_ns;
        let density = v / curve.spacing_ns;
        if b <= period {
            add(a, b, density);
        } else {
            add(a, period, density);
            add(0.0, b - period, density);
        }
    }
    Ok(())
}

/// A measured IRF curve from a file (.csv, .asc or .npy with its spacing).
pub fn load_measured(path: &Path, npy_spacing_ns: Option<f64>) -> Result<MeasuredIrf> {
    load_curve(path, npy_spacing_ns)
}

fn load_curve(path: &Path, npy_spacing_ns: Option<f64>) -> Result<MeasuredIrf> {
    let name = path.display().to_string();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => {
            let spacing = npy_spacing_ns.with_context(|| {
                format!("IRF {name}: a .npy IRF needs its sample spacing in ns")
            })?;
            let (shape, values) = read_npy_f64(path)?;
            if shape.len() != 1 {
                bail!("IRF {name}: expected a 1-D array, found shape {shape:?}");
            }
            MeasuredIrf::new(&name, 0.0, spacing, values)
        }
        "csv" | "txt" => {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::All)
                .from_path(path)
                .with_context(|| format!("IRF {name}: cannot open"))?;
            let (mut times, mut values) = (Vec::new(), Vec::new());
            for (row, rec) in rdr.records().enumerate() {
                let rec = rec.with_context(|| format!("IRF {name}: unreadable row {}", row + 1))?;
                if rec.iter().all(|f| f.is_empty()) {
                    continue;
                }
                if rec.len() != 2 {
                    bail!(
                        "IRF {name}: row {} has {} columns, expected time_ns,value",
                        row + 1,
                        rec.len()
                    );
                }
                let parsed = (rec[0].parse::<f64>(), rec[1].parse::<f64>());
                match parsed {
                    (Ok(t), Ok(v)) => {
                        times.push(t);
                        values.push(v);
                    }
                    _ if row == 0 => continue, // header
                    _ => bail!("IRF {name}: row {} is not two numbers", row + 1),
                }
                if values.len() > MAX_IRF_SAMPLES {
                    bail!("IRF {name}: more than {MAX_IRF_SAMPLES} samples");
                }
            }
            uniform_curve(&name, times, values)
        }
        "asc" => {
            // Two whitespace-separated columns, time (ns) and value, as
            // B&H SPCImage exports an IRF.
            let meta =
                std::fs::metadata(path).with_context(|| format!("IRF {name}: cannot open"))?;
            if meta.len() > 64 * MAX_IRF_SAMPLES as u64 {
                bail!("IRF {name}: {} bytes, larger than any IRF", meta.len());
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("IRF {name}: cannot read"))?;
            let (mut times, mut values) = (Vec::new(), Vec::new());
            for (row, line) in text.lines().enumerate() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.is_empty() {
                    continue;
                }
                match (
                    f.len(),
                    f[0].parse::<f64>(),
                    f.get(1).map(|v| v.parse::<f64>()),
                ) {
                    (2, Ok(t), Some(Ok(v))) => {
                        times.push(t);
                        values.push(v);
                    }
                    _ => bail!(
                        "IRF {name}: line {} is not two numbers (time in ns, value)",
                        row + 1
                    ),
                }
                if values.len() > MAX_IRF_SAMPLES {
                    bail!("IRF {name}: more than {MAX_IRF_SAMPLES} samples");
                }
            }
            uniform_curve(&name, times, values)
        }
        _ => bail!("IRF {name}: unknown extension, expected .csv, .asc or .npy"),
    }
}

/// A curve from sample times and values: the times must be finite,
/// increasing and uniformly spaced (within 1 %).
fn uniform_curve(name: &str, times: Vec<f64>, values: Vec<f64>) -> Result<MeasuredIrf> {
    {
        {
            if times.len() < 2 {
                bail!("IRF {name}: {} samples, need at least 2", times.len());
            }
            if let Some(i) = times.iter().position(|t| !t.is_finite()) {
                bail!("IRF {name}: time in row {i} is not finite");
            }
            let spacing = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
            if spacing.is_nan() || spacing <= 0.0 {
                bail!("IRF {name}: times are not increasing");
            }
            for (i, w) in times.windows(2).enumerate() {
                if ((w[1] - w[0]) - spacing).abs() > 0.01 * spacing {
                    bail!(
                        "IRF {name}: times are not uniformly spaced (step {} at sample {i}, mean {spacing})",
                        w[1] - w[0]
                    );
                }
            }
            MeasuredIrf::new(name, times[0], spacing, values)
        }
    }
}

/// A measured IRF used for every simulated pixel, shifted at random.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredIrfSpec {
    /// The curve's file; ignored when `samples` holds the curve itself.
    #[serde(default)]
    pub path: PathBuf,
    /// The curve inline (an instrument description's IRF), so a model
    /// trained on it carries its IRF wherever the model file goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<IrfSamples>,
    /// Sample spacing (ns) of a `.npy` curve (CSV files carry their times).
    pub spacing_ns: Option<f64>,
    /// Per-pixel shift drawn uniformly from this range (ns).
    pub shift_ns: (f64, f64),
}

impl MeasuredIrfSpec {
    /// The file the curve is read from (none when it is inline).
    pub fn file(&self) -> Option<&Path> {
        self.samples.is_none().then_some(self.path.as_path())
    }
}

/// A curve's samples: `values[i]` at `t0_ns + i spacing_ns` (any positive
/// scale; normalised on use).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IrfSamples {
    pub t0_ns: f64,
    pub spacing_ns: f64,
    pub values: Vec<f64>,
}

impl IrfSamples {
    /// The checked, normalised curve; `source` names it in errors.
    pub fn curve(&self, source: &str) -> Result<MeasuredIrf> {
        MeasuredIrf::new(source, self.t0_ns, self.spacing_ns, self.values.clone())
    }
}

/// The per-pixel random distribution of IRFs for the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IrfSpec {
    /// Gaussian centre range (ns), uniform.
    pub centre_ns: (f64, f64),
    /// Gaussian FWHM range (ns), uniform.
    pub fwhm_ns: (f64, f64),
    /// Probability that a pixel's IRF has the SPAD diffusion tail.
    pub spad_probability: f64,
    /// Tail weight range, uniform.
    pub tail_weight: (f64, f64),
    /// Tail time constant range (ns), uniform.
    pub tail_tau_ns: (f64, f64),
    /// If set, every pixel uses this measured IRF (randomly shifted) and
    /// the parametric ranges above are ignored.
    pub measured: Option<MeasuredIrfSpec>,
}

impl Default for IrfSpec {
    fn default() -> Self {
        IrfSpec {
            centre_ns: (0.5, 1.5),
            fwhm_ns: (0.15, 0.40),
            spad_probability: 0.5,
            tail_weight: (0.05, 0.3),
            tail_tau_ns: (0.1, 0.5),
            measured: None,
        }
    }
}

/// Check a `(lo, hi)` range: finite, ordered, inside `[min, max]`.
pub(crate) fn check_range(name: &str, r: (f64, f64), min: f64, max: f64) -> Result<()> {
    let (lo, hi) = r;
    if !(lo.is_finite() && hi.is_finite()) {
        bail!("{name}: range ({lo}, {hi}) is not finite");
    }
    if lo > hi {
        bail!("{name}: range ({lo}, {hi}) is inverted");
    }
    if lo < min || hi > max {
        bail!("{name}: range ({lo}, {hi}) is outside {min}..={max}");
    }
    Ok(())
}

impl IrfSpec {
    pub fn validate(&self) -> Result<()> {
        check_range("irf.centre_ns", self.centre_ns, -1e3, 1e3)?;
        check_range("irf.fwhm_ns", self.fwhm_ns, 0.0, 100.0)?;
        if self.fwhm_ns.0 <= 0.0 {
            bail!(
                "irf.fwhm_ns: lower bound {} must be positive",
                self.fwhm_ns.0
            );
        }
        if !(0.0..=1.0).contains(&self.spad_probability) {
            bail!(
                "irf.spad_probability: {} is not in 0..=1",
                self.spad_probability
            );
        }
        check_range("irf.tail_weight", self.tail_weight, 0.0, 1.0)?;
        check_range("irf.tail_tau_ns", self.tail_tau_ns, 0.0, 1e3)?;
        if self.tail_tau_ns.0 <= 0.0 {
            bail!(
                "irf.tail_tau_ns: lower bound {} must be positive",
                self.tail_tau_ns.0
            );
        }
        if let Some(m) = &self.measured {
            check_range("irf.measured.shift_ns", m.shift_ns, -1e3, 1e3)?;
        }
        Ok(())
    }

    /// Validate and load what is needed to draw IRFs (the measured curve
    /// is read once here).
    pub fn sampler(&self) -> Result<IrfSampler> {
        self.validate()?;
        let measured = match &self.measured {
            Some(MeasuredIrfSpec {
                samples: Some(c), ..
            }) => Some((
                Irf::Measured {
                    curve: Arc::new(c.curve("irf.measured.samples")?),
                    shift_ns: 0.0,
                },
                self.measured.as_ref().map_or((0.0, 0.0), |m| m.shift_ns),
            )),
            Some(m) => Some((Irf::load(&m.path, m.spacing_ns)?, m.shift_ns)),
            None => None,
        };
        Ok(IrfSampler {
            spec: self.clone(),
            measured,
        })
    }
}

/// Draws per-pixel IRFs from an [`IrfSpec`].
#[derive(Clone, Debug)]
pub struct IrfSampler {
    spec: IrfSpec,
    measured: Option<(Irf, (f64, f64))>,
}

pub(crate) fn uniform<R: Rng>(rng: &mut R, r: (f64, f64)) -> f64 {
    r.0 + (r.1 - r.0) * rng.gen::<f64>()
}

impl IrfSampler {
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Irf {
        if let Some((irf, shift)) = &self.measured {
            return irf.shifted(uniform(rng, *shift));
        }
        let s = &self.spec;
        let centre_ns = uniform(rng, s.centre_ns);
        let fwhm_ns = uniform(rng, s.fwhm_ns);
        if rng.gen::<f64>() < s.spad_probability {
            Irf::Spad {
                centre_ns,
                fwhm_ns,
                tail_weight: uniform(rng, s.tail_weight),
                tail_tau_ns: uniform(rng, s.tail_tau_ns),
            }
        } else {
            Irf::Gaussian { centre_ns, fwhm_ns }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::GateGrid;

    fn fine() -> FineGrid {
        FineGrid::new(&GateGrid::PAPER, 12.5, 4).unwrap()
    }

    #[test]
    fn gaussian_masses_mean_and_width() {
        let f = fine();
        let mut m = vec![0.0; f.len()];
        Irf::gaussian(1.0, 0.3)
            .unwrap()
            .fill_masses(&f, &mut m)
            .unwrap();
        let c = f.centres();
        let mean: f64 = m.iter().zip(&c).map(|(m, t)| m * t).sum();
        let var: f64 = m.iter().zip(&c).map(|(m, t)| m * (t - mean).powi(2)).sum();
        assert!((mean - 1.0).abs() < 1e-6, "{mean}");
        let sigma = 0.3 / FWHM_PER_SIGMA;
        // uniform-in-bin discretisation adds h^2/12 to the variance at most
        assert!((var.sqrt() - sigma).abs() < 2e-3, "{} {sigma}", var.sqrt());
    }

    #[test]
    fn gaussian_wraps_around_the_period() {
        let f = fine();
        let mut m = vec![0.0; f.len()];
        Irf::gaussian(0.0, 0.3)
            .unwrap()
            .fill_masses(&f, &mut m)
            .unwrap();
        let late: f64 = m[f.len() - 20..].iter().sum();
        let early: f64 = m[..20].iter().sum();
        assert!((late - 0.5).abs() < 0.01 && (early - 0.5).abs() < 0.01);
    }

    #[test]
    fn spad_tail_moves_the_mean_later() {
        let f = fine();
        let c = f.centres();
        let mut m = vec![0.0; f.len()];
        Irf::spad(1.0, 0.2, 0.3, 0.4)
            .unwrap()
            .fill_masses(&f, &mut m)
            .unwrap();
        let mean: f64 = m.iter().zip(&c).map(|(m, t)| m * t).sum();
        // mean = centre + w tail_tau
        assert!((mean - (1.0 + 0.3 * 0.4)).abs() < 2e-3, "{mean}");
    }

    #[test]
    fn invalid_irfs_are_errors() {
        assert!(Irf::gaussian(f64::NAN, 0.2).is_err());
        assert!(Irf::gaussian(1.0, 0.0).is_err());
        assert!(Irf::spad(1.0, 0.2, 1.5, 0.2).is_err());
        assert!(Irf::spad(1.0, 0.2, 0.5, -1.0).is_err());
        assert!(MeasuredIrf::new("x", 0.0, 0.1, vec![0.0, 0.0]).is_err());
        assert!(MeasuredIrf::new("x", 0.0, 0.1, vec![1.0, -1.0]).is_err());
        assert!(MeasuredIrf::new("x", 0.0, 0.1, vec![1.0, f64::NAN]).is_err());
        let spec = IrfSpec {
            fwhm_ns: (0.4, 0.1),
            ..Default::default()
        };
        assert!(spec.validate().is_err());
    }

    #[test]
    fn measured_curve_masses_follow_shift() {
        let f = fine();
        let vals: Vec<f64> = (0..40)
            .map(|i| (-(i as f64 - 10.0).powi(2) / 8.0).exp())
            .collect();
        let curve = Arc::new(MeasuredIrf::new("test", 0.0, 0.09, vals).unwrap());
        let irf = Irf::Measured {
            curve: curve.clone(),
            shift_ns: 0.5,
        };
        let mut m = vec![0.0; f.len()];
        irf.fill_masses(&f, &mut m).unwrap();
        let c = f.centres();
        let mean: f64 = m.iter().zip(&c).map(|(m, t)| m * t).sum();
        assert!((mean - (curve.centroid() + 0.5)).abs() < 1e-3);
        assert!((irf.centre_ns() - (0.9 + 0.5)).abs() < 1e-6);
    }
}
