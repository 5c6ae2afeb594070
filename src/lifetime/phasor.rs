//! Phasors: each pixel's decay as one point (G, S), the first Fourier
//! coefficient of its histogram at the laser's angular frequency
//! w = 2 pi / period, model-free and in closed form.
//!
//! Over gate centres t_k = (k + 0.5) dt, with b the background per gate
//! ([`super::rld::background`], the level before the rise that RLD
//! subtracts):
//!
//! `G + iS = sum_k (c_k - b) e^{i w t_k} / sum_k (c_k - b)`
//!
//! (two multiply-accumulates per gate on precomputed cos/sin tables).
//! **Calibration**: the IRF delays and broadens the decay, i.e. multiplies
//! its Fourier coefficient by the IRF's; dividing the pixel's phasor (as a
//! complex number) by the IRF's phasor removes both, so a mono-exponential
//! decay lands on the universal semicircle
//! `G = 1 / (1 + w^2 tau^2), S = w tau / (1 + w^2 tau^2)` and mixtures
//! inside it on the chord between their components.
//!
//! What biases it: a window shorter than the period (a gated camera, or a
//! model grid cropped from the recording) leaves out the tail
//! ([`PhasorGrid::short_window`]); the background level before the rise
//! includes the previous pulse's tail when the lifetime is long against
//! the period, so subtracting it pushes such pixels outwards: on 135 gates
//! of 90 ps and a 12.15 ns period with 5 % background, the mean calibrated
//! phasor is off by 0.0025 / 0.0045 / 0.019 / 0.056 (largest of |dG|,
//! |dS|) at 0.5 / 1 / 2 / 3 ns; without background and without the
//! subtraction, by at most 0.0005 (the tests below).

use super::rld::background;
use crate::data::irf::MeasuredIrf;
use crate::data::GateGrid;
use anyhow::{bail, Result};

/// A point of the phasor plot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phasor {
    pub g: f64,
    pub s: f64,
}

impl Phasor {
    pub fn modulus(&self) -> f64 {
        self.g.hypot(self.s)
    }

    /// Complex division `self / by`.
    pub fn divided_by(&self, by: &Phasor) -> Phasor {
        let m2 = by.g * by.g + by.s * by.s;
        Phasor {
            g: (self.g * by.g + self.s * by.s) / m2,
            s: (self.s * by.g - self.g * by.s) / m2,
        }
    }
}

/// Where a mono-exponential decay of lifetime `tau_ns` lies at angular
/// frequency `omega` (rad/ns): on the universal semicircle.
pub fn semicircle(tau_ns: f64, omega: f64) -> Phasor {
    let wt = omega * tau_ns;
    let d = 1.0 + wt * wt;
    Phasor {
        g: 1.0 / d,
        s: wt / d,
    }
}

/// Check a laser period given as `what` (an option name, a file field).
pub fn check_period(what: &str, period_ns: f64) -> Result<()> {
    if !(period_ns.is_finite() && period_ns > 0.0 && period_ns <= 1e6) {
        bail!("{what} {period_ns}: the laser period must be a positive number of ns (up to 1e6)");
    }
    Ok(())
}

/// A window covering less than this share of the laser period gets a
/// warning that its phasors are biased.
pub const MIN_WINDOW_SHARE: f64 = 0.95;

/// Smallest IRF phasor modulus accepted for calibration: below it the IRF
/// is spread over the whole period and dividing by it only amplifies noise
/// (a Gaussian IRF of 0.4 ns FWHM at 80 MHz has 0.99).
pub const MIN_IRF_MODULUS: f64 = 0.05;

