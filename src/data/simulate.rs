//! Synthetic training data: random lifetimes, fractions, photon counts,
//! background and IRFs per pixel, the forward model of [`super::decay`]
//! and true Poisson photon statistics.
//!
//! Reproducible: pixels are drawn in fixed chunks of [`CHUNK`] pixels, each
//! with its own ChaCha8 stream `(seed, chunk index)`, so the same seed gives
//! identical counts and truth whatever the number of threads.

use super::decay::ForwardModel;
use super::irf::{check_range, uniform, Irf, IrfSampler, IrfSpec};
use super::{Dataset, GateGrid, Truth};
use anyhow::{bail, Result};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pixels per reproducible random stream.
pub const CHUNK: usize = 1024;

/// Largest dataset one call simulates (pixels).
pub const MAX_PIXELS: usize = 1 << 28;

/// Largest count array one call allocates (bytes): a request beyond it is
/// refused up front rather than aborting on a failed allocation.
pub const MAX_COUNT_BYTES: usize = 8 << 30;

/// Memory the per-pixel arrays of one command may take (bytes): requests
/// beyond it are errors naming the setting, checked before anything is
/// allocated (a failed allocation aborts the process).
pub const MEMORY_BUDGET: u64 = 2 << 30;

/// Refuse `pixels` pixels of `gates` gates if the arrays built from them
/// (`bytes_per_gate` per gate plus the truth record per pixel) exceed
/// [`MEMORY_BUDGET`]; `option` names the setting (`--pixels`, a config
/// field) in the error.
pub fn check_pixel_budget(
    option: &str,
    pixels: usize,
    gates: usize,
    bytes_per_gate: u64,
) -> Result<()> {
    let per_pixel = (gates as u64)
        .saturating_mul(bytes_per_gate)
        .saturating_add(std::mem::size_of::<Truth>() as u64 + 64);
    let bytes = (pixels as u64).saturating_mul(per_pixel);
    if bytes > MEMORY_BUDGET {
        bail!(
            "{option} {pixels}: {pixels} pixels of {gates} gates need about {:.1} GiB, more than the {} GiB limit (at most {} pixels)",
            bytes as f64 / (1u64 << 30) as f64,
            MEMORY_BUDGET >> 30,
            MEMORY_BUDGET / per_pixel.max(1)
        );
    }
    Ok(())
}

/// The distribution simulated pixels are drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimSpec {
    pub grid: GateGrid,
    /// Lifetime range (ns); bi-exponential pixels draw two uniforms and
    /// sort them (tau2 >= tau1).
    pub tau_ns: (f64, f64),
    /// A separate range for the second lifetime of bi-exponential pixels
    /// (a sample class with a short and a long component, e.g. NAD(P)H):
    /// one draw from `tau_ns`, one from here, sorted; mono pixels then draw
    /// from the hull of both. Absent: both from `tau_ns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_tau_ns: Option<(f64, f64)>,
    /// Share of mono-exponential pixels.
    pub mono_fraction: f64,
    /// Amplitude fraction range of the short component, uniform.
    pub fraction: (f64, f64),
    /// Expected photons in the window, log-uniform.
    pub photons: (f64, f64),
    /// Fraction of the photons that is uniform background, uniform.
    pub background: (f64, f64),
    pub irf: IrfSpec,
    /// Laser repetition period (ns), at least the gate window.
    pub period_ns: f64,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            grid: GateGrid::PAPER,
            tau_ns: (0.05, 3.0),
            long_tau_ns: None,
            mono_fraction: 0.2,
            fraction: (0.0, 1.0),
            photons: (50.0, 5000.0),
            background: (0.0, 0.05),
            irf: IrfSpec::default(),
            period_ns: 12.5,
        }
    }
}

impl SimSpec {
    /// The F-value sets' spec: this one with every pixel mono-exponential
    /// at lifetime `tau` (ns), `photons` expected photons and no
    /// background (the IRF, grid and period unchanged).
    pub fn mono_at(&self, tau: f64, photons: f64) -> SimSpec {
        SimSpec {
            tau_ns: (tau, tau),
            long_tau_ns: None,
            mono_fraction: 1.0,
            photons: (photons, photons),
            background: (0.0, 0.0),
            ..self.clone()
        }
    }

    /// The range mono-exponential pixels draw from: `tau_ns`, or its hull
    /// with `long_tau_ns`.
    pub fn mono_tau_ns(&self) -> (f64, f64) {
        match self.long_tau_ns {
            Some(r) => (self.tau_ns.0.min(r.0), self.tau_ns.1.max(r.1)),
            None => self.tau_ns,
        }
    }

