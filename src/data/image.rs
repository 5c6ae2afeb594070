//! A synthetic FLIM image: a few elliptical "cells" (cytoplasm and a
//! nucleus with different lifetimes and fractions) on a dim background,
//! drawn with the simulator's forward model and photon sampling, written
//! as a T3 image PTU (photon micro-times within each gate) and as `.npy`.

use super::decay::ForwardModel;
use super::formats::{write_ptu_t3_image, PtuRecordType, PtuT3Spec};
use super::irf::Irf;
use super::simulate::{draw_counts, pixel_truth, SimSpec};
use super::{write_truth_csv, GateGrid, Truth};
use anyhow::{bail, Context, Result};
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Region labels of [`ImageSample::region`].
pub const BACKGROUND: u8 = 0;
pub const CYTOPLASM: u8 = 1;
pub const NUCLEUS: u8 = 2;

/// Largest image side [`simulate_image`] makes.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// A simulated FLIM image with its truth.
#[derive(Clone, Debug)]
pub struct ImageSample {
    pub grid: GateGrid,
    pub period_ns: f64,
    /// Raw counts `[height, width, G]`.
    pub counts: Array3<u32>,
    /// Per-pixel truth, row-major (`y * width + x`).
    pub truth: Vec<Truth>,
    /// `[height, width]` labels: [`BACKGROUND`], [`CYTOPLASM`], [`NUCLEUS`].
    pub region: Array2<u8>,
    /// The one IRF of the whole image (an instrument has one).
    pub irf: Irf,
}

impl ImageSample {
    pub fn height(&self) -> usize {
        self.counts.shape()[0]
    }
    pub fn width(&self) -> usize {
        self.counts.shape()[1]
    }
}

struct Cell {
    cy: f64,
    cx: f64,
    a: f64,
    b: f64,
    cos: f64,
    sin: f64,
    /// (tau1, tau2, fraction) of cytoplasm and nucleus.
    cyto: (f64, f64, f64),
    nucleus: (f64, f64, f64),
}

impl Cell {
    /// Elliptical radius of (y, x): < 1 inside the cell.
    fn radius(&self, y: f64, x: f64) -> f64 {
        let (dy, dx) = (y - self.cy, x - self.cx);
        let u = dx * self.cos + dy * self.sin;
        let v = -dx * self.sin + dy * self.cos;
        ((u / self.a).powi(2) + (v / self.b).powi(2)).sqrt()
    }
}