/// cos/sin tables of one gate grid at one laser frequency.
#[derive(Clone, Debug)]
pub struct PhasorGrid {
    grid: GateGrid,
    period_ns: f64,
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl PhasorGrid {
    pub fn new(grid: &GateGrid, period_ns: f64) -> Result<PhasorGrid> {
        check_period("laser period", period_ns)?;
        let w = std::f64::consts::TAU / period_ns;
        let t = |k: usize| (k as f64 + 0.5) * grid.dt_ns;
        Ok(PhasorGrid {
            grid: *grid,
            period_ns,
            cos: (0..grid.gates).map(|k| (w * t(k)).cos()).collect(),
            sin: (0..grid.gates).map(|k| (w * t(k)).sin()).collect(),
        })
    }

    pub fn period_ns(&self) -> f64 {
        self.period_ns
    }

    /// Angular frequency (rad/ns).
    pub fn omega(&self) -> f64 {
        std::f64::consts::TAU / self.period_ns
    }

    /// The uncalibrated phasor of one histogram on this grid, the
    /// pipeline's background ([`background`]) subtracted; `None` when
    /// nothing is left above it (or the histogram is not of this grid's
    /// length).
    pub fn raw(&self, counts: &[f32]) -> Option<Phasor> {
        if counts.len() != self.cos.len() {
            return None;
        }
        self.raw_with_background(counts, background(counts, &self.grid))
    }

    /// [`PhasorGrid::raw`] with a background `b` per gate of the caller's.
    pub fn raw_with_background(&self, counts: &[f32], b: f64) -> Option<Phasor> {
        if counts.len() != self.cos.len() {
            return None;
        }
        let (mut n, mut g, mut s) = (0.0, 0.0, 0.0);
        for ((&c, &cs), &sn) in counts.iter().zip(&self.cos).zip(&self.sin) {
            let v = c as f64 - b;
            n += v;
            g += v * cs;
            s += v * sn;
        }
        (n > 0.0 && n.is_finite()).then(|| Phasor { g: g / n, s: s / n })
    }

    /// The warning for a window shorter than [`MIN_WINDOW_SHARE`] of the
    /// period; `None` when it covers (nearly) the whole period.
    pub fn short_window(&self) -> Option<String> {
        let window = self.grid.window_ns();
        (window < MIN_WINDOW_SHARE * self.period_ns).then(|| {
            format!(
                "the gates cover {window:.3} ns of the {:.3} ns laser period: the phasor leaves out the rest of each decay, so G and S are biased (long lifetimes most); they are not on the universal semicircle's scale",
                self.period_ns
            )
        })
    }
}

/// The phasor of a sampled curve (an IRF) at `omega`, each sample at its
/// own time `t0 + i spacing + shift_ns` on the gates' time axis.
pub fn curve_phasor(curve: &MeasuredIrf, shift_ns: f64, omega: f64) -> Phasor {
    let (mut n, mut g, mut s) = (0.0, 0.0, 0.0);
    for (i, &v) in curve.values.iter().enumerate() {
        let t = curve.t0_ns + i as f64 * curve.spacing_ns + shift_ns;
        n += v;
        g += v * (omega * t).cos();
        s += v * (omega * t).sin();
    }
    Phasor { g: g / n, s: s / n }
}

/// The IRF's phasor a pixel's is divided by, and where the IRF came from.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub irf: Phasor,
    /// In words, for the output ("measured, --irf irf.csv", ...).
    pub source: String,
}

impl Calibration {
    /// Refuses an IRF whose phasor is (nearly) zero, naming `source`.
    pub fn new(irf: Phasor, source: &str) -> Result<Calibration> {
        let m = irf.modulus();
        if !(m.is_finite() && m >= MIN_IRF_MODULUS) {
            bail!(
                "the IRF ({source}) has a phasor of modulus {m:.4} at the laser frequency (below {MIN_IRF_MODULUS}): it is spread over the whole period and cannot calibrate the phasor; give a measured IRF (--irf)"
            );
        }
        Ok(Calibration {
            irf,
            source: source.to_string(),
        })
    }