    pub fn validate(&self) -> Result<()> {
        GateGrid::new(self.grid.gates, self.grid.dt_ns)?;
        self.grid.check_baseline()?;
        check_range("tau_ns", self.tau_ns, 0.0, 1e3)?;
        if self.tau_ns.0 <= 0.0 {
            bail!("tau_ns: lower bound {} must be positive", self.tau_ns.0);
        }
        if let Some(r) = self.long_tau_ns {
            check_range("long_tau_ns", r, 0.0, 1e3)?;
            if r.0 <= 0.0 {
                bail!("long_tau_ns: lower bound {} must be positive", r.0);
            }
        }
        if !(0.0..=1.0).contains(&self.mono_fraction) {
            bail!("mono_fraction: {} is not in 0..=1", self.mono_fraction);
        }
        check_range("fraction", self.fraction, 0.0, 1.0)?;
        check_range("photons", self.photons, 0.0, 1e9)?;
        if self.photons.0 <= 0.0 {
            bail!(
                "photons: lower bound {} must be positive (log-uniform)",
                self.photons.0
            );
        }
        check_range("background", self.background, 0.0, 1.0)?;
        let window = self.grid.window_ns();
        if !(self.period_ns.is_finite() && self.period_ns >= window && self.period_ns <= 1e4) {
            bail!(
                "period_ns: {} must be finite, at least the gate window {window} ns and at most 1e4",
                self.period_ns
            );
        }
        self.irf.validate()?;
        Ok(())
    }
}

/// Poisson draw: inversion by sequential search for small means, the
/// rand_distr sampler otherwise.
#[inline]
fn poisson<R: Rng>(rng: &mut R, lambda: f64) -> u32 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let u: f64 = rng.gen();
        let mut p = (-lambda).exp();
        let mut cdf = p;
        let mut k = 0u32;
        while u > cdf && k < 1000 {
            k += 1;
            p *= lambda / k as f64;
            cdf += p;
        }
        k
    } else {
        match Poisson::new(lambda) {
            Ok(d) => {
                let v: f64 = d.sample(rng);
                v.min(u32::MAX as f64) as u32
            }
            Err(_) => 0,
        }
    }
}

/// Draw one pixel's counts gate by gate as Poisson(`expected * p[k]`)
/// (the simulator's photon sampling); returns the total.
pub fn draw_counts<R: Rng>(rng: &mut R, expected: f64, p: &[f64], out: &mut [u32]) -> u64 {
    let mut total = 0u64;
    for (c, &pk) in out.iter_mut().zip(p) {
        *c = poisson(rng, expected * pk);
        total += *c as u64;
    }
    total
}

/// One chunk of pixels.
fn simulate_chunk(
    spec: &SimSpec,
    sampler: &IrfSampler,
    seed: u64,
    chunk: usize,
    counts: &mut [u32],
    truth: &mut [Truth],
    mut irfs: Option<&mut [Irf]>,
) -> Result<()> {
    let g = spec.grid.gates;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chunk as u64);
    let mut fm = ForwardModel::new(&spec.grid, spec.period_ns)?;
    let mut p = vec![0.0; g];
    let (ln_lo, ln_hi) = (spec.photons.0.ln(), spec.photons.1.ln());
    for (i, (row, t)) in counts.chunks_exact_mut(g).zip(truth.iter_mut()).enumerate() {
        let mono = rng.gen::<f64>() < spec.mono_fraction;
        let (tau1, tau2, a) = if mono {
            let t = uniform(&mut rng, spec.mono_tau_ns());
            (t, t, 1.0)
        } else {
            let (u, v) = (
                uniform(&mut rng, spec.tau_ns),
                uniform(&mut rng, spec.long_tau_ns.unwrap_or(spec.tau_ns)),
            );
            (u.min(v), u.max(v), uniform(&mut rng, spec.fraction))
        };
        let expected = uniform(&mut rng, (ln_lo, ln_hi)).exp();
        let background = uniform(&mut rng, spec.background);
        let irf = sampler.sample(&mut rng);
        fm.set_irf(&irf)?;
        fm.histogram(tau1, tau2, a, background, &mut p)?;
        let total = draw_counts(&mut rng, expected, &p, row);
        *t = pixel_truth((tau1, tau2, a, mono), total, expected, background, &irf);
        if let Some(irfs) = irfs.as_deref_mut() {
            irfs[i] = irf;
        }
    }
    Ok(())
}

