//! Poisson maximum-likelihood fit: the classical baseline an FLI user runs.
//!
//! The model is [`crate::data::decay::ForwardModel`] (the simulator's own
//! forward model) with the pixel's IRF known. The total amplitude is
//! profiled out analytically (for a free scale the MLE expected total is
//! the observed total), leaving the multinomial likelihood of the gate
//! probabilities. Free parameters: tau (Mono) or tau1, tau2, a (Bi), and
//! the background fraction; bounded (tau in [0.01, 20] ns, a and the
//! background in [0, 1]) through a sine transform, minimised by
//! Nelder-Mead with restarts.

use super::Lifetimes;
use crate::data::decay::ForwardModel;
use crate::data::irf::{Irf, IrfSpec};
use crate::data::GateGrid;
use anyhow::{bail, Result};
use ndarray::ArrayView2;
use rayon::prelude::*;

pub const TAU_MIN_NS: f64 = 0.01;
pub const TAU_MAX_NS: f64 = 20.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MleModel {
    Mono,
    Bi,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MleFit {
    /// Mono fits report tau2 = tau1 and fraction 1.
    pub lifetimes: Lifetimes,
    /// Fitted background fraction of the photons.
    pub background: f64,
    /// Half the Poisson deviance at the optimum:
    /// sum_k [c_k ln(c_k / mu_k) - (c_k - mu_k)] (about G/2 for a good fit).
    pub nll: f64,
    /// Objective evaluations used.
    pub iterations: usize,
    /// False for empty pixels and fits that hit the evaluation limit.
    pub converged: bool,
}

const LN_TAU: (f64, f64) = (-4.605_170_185_988_091, 2.995_732_273_553_991); // ln 0.01, ln 20

/// Box constraint by a sine map: x in R -> lo + (hi - lo) (1 + sin x) / 2.
#[inline]
fn to_box(x: f64, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * 0.5 * (1.0 + x.sin())
}

#[inline]
fn from_box(v: f64, (lo, hi): (f64, f64)) -> f64 {
    (2.0 * (v - lo) / (hi - lo) - 1.0).clamp(-1.0, 1.0).asin()
}

/// Nelder-Mead minimiser in any dimension. Returns (best x, best f,
/// evaluations, converged).
/// Restart Nelder-Mead from `(x, fx, converged)` with each simplex size of
/// `steps` in turn, keeping the best point, until a restart gains less than
/// `rel_tol` (relative). Returns the point, its value, the evaluations used
/// and whether the last run converged.
fn restart<F: FnMut(&[f64]) -> f64>(
    f: &mut F,
    (mut x, mut fx, mut conv): (Vec<f64>, f64, bool),
    steps: &[f64],
    max_evals: usize,
    rel_tol: f64,
) -> (Vec<f64>, f64, usize, bool) {
    let mut evals = 0;
    for &step in steps {
        let (x2, f2, e2, c2) = nelder_mead(f, &x, step, max_evals, 1e-10);
        evals += e2;
        let gain = fx - f2;
        if f2 <= fx {
            x = x2;
            fx = f2;
        }
        conv = c2;
        if gain <= rel_tol * (1.0 + fx.abs()) {
            break;
        }
    }
    (x, fx, evals, conv)
}

fn nelder_mead<F: FnMut(&[f64]) -> f64>(
    f: &mut F,
    x0: &[f64],
    step: f64,
    max_evals: usize,
    ftol: f64,
) -> (Vec<f64>, f64, usize, bool) {
    let d = x0.len();
    let mut pts: Vec<Vec<f64>> = Vec::with_capacity(d + 1);
    let mut fs: Vec<f64> = Vec::with_capacity(d + 1);
    pts.push(x0.to_vec());
    for i in 0..d {
        let mut p = x0.to_vec();
        p[i] += step;
        pts.push(p);
    }
    for p in &pts {
        fs.push(f(p));
    }
    let mut evals = d + 1;
    let mut converged = false;
    let mut centroid = vec![0.0; d];
    let mut xr = vec![0.0; d];
    let mut xe = vec![0.0; d];
    while evals < max_evals {
        // order
        let mut idx: Vec<usize> = (0..=d).collect();
        idx.sort_by(|&a, &b| fs[a].total_cmp(&fs[b]));
        let (best, worst, second) = (idx[0], idx[d], idx[d - 1]);
        if (fs[worst] - fs[best]).abs() <= ftol * (1.0 + fs[best].abs()) {
            converged = true;
            break;
        }
        centroid.iter_mut().for_each(|c| *c = 0.0);
        for &i in &idx[..d] {
            for (c, x) in centroid.iter_mut().zip(&pts[i]) {
                *c += x / d as f64;
            }
        }
        for j in 0..d {
            xr[j] = centroid[j] + (centroid[j] - pts[worst][j]);
        }
        let fr = f(&xr);
        evals += 1;
        if fr < fs[best] {
            for j in 0..d {
                xe[j] = centroid[j] + 2.0 * (centroid[j] - pts[worst][j]);
            }
            let fe = f(&xe);
            evals += 1;
            if fe < fr {
                pts[worst].copy_from_slice(&xe);
                fs[worst] = fe;
            } else {
                pts[worst].copy_from_slice(&xr);
                fs[worst] = fr;
            }
        } else if fr < fs[second] {
            pts[worst].copy_from_slice(&xr);
            fs[worst] = fr;
        } else {
            // contraction (outside if the reflection beat the worst)
            let outside = fr < fs[worst];
            for j in 0..d {
                xe[j] = if outside {
                    centroid[j] + 0.5 * (xr[j] - centroid[j])
                } else {
                    centroid[j] + 0.5 * (pts[worst][j] - centroid[j])
                };
            }
            let fc = f(&xe);
            evals += 1;
            if fc < fs[worst].min(fr) {
                pts[worst].copy_from_slice(&xe);
                fs[worst] = fc;
            } else {
                // shrink towards the best
                let b = pts[best].clone();
                for i in 0..=d {
                    if i == best {
                        continue;
                    }
                    for j in 0..d {
                        pts[i][j] = b[j] + 0.5 * (pts[i][j] - b[j]);
                    }
                    fs[i] = f(&pts[i]);
                    evals += 1;
                }
            }
        }
    }
    let best = (0..=d)
        .min_by(|&a, &b| fs[a].total_cmp(&fs[b]))
        .unwrap_or(0);
    (pts[best].clone(), fs[best], evals, converged)
}

/// Reusable fitter for one gate grid and period (holds the forward model
/// and buffers; one per thread).
#[derive(Clone, Debug)]
pub struct MleFitter {
    fm: ForwardModel,
    p: Vec<f64>,
    c: Vec<f64>,
    /// Evaluation budget per Nelder-Mead run.
    pub max_evals: usize,
}

impl MleFitter {
    pub fn new(grid: &GateGrid, period_ns: f64) -> Result<Self> {
        Ok(MleFitter {
            fm: ForwardModel::new(grid, period_ns)?,
            p: vec![0.0; grid.gates],
            c: vec![0.0; grid.gates],
            max_evals: 1500,
        })
    }

    /// Fit raw counts.
    pub fn fit(&mut self, counts: &[u32], irf: &Irf, model: MleModel) -> Result<MleFit> {
        let c: Vec<f64> = counts.iter().map(|&v| v as f64).collect();
        self.fit_f64(&c, irf, model)
    }

    /// Fit counts given as floats (non-negative, finite).
    pub fn fit_f64(&mut self, counts: &[f64], irf: &Irf, model: MleModel) -> Result<MleFit> {
        let g = self.fm.grid().gates;
        if counts.len() != g {
            bail!("MLE fit: {} counts for a {g}-gate grid", counts.len());
        }
        if let Some(i) = counts.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            bail!(
                "MLE fit: count {} at gate {i} is negative or not finite",
                counts[i]
            );
        }
        self.fm.set_irf(irf)?;
        self.c.copy_from_slice(counts);
        let n: f64 = counts.iter().sum();
        if n <= 0.0 {
            return Ok(MleFit::default());
        }
        let mono = self.fit_mono(n);
        let fit = match model {
            MleModel::Mono => mono,
            MleModel::Bi => self.fit_bi(n, &mono),
        };
        Ok(fit)
    }

    /// Multinomial negative log-likelihood -sum c ln p (scale profiled).
    fn objective(&mut self, tau1: f64, tau2: f64, a: f64, bg: f64) -> f64 {
        if self.fm.histogram(tau1, tau2, a, bg, &mut self.p).is_err() {
            return f64::INFINITY;
        }
        let mut s = 0.0;
        for (&c, &p) in self.c.iter().zip(&self.p) {
            if c > 0.0 {
                s -= c * p.max(1e-300).ln();
            }
        }
        s
    }

    /// Half deviance from the multinomial objective at the optimum.
    fn half_deviance(&self, obj: f64, n: f64) -> f64 {
        let sat: f64 = self
            .c
            .iter()
            .filter(|&&c| c > 0.0)
            .map(|&c| c * (c / n).ln())
            .sum();
        obj + sat
    }

    fn fit_mono(&mut self, n: f64) -> MleFit {
        let dt = self.fm.grid().dt_ns;
        let mean_t: f64 = self
            .c
            .iter()
            .enumerate()
            .map(|(k, c)| c * (k as f64 + 0.5) * dt)
            .sum::<f64>()
            / n;
        let tau0 = (mean_t - self.fm.irf_mean_ns()).clamp(0.05, 10.0);
        let bg_box = (0.0, 1.0);
        let x0 = [from_box(tau0.ln(), LN_TAU), from_box(0.01, bg_box)];
        let mut total = 0;
        let max_evals = self.max_evals;
        let mut f = |x: &[f64]| {
            let tau = to_box(x[0], LN_TAU).exp();
            self.objective(tau, tau, 1.0, to_box(x[1], bg_box))
        };
        let (x, fx, e, conv) = nelder_mead(&mut f, &x0, 0.2, max_evals, 1e-10);
        total += e;
        let (x, fx, e, conv) = restart(&mut f, (x, fx, conv), &[0.05; 3], max_evals, 1e-8);
        total += e;
        let tau = to_box(x[0], LN_TAU).exp();
        MleFit {
            lifetimes: Lifetimes {
                tau1: tau,
                tau2: tau,
                fraction: 1.0,
            },
            background: to_box(x[1], bg_box),
            nll: self.half_deviance(fx, n),
            iterations: total,
            converged: conv,
        }
    }

    /// Mono-exponential fit with the IRF *unknown*: its centre, width and
    /// diffusion tail are fitted with the lifetime and the background,
    /// each bounded by the simulator prior `prior` (the ranges a network
    /// trained on that prior saw). It bounds what any estimator that must
    /// infer each pixel's IRF from its decay can do, where the IRF-known
    /// fit bounds what an instrument with a measured IRF can do. Two
    /// starts (tail off, tail halfway) with restarts; the better is kept.
    pub fn fit_mono_irf_unknown(&mut self, counts: &[f64], prior: &IrfSpec) -> Result<MleFit> {
        prior.validate()?;
        if prior.measured.is_some() {
            bail!(
                "MLE with the IRF unknown: the prior is a measured IRF (fit it with the IRF known)"
            );
        }
        let g = self.fm.grid().gates;
        if counts.len() != g {
            bail!("MLE fit: {} counts for a {g}-gate grid", counts.len());
        }
        if let Some(i) = counts.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            bail!(
                "MLE fit: count {} at gate {i} is negative or not finite",
                counts[i]
            );
        }
        self.c.copy_from_slice(counts);
        let n: f64 = counts.iter().sum();
        if n <= 0.0 {
            return Ok(MleFit::default());
        }
        let dt = self.fm.grid().dt_ns;
        let mean_t: f64 = counts
            .iter()
            .enumerate()
            .map(|(k, c)| c * (k as f64 + 0.5) * dt)
            .sum::<f64>()
            / n;
        let widen = |(lo, hi): (f64, f64)| if hi > lo { (lo, hi) } else { (lo, lo + 1e-9) };
        let centre_box = widen(prior.centre_ns);
        let fwhm_box = widen(prior.fwhm_ns);
        let tail = prior.spad_probability > 0.0;
        let weight_box = (0.0, prior.tail_weight.1.max(1e-9));
        let tail_tau_box = widen(prior.tail_tau_ns);
        let bg_box = (0.0, 1.0);
        let mid = |(lo, hi): (f64, f64)| 0.5 * (lo + hi);
        let tau0 = (mean_t - mid(centre_box)).clamp(0.05, 10.0);
        let max_evals = 4 * self.max_evals;
        let mut best: Option<(Vec<f64>, f64, usize, bool)> = None;
        let mut total = 0;
        let weights: &[f64] = if tail { &[0.02, 0.5] } else { &[0.0] };
        for &w0 in weights {
            let mut x0 = vec![
                from_box(tau0.ln(), LN_TAU),
                from_box(0.01, bg_box),
                from_box(mid(centre_box), centre_box),
                from_box(mid(fwhm_box), fwhm_box),
            ];
            if tail {
                x0.push(from_box(w0 * weight_box.1, weight_box));
                x0.push(from_box(mid(tail_tau_box), tail_tau_box));
            }
            let mut f = |x: &[f64]| {
                let centre = to_box(x[2], centre_box);
                let fwhm = to_box(x[3], fwhm_box);
                let irf = if x.len() > 4 {
                    Irf::Spad {
                        centre_ns: centre,
                        fwhm_ns: fwhm,
                        tail_weight: to_box(x[4], weight_box),
                        tail_tau_ns: to_box(x[5], tail_tau_box),
                    }
                } else {
                    Irf::Gaussian {
                        centre_ns: centre,
                        fwhm_ns: fwhm,
                    }
                };
                if self.fm.set_irf(&irf).is_err() {
                    return f64::INFINITY;
                }
                let tau = to_box(x[0], LN_TAU).exp();
                self.objective(tau, tau, 1.0, to_box(x[1], bg_box))
            };
            let (x, fx, e, conv) = nelder_mead(&mut f, &x0, 0.3, max_evals, 1e-10);
            total += e;
            let (x, fx, e, conv) =
                restart(&mut f, (x, fx, conv), &[0.1, 0.05, 0.02], max_evals, 1e-9);
            total += e;
            if best.as_ref().is_none_or(|b| fx < b.1) {
                best = Some((x, fx, e, conv));
            }
        }
        let (x, fx, _, conv) = best.expect("at least one start");
        let tau = to_box(x[0], LN_TAU).exp();
        Ok(MleFit {
            lifetimes: Lifetimes {
                tau1: tau,
                tau2: tau,
                fraction: 1.0,
            },
            background: to_box(x[1], bg_box),
            nll: self.half_deviance(fx, n),
            iterations: total,
            converged: conv,
        })
    }

    fn fit_bi(&mut self, n: f64, mono: &MleFit) -> MleFit {
        let tm = mono.lifetimes.tau1.clamp(0.02, 10.0);
        let bgm = mono.background.clamp(0.001, 0.5);
        let a_box = (0.0, 1.0);
        let bg_box = (0.0, 1.0);
        let enc = |t1: f64, t2: f64, a: f64, bg: f64| {
            [
                from_box(t1.ln(), LN_TAU),
                from_box(t2.ln(), LN_TAU),
                from_box(a, a_box),
                from_box(bg, bg_box),
            ]
        };
        let starts = [
            enc(tm * 0.4, tm * 1.6, 0.5, bgm),
            enc(tm * 0.15, tm * 1.15, 0.6, bgm),
        ];
        let max_evals = self.max_evals;
        let mut f = |x: &[f64]| {
            self.objective(
                to_box(x[0], LN_TAU).exp(),
                to_box(x[1], LN_TAU).exp(),
                to_box(x[2], a_box),
                to_box(x[3], bg_box),
            )
        };
        let mut total = 0;
        let mut best: Option<(Vec<f64>, f64, bool)> = None;
        for s in &starts {
            let (x, fx, e, c) = nelder_mead(&mut f, s, 0.3, max_evals / 3, 1e-6);
            total += e;
            if best.as_ref().is_none_or(|b| fx < b.1) {
                best = Some((x, fx, c));
            }
        }
        let start = best.unwrap_or((starts[0].to_vec(), f64::INFINITY, false));
        let (x, fx, e, conv) = restart(&mut f, start, &[0.1, 0.03, 0.03], max_evals, 1e-9);
        total += e;
        let (mut t1, mut t2, mut a) = (
            to_box(x[0], LN_TAU).exp(),
            to_box(x[1], LN_TAU).exp(),
            to_box(x[2], a_box),
        );
        if t1 > t2 {
            std::mem::swap(&mut t1, &mut t2);
            a = 1.0 - a;
        }
        // The bi model can only improve on the mono optimum (nested); keep
        // the mono answer if the search did not get there.
        let bi_nll = self.half_deviance(fx, n);
        if bi_nll > mono.nll {
            return MleFit {
                iterations: total + mono.iterations,
                ..*mono
            };
        }
        MleFit {
            lifetimes: Lifetimes {
                tau1: t1,
                tau2: t2,
                fraction: a,
            },
            background: to_box(x[3], bg_box),
            nll: bi_nll,
            iterations: total + mono.iterations,
            converged: conv,
        }
    }
}