/// Simulate a `height x width` FLIM image from `spec` (its gate grid,
/// lifetime, fraction, photon and background ranges, IRF and period).
///
/// Lifetimes sit at fixed places of `spec.tau_ns` (cytoplasm: tau1 at 15 %,
/// tau2 at 75 % of the range, fraction 0.6; nucleus: 40 % / 90 %, fraction
/// 0.3; background: mono-exponential at 60 %), each cell jittered by
/// +-5 % of the range; fractions are clamped to `spec.fraction`. Expected
/// photons: cytoplasm at 75 %, nucleus at 55 % of the log photon range,
/// background 20 % of the lowest, each pixel times U[0.7, 1]. The IRF is
/// the Gaussian at the middle of the spec's centre and FWHM ranges (or the
/// measured IRF, unshifted). Deterministic for a seed.
pub fn simulate_image(
    spec: &SimSpec,
    height: usize,
    width: usize,
    seed: u64,
) -> Result<ImageSample> {
    spec.validate()?;
    if !(4..=MAX_IMAGE_SIDE).contains(&height) || !(4..=MAX_IMAGE_SIDE).contains(&width) {
        bail!("simulate image: {height} x {width} pixels is outside 4..={MAX_IMAGE_SIDE} per side");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let irf = match &spec.irf.measured {
        Some(_) => spec.irf.sampler()?.sample(&mut rng),
        None => Irf::gaussian(
            0.5 * (spec.irf.centre_ns.0 + spec.irf.centre_ns.1),
            0.5 * (spec.irf.fwhm_ns.0 + spec.irf.fwhm_ns.1),
        )?,
    };
    let (tlo, thi) = spec.tau_ns;
    let tau_at = |q: f64, rng: &mut ChaCha8Rng| {
        (tlo + (thi - tlo) * (q + 0.1 * (rng.gen::<f64>() - 0.5))).clamp(tlo, thi)
    };
    let frac = |f: f64| f.clamp(spec.fraction.0, spec.fraction.1);
    let side = height.min(width) as f64;
    let n_cells = (height * width / 600).clamp(2, 12);
    let cells: Vec<Cell> = (0..n_cells)
        .map(|_| {
            let a = side * (0.12 + 0.10 * rng.gen::<f64>());
            let b = a * (0.6 + 0.4 * rng.gen::<f64>());
            let ang = std::f64::consts::PI * rng.gen::<f64>();
            let (t1, t2) = (tau_at(0.15, &mut rng), tau_at(0.75, &mut rng));
            let (n1, n2) = (tau_at(0.40, &mut rng), tau_at(0.90, &mut rng));
            Cell {
                cy: height as f64 * (0.15 + 0.7 * rng.gen::<f64>()),
                cx: width as f64 * (0.15 + 0.7 * rng.gen::<f64>()),
                a,
                b,
                cos: ang.cos(),
                sin: ang.sin(),
                cyto: (t1.min(t2), t1.max(t2), frac(0.6)),
                nucleus: (n1.min(n2), n1.max(n2), frac(0.3)),
            }
        })
        .collect();
    let bg_tau = tau_at(0.60, &mut rng);
    let (llo, lhi) = (spec.photons.0.ln(), spec.photons.1.ln());
    let photons_at = |q: f64| (llo + (lhi - llo) * q).exp();
    let background = 0.5 * (spec.background.0 + spec.background.1);

    let g = spec.grid.gates;
    let mut fm = ForwardModel::new(&spec.grid, spec.period_ns)?;
    fm.set_irf(&irf)?;
    let mut p = vec![0.0; g];
    let mut counts = Array3::<u32>::zeros((height, width, g));
    let mut region = Array2::<u8>::zeros((height, width));
    let mut truth = Vec::with_capacity(height * width);
    for y in 0..height {
        for x in 0..width {
            let (py, px) = (y as f64 + 0.5, x as f64 + 0.5);
            let mut what = (BACKGROUND, (bg_tau, bg_tau, 1.0), spec.photons.0 * 0.2);
            for c in &cells {
                let r = c.radius(py, px);
                if r < 0.45 {
                    what = (NUCLEUS, c.nucleus, photons_at(0.55));
                } else if r < 1.0 {
                    what = (CYTOPLASM, c.cyto, photons_at(0.75));
                }
            }
            let (label, (tau1, tau2, a), n) = what;
            let expected = n * (0.7 + 0.3 * rng.gen::<f64>());
            let mono = a >= 1.0 || tau1 == tau2;
            let (tau2, a) = if mono { (tau1, 1.0) } else { (tau2, a) };
            fm.histogram(tau1, tau2, a, background, &mut p)?;
            let row = counts
                .slice_mut(ndarray::s![y, x, ..])
                .into_slice()
                .context("simulate image: counts not contiguous")?;
            let total = draw_counts(&mut rng, expected, &p, row);
            region[[y, x]] = label;
            truth.push(pixel_truth(
                (tau1, tau2, a, mono),
                total,
                expected,
                background,
                &irf,
            ));
        }
    }
    Ok(ImageSample {
        grid: spec.grid,
        period_ns: spec.period_ns,
        counts,
        truth,
        region,
        irf,
    })
}

/// dtime channels per gate used by [`write_image_ptu`]: about 10 ps
/// channels, fewer if one period would exceed the 32768 channels of a
/// HydraHarp T3 record.
pub fn ptu_channels_per_gate(grid: &GateGrid, period_ns: f64) -> usize {
    let mut k = ((grid.dt_ns / 0.01).round() as usize).max(1);
    while k > 1 && period_ns / (grid.dt_ns / k as f64) > 32768.0 {
        k -= 1;
    }
    k
}

/// Write the image as a HydraHarp v2 T3 image PTU: each photon of gate j
/// gets a micro-time drawn uniformly among the [`ptu_channels_per_gate`]
/// dtime channels of that gate (seeded by `seed`), so reading it back with
/// that dtime binning gives the counts exactly.
pub fn write_image_ptu(path: &Path, sample: &ImageSample, seed: u64) -> Result<()> {
    let (h, w) = (sample.height(), sample.width());
    let k = ptu_channels_per_gate(&sample.grid, sample.period_ns);
    let res = sample.grid.dt_ns / k as f64;
    let mut spec = PtuT3Spec::new(w, h, res, sample.period_ns);
    spec.record_type = PtuRecordType::HydraHarp2T3;
    if spec.channels() > 32768 {
        bail!(
            "ptu file {}: a {} ns period does not fit HydraHarp T3 dtimes at {res} ns",
            path.display(),
            sample.period_ns
        );
    }
    let most = sample
        .counts
        .outer_iter()
        .flat_map(|r| r.outer_iter().map(|p| p.sum() as u64).collect::<Vec<_>>())
        .max()
        .unwrap_or(0);
    spec.pixel_syncs = (most * 4).clamp(16, u32::MAX as u64 / 4) as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut photons = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let mut list = Vec::new();
            for (j, &c) in sample
                .counts
                .slice(ndarray::s![y, x, ..])
                .iter()
                .enumerate()
            {
                for _ in 0..c {
                    list.push((j * k + rng.gen_range(0..k)) as u16);
                }
            }
            photons.push(list);
        }
    }
    write_ptu_t3_image(path, &spec, &photons)
}

/// Paths written by [`write_image_sample`].
#[derive(Clone, Debug, PartialEq)]
pub struct ImageFiles {
    pub ptu: PathBuf,
    pub npy: PathBuf,
    pub truth: PathBuf,
}

impl ImageFiles {
    /// `DIR/STEM.ptu`, `DIR/STEM.npy`, `DIR/STEM.truth.csv`.
    pub fn in_dir(dir: &Path, stem: &str) -> ImageFiles {
        ImageFiles {
            ptu: dir.join(format!("{stem}.ptu")),
            npy: dir.join(format!("{stem}.npy")),
            truth: dir.join(format!("{stem}.truth.csv")),
        }
    }
}

/// Write `DIR/STEM.ptu`, `DIR/STEM.npy` (u32 `[h, w, G]`) and
/// `DIR/STEM.truth.csv` (one row per pixel, row-major).
pub fn write_image_sample(
    sample: &ImageSample,
    dir: &Path,
    stem: &str,
    seed: u64,
) -> Result<ImageFiles> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))?;
    let files = ImageFiles::in_dir(dir, stem);
    write_image_ptu(&files.ptu, sample, seed)?;
    crate::output::write_with(&files.npy, |w| {
        use ndarray_npy::WriteNpyExt;
        Ok(sample.counts.write_npy(w)?)
    })?;
    write_truth_csv(&files.truth, &sample.truth)?;
    Ok(files)
}