fn simulate_inner(
    spec: &SimSpec,
    n: usize,
    seed: u64,
    want_irfs: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Dataset, Option<Vec<Irf>>)> {
    spec.validate()?;
    if n > MAX_PIXELS {
        bail!("simulate: {n} pixels is more than the {MAX_PIXELS} one call allows");
    }
    let g = spec.grid.gates;
    let irf_bytes = if want_irfs {
        std::mem::size_of::<Irf>() as u64 / g.max(1) as u64 + 1
    } else {
        0
    };
    check_pixel_budget("simulate: pixels", n, g, 4 + irf_bytes)?;
    let bytes = n
        .saturating_mul(g)
        .saturating_mul(std::mem::size_of::<u32>());
    if bytes > MAX_COUNT_BYTES {
        bail!(
            "simulate: {n} pixels x {g} gates need {:.1} GiB of counts, more than the {} GiB one call allows",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_COUNT_BYTES >> 30
        );
    }
    let sampler = spec.irf.sampler()?;
    let mut counts = Array2::<u32>::zeros((n, g));
    let blank = Truth {
        tau1: 0.0,
        tau2: 0.0,
        fraction: 0.0,
        mono: false,
        photons: 0,
        expected_photons: 0.0,
        background: 0.0,
        irf_centre: 0.0,
        irf_fwhm: 0.0,
        irf_tail: 0.0,
    };
    let mut truth = vec![blank; n];
    let mut irfs: Option<Vec<Irf>> = want_irfs.then(|| {
        vec![
            Irf::Gaussian {
                centre_ns: 0.0,
                fwhm_ns: 1.0
            };
            n
        ]
    });
    let done = AtomicUsize::new(0);
    let flat = counts
        .as_slice_mut()
        .expect("freshly allocated array is contiguous");
    let irf_chunks: Vec<Option<&mut [Irf]>> = match irfs.as_mut() {
        Some(v) => v.chunks_mut(CHUNK).map(Some).collect(),
        None => (0..n.div_ceil(CHUNK)).map(|_| None).collect(),
    };
    flat.par_chunks_mut(CHUNK * g)
        .zip(truth.par_chunks_mut(CHUNK))
        .zip(irf_chunks.into_par_iter())
        .enumerate()
        .try_for_each(|(ci, ((c, t), ir))| {
            simulate_chunk(spec, &sampler, seed, ci, c, t, ir)?;
            let d = done.fetch_add(t.len(), Ordering::Relaxed) + t.len();
            progress(d, n);
            Ok::<(), anyhow::Error>(())
        })?;
    Ok((
        Dataset {
            grid: spec.grid,
            counts,
            truth,
        },
        irfs,
    ))
}

/// The truth record of one drawn pixel: decay `(tau1, tau2, a, mono)`,
/// detected and expected photons, background fraction and IRF.
pub(crate) fn pixel_truth(
    (tau1, tau2, fraction, mono): (f64, f64, f64, bool),
    photons: u64,
    expected_photons: f64,
    background: f64,
    irf: &Irf,
) -> Truth {
    Truth {
        tau1,
        tau2,
        fraction,
        mono,
        photons,
        expected_photons,
        background,
        irf_centre: irf.centre_ns(),
        irf_fwhm: irf.fwhm_ns(),
        irf_tail: irf.tail_weight(),
    }
}

/// Simulate `n` pixels with raw Poisson counts `[n, G]` and their truth.
pub fn simulate(spec: &SimSpec, n: usize, seed: u64) -> Result<Dataset> {
    Ok(simulate_inner(spec, n, seed, false, &|_, _| {})?.0)
}

/// [`simulate`] calling `progress(done, n)` after each chunk (from worker
/// threads, in no particular order).
pub fn simulate_with_progress(
    spec: &SimSpec,
    n: usize,
    seed: u64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Dataset> {
    Ok(simulate_inner(spec, n, seed, false, progress)?.0)
}

/// [`simulate`] also returning each pixel's IRF (what an MLE fit with a
/// known IRF needs; [`Truth`] does not hold the tail time constant).
pub fn simulate_with_irfs(spec: &SimSpec, n: usize, seed: u64) -> Result<(Dataset, Vec<Irf>)> {
    let (d, irfs) = simulate_inner(spec, n, seed, true, &|_, _| {})?;
    Ok((d, irfs.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_mean_and_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for &lambda in &[0.3, 4.0, 25.0, 200.0] {
            let n = 20000;
            let xs: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lambda) as f64).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            let se = (lambda / n as f64).sqrt();
            assert!((m - lambda).abs() < 5.0 * se, "{lambda}: mean {m}");
            assert!((v / lambda - 1.0).abs() < 0.06, "{lambda}: var {v}");
        }
    }
}