/// Fit one pixel. Invalid input (wrong length, bad grid, period or IRF)
/// gives a zero, non-converged fit rather than a panic; use
/// [`MleFitter::fit`] to see the error.
pub fn fit_mle(
    counts: &[u32],
    grid: &GateGrid,
    period_ns: f64,
    irf: &Irf,
    model: MleModel,
) -> MleFit {
    MleFitter::new(grid, period_ns)
        .and_then(|mut f| f.fit(counts, irf, model))
        .unwrap_or_default()
}

/// [`MleFitter::fit_mono_irf_unknown`] on one pixel; invalid input gives
/// a zero, non-converged fit (as [`fit_mle`]).
pub fn fit_mle_irf_unknown(
    counts: &[u32],
    grid: &GateGrid,
    period_ns: f64,
    prior: &IrfSpec,
) -> MleFit {
    let c: Vec<f64> = counts.iter().map(|&v| v as f64).collect();
    MleFitter::new(grid, period_ns)
        .and_then(|mut f| f.fit_mono_irf_unknown(&c, prior))
        .unwrap_or_default()
}

/// Fit many pixels `[n, G]` in parallel, pixel i with `irfs[i]`.
pub fn fit_mle_batch(
    counts: ArrayView2<f32>,
    grid: &GateGrid,
    period_ns: f64,
    irfs: &[Irf],
    model: MleModel,
) -> Result<Vec<MleFit>> {
    if counts.nrows() != irfs.len() {
        bail!(
            "MLE batch: {} pixels but {} IRFs",
            counts.nrows(),
            irfs.len()
        );
    }
    MleFitter::new(grid, period_ns)?;
    let rows: Vec<_> = counts.outer_iter().zip(irfs).collect();
    rows.par_iter()
        .map_init(
            || MleFitter::new(grid, period_ns),
            |fitter, (row, irf)| {
                let fitter = fitter.as_mut().map_err(|e| anyhow::anyhow!("{e}"))?;
                let c: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                fitter.fit_f64(&c, irf, model)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::decay::expected_histogram;

    fn noise_free(irf: &Irf, t1: f64, t2: f64, a: f64, bg: f64) -> Vec<u32> {
        let grid = GateGrid::PAPER;
        let mut p = vec![0.0; grid.gates];
        expected_histogram(&grid, 12.5, irf, t1, t2, a, bg, &mut p).unwrap();
        p.iter().map(|v| (v * 1e6).round() as u32).collect()
    }

    #[test]
    fn recovers_noise_free_bi() {
        let grid = GateGrid::PAPER;
        for &(t1, t2, a, bg) in &[
            (0.4, 2.0, 0.6, 0.01),
            (0.2, 1.2, 0.3, 0.0),
            (0.8, 2.8, 0.5, 0.03),
        ] {
            for irf in [
                Irf::gaussian(1.0, 0.25).unwrap(),
                Irf::spad(0.8, 0.2, 0.2, 0.3).unwrap(),
            ] {
                let c = noise_free(&irf, t1, t2, a, bg);
                let fit = fit_mle(&c, &grid, 12.5, &irf, MleModel::Bi);
                let l = fit.lifetimes;
                let msg = format!("{:?} -> {fit:?}", (t1, t2, a, bg));
                assert!((l.tau1 / t1 - 1.0).abs() < 0.01, "{msg}");
                assert!((l.tau2 / t2 - 1.0).abs() < 0.01, "{msg}");
                assert!((l.fraction / a - 1.0).abs() < 0.01, "{msg}");
            }
        }
    }

    #[test]
    fn recovers_noise_free_mono() {
        let irf = Irf::gaussian(1.2, 0.3).unwrap();
        for &t in &[0.1, 1.0, 3.0] {
            let c = noise_free(&irf, t, t, 1.0, 0.02);
            let fit = fit_mle(&c, &GateGrid::PAPER, 12.5, &irf, MleModel::Mono);
            assert!((fit.lifetimes.tau1 / t - 1.0).abs() < 0.005, "{t}: {fit:?}");
            assert!(fit.converged);
        }
    }

    #[test]
    fn irf_unknown_fit_recovers_lifetime_and_irf_from_noise_free_counts() {
        let grid = GateGrid::PAPER;
        let prior = IrfSpec::default();
        let truth = Irf::spad(0.8, 0.3, 0.15, 0.3).unwrap();
        let mut p = vec![0.0; grid.gates];
        expected_histogram(&grid, 12.5, &truth, 1.0, 1.0, 1.0, 0.02, &mut p).unwrap();
        let c: Vec<f64> = p.iter().map(|v| v * 1e6).collect();
        let mut f = MleFitter::new(&grid, 12.5).unwrap();
        let fit = f.fit_mono_irf_unknown(&c, &prior).unwrap();
        assert!(
            (fit.lifetimes.tau1 - 1.0).abs() < 0.01,
            "tau {} (IRF unknown, noise-free)",
            fit.lifetimes.tau1
        );
        // A Gaussian-only prior fits 4 parameters.
        let gauss = IrfSpec {
            spad_probability: 0.0,
            ..IrfSpec::default()
        };
        let irf = Irf::gaussian(1.2, 0.2).unwrap();
        expected_histogram(&grid, 12.5, &irf, 2.0, 2.0, 1.0, 0.0, &mut p).unwrap();
        let c: Vec<f64> = p.iter().map(|v| v * 1e6).collect();
        let fit = f.fit_mono_irf_unknown(&c, &gauss).unwrap();
        assert!(
            (fit.lifetimes.tau1 - 2.0).abs() < 0.02,
            "tau {}",
            fit.lifetimes.tau1
        );
        let measured = IrfSpec {
            measured: Some(crate::data::irf::MeasuredIrfSpec {
                path: "irf.csv".into(),
                samples: None,
                spacing_ns: None,
                shift_ns: (0.0, 0.0),
            }),
            ..IrfSpec::default()
        };
        assert!(f.fit_mono_irf_unknown(&c, &measured).is_err());
    }

    #[test]
    fn empty_and_single_photon_pixels() {
        let grid = GateGrid::PAPER;
        let irf = Irf::gaussian(1.0, 0.2).unwrap();
        let zero = vec![0u32; grid.gates];
        let f = fit_mle(&zero, &grid, 12.5, &irf, MleModel::Bi);
        assert!(!f.converged && f.lifetimes.tau1 == 0.0);
        let mut one = zero.clone();
        one[30] = 1;
        for m in [MleModel::Mono, MleModel::Bi] {
            let f = fit_mle(&one, &grid, 12.5, &irf, m);
            assert!(f.lifetimes.tau1.is_finite());
        }
        // wrong length: no panic
        let f = fit_mle(&zero[..10], &grid, 12.5, &irf, MleModel::Mono);
        assert!(!f.converged);
    }
}