    /// The calibrated phasor of an uncalibrated one.
    pub fn apply(&self, raw: &Phasor) -> Phasor {
        raw.divided_by(&self.irf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::simulate::{simulate, SimSpec};

    /// A Gaussian IRF sampled every 1 ps (centre, FWHM in ns).
    fn gaussian_curve(centre: f64, fwhm: f64) -> MeasuredIrf {
        let sigma = fwhm / crate::data::irf::FWHM_PER_SIGMA;
        let spacing = 0.001;
        let t0 = centre - 6.0 * sigma;
        let n = (12.0 * sigma / spacing) as usize + 1;
        let v = (0..n)
            .map(|i| {
                let x = (t0 + i as f64 * spacing - centre) / sigma;
                (-0.5 * x * x).exp()
            })
            .collect();
        MeasuredIrf::new("gaussian", t0, spacing, v).unwrap()
    }

    /// `pixels` mono-exponential pixels of lifetime `tau` with `photons`
    /// photons through a Gaussian IRF (centre 1 ns, FWHM 0.3 ns) on 135
    /// gates of 90 ps, the laser period equal to the window.
    fn mono_pixels(tau: f64, photons: f64, background: f64) -> SimSpec {
        let mut spec = SimSpec {
            tau_ns: (tau, tau),
            mono_fraction: 1.0,
            photons: (photons, photons),
            background: (background, background),
            ..SimSpec::default()
        };
        spec.period_ns = spec.grid.window_ns();
        spec.irf.centre_ns = (1.0, 1.0);
        spec.irf.fwhm_ns = (0.3, 0.3);
        spec.irf.spad_probability = 0.0;
        spec
    }

    /// Over 400 pixels of lifetime `tau` (5,000 photons, `background`
    /// share of uniform background): the largest |G - G_true|, |S - S_true|
    /// of the mean calibrated phasor, the per-pixel RMS distance of the
    /// calibrated phasor to the semicircle point, and the mean distance of
    /// the uncalibrated one. `pipeline`: subtract the pipeline's
    /// background estimate, else none.
    fn errors(tau: f64, background: f64, pipeline: bool) -> (f64, f64, f64) {
        let spec = mono_pixels(tau, 5000.0, background);
        let data = simulate(&spec, 400, 11).unwrap();
        let pg = PhasorGrid::new(&spec.grid, spec.period_ns).unwrap();
        let cal = Calibration::new(
            curve_phasor(&gaussian_curve(1.0, 0.3), 0.0, pg.omega()),
            "test",
        )
        .unwrap();
        let truth = semicircle(tau, pg.omega());
        let (mut mean_cal, mut mean_raw, mut sq) = (Phasor { g: 0.0, s: 0.0 }, 0.0, 0.0);
        let n = data.counts.nrows() as f64;
        for row in data.counts.rows() {
            let c: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            let raw = if pipeline {
                pg.raw(&c).unwrap()
            } else {
                pg.raw_with_background(&c, 0.0).unwrap()
            };
            let p = cal.apply(&raw);
            mean_cal.g += p.g / n;
            mean_cal.s += p.s / n;
            sq += ((p.g - truth.g).powi(2) + (p.s - truth.s).powi(2)) / n;
            mean_raw += (raw.g - truth.g).hypot(raw.s - truth.s) / n;
        }
        let d = (mean_cal.g - truth.g)
            .abs()
            .max((mean_cal.s - truth.s).abs());
        (d, sq.sqrt(), mean_raw)
    }

    /// The calibration itself: no background simulated, none subtracted.
    #[test]
    fn calibrated_mono_exponentials_land_on_the_semicircle() {
        for tau in [0.5, 1.0, 2.0, 3.0] {
            let (cal, rms, raw) = errors(tau, 0.0, false);
            eprintln!("tau {tau}: mean calibrated error {cal:.5}, per-pixel RMS {rms:.5}, uncalibrated {raw:.4}");
            // Measured: at most 0.0005 and 0.012.
            assert!(cal < 0.002, "tau {tau}: calibrated mean off by {cal}");
            assert!(rms < 0.015, "tau {tau}: per-pixel RMS {rms}");
            // Without the IRF the phasor is rotated by w * 1 ns and is
            // nowhere near the semicircle point.
            assert!(raw > 0.2, "tau {tau}: uncalibrated error only {raw}");
        }
    }

    /// The pipeline's background estimate removes a 5 % uniform
    /// background for short lifetimes; for long ones the level before the
    /// rise also holds the previous pulse's tail, and subtracting it
    /// pushes the phasor outwards (measured, module doc).
    #[test]
    fn background_is_subtracted() {
        // Measured: 0.0025, 0.0045, 0.019, 0.056.
        for (tau, tol) in [(0.5, 0.005), (1.0, 0.008), (2.0, 0.03), (3.0, 0.07)] {
            let (cal, rms, _) = errors(tau, 0.05, true);
            eprintln!(
                "tau {tau}, 5 % background: mean calibrated error {cal:.5}, per-pixel RMS {rms:.5}"
            );
            assert!(cal < tol, "tau {tau}: calibrated mean off by {cal}");
        }
    }

    #[test]
    fn exact_on_a_noise_free_exponential() {
        // A periodic exponential sampled at gate centres, no IRF (a delta
        // at 0): the phasor is exact up to the gate integration.
        let grid = GateGrid::new(250, 0.05).unwrap();
        let pg = PhasorGrid::new(&grid, grid.window_ns()).unwrap();
        let tau = 1.7;
        // The peak is gate 0: no gate before the rise, background 0.
        let c: Vec<f32> = (0..250)
            .map(|k| (1e6 * (-(k as f64 + 0.5) * 0.05 / tau).exp()) as f32)
            .collect();
        let p = pg.raw(&c).unwrap();
        let t = semicircle(tau, pg.omega());
        assert!(
            (p.g - t.g).abs() < 0.01 && (p.s - t.s).abs() < 0.01,
            "{p:?} {t:?}"
        );
    }

    #[test]
    fn refuses_a_flat_irf_and_bad_periods() {
        let grid = GateGrid::PAPER;
        let pg = PhasorGrid::new(&grid, grid.window_ns()).unwrap();
        // One sample per gate over exactly one period: phasor 0.
        let flat = MeasuredIrf::new("flat.csv", 0.045, 0.09, vec![1.0; 135]).unwrap();
        let e = Calibration::new(curve_phasor(&flat, 0.0, pg.omega()), "flat.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flat.csv") && e.contains("modulus"), "{e}");
        for p in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = check_period("--period", p).unwrap_err().to_string();
            assert!(e.contains("--period"), "{e}");
        }
        assert!(PhasorGrid::new(&grid, 20.0)
            .unwrap()
            .short_window()
            .is_some());
        assert!(pg.short_window().is_none());
    }
}
