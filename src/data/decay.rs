//! The forward model: expected photon distribution over the gates for an
//! IRF, a (bi-)exponential decay and a uniform background, in the periodic
//! steady state of a pulsed laser. The simulator and the Poisson MLE fit
//! both call [`ForwardModel::histogram`]; there is no second copy.
//!
//! Method: the IRF becomes probability masses on a fine grid over one laser
//! period (`subbins` sub-bins per gate over the window, sub-bins of at most
//! the same width over the rest of the period), each mass spread uniformly
//! over its sub-bin. The convolution with `exp(-t/tau)` is then exact for
//! that piecewise-constant IRF and runs as a first-order recursion over the
//! sub-bins; the tails of all earlier pulses add the geometric series
//! `z(T) / (1 - exp(-T/tau))` to the state at t = 0. Sub-bins are summed
//! into gates. Cost: O(period / sub-bin) per exponential, no allocation.

use super::fine_grid::{periodic_exp_conv, FineGrid};
use super::irf::Irf;
use super::GateGrid;
use anyhow::{bail, Result};

/// Default sub-bins per gate.
pub const DEFAULT_SUBBINS: usize = 4;

/// Reusable forward model for one gate grid and laser period: holds the
/// current pixel's IRF masses and the scratch buffers, so repeated calls
/// do not allocate.
#[derive(Clone, Debug)]
pub struct ForwardModel {
    grid: GateGrid,
    fine: FineGrid,
    masses: Vec<f64>,
    j0: usize,
    irf_mean_ns: f64,
    has_irf: bool,
    y: Vec<f64>,
    g1: Vec<f64>,
    g2: Vec<f64>,
}

impl ForwardModel {
    pub fn new(grid: &GateGrid, period_ns: f64) -> Result<Self> {
        Self::with_subbins(grid, period_ns, DEFAULT_SUBBINS)
    }

    pub fn with_subbins(grid: &GateGrid, period_ns: f64, subbins: usize) -> Result<Self> {
        let fine = FineGrid::new(grid, period_ns, subbins)?;
        let k = fine.len();
        Ok(ForwardModel {
            grid: *grid,
            masses: vec![0.0; k],
            j0: 0,
            irf_mean_ns: 0.0,
            has_irf: false,
            y: vec![0.0; fine.window_len()],
            g1: vec![0.0; grid.gates],
            g2: vec![0.0; grid.gates],
            fine,
        })
    }

    pub fn grid(&self) -> &GateGrid {
        &self.grid
    }

    pub fn fine(&self) -> &FineGrid {
        &self.fine
    }

    /// Set the pixel's IRF (computes its masses on the fine grid).
    pub fn set_irf(&mut self, irf: &Irf) -> Result<()> {
        self.has_irf = false;
        irf.fill_masses(&self.fine, &mut self.masses)?;
        self.j0 = self.masses.iter().position(|&m| m > 0.0).unwrap_or(0);
        let e = self.fine.edges();
        self.irf_mean_ns = self
            .masses
            .iter()
            .enumerate()
            .map(|(k, m)| m * 0.5 * (e[k] + e[k + 1]))
            .sum();
        self.has_irf = true;
        Ok(())
    }

    /// Mean time (ns) of the current IRF within the period.
    pub fn irf_mean_ns(&self) -> f64 {
        self.irf_mean_ns
    }

    /// Gate integrals of the steady-state response to `exp(-t/tau)`.
    fn component(&mut self, tau: f64, which: u8) {
        let need = self.fine.window_len();
        periodic_exp_conv(&self.fine, &self.masses, self.j0, tau, need, &mut self.y);
        let s = self.fine.subbins();
        let g = if which == 1 {
            &mut self.g1
        } else {
            &mut self.g2
        };
        for (gv, chunk) in g.iter_mut().zip(self.y.chunks_exact(s)) {
            *gv = chunk.iter().sum();
        }
    }

    /// Probability of each gate (sums to 1 over the window):
    /// `(1 - background) normalised[IRF conv (a e^{-t/tau1} + (1 - a)
    /// e^{-t/tau2})] + background / G`, `a` the amplitude fraction.
    pub fn histogram(
        &mut self,
        tau1: f64,
        tau2: f64,
        a: f64,
        background: f64,
        out: &mut [f64],
    ) -> Result<()> {
        if !self.has_irf {
            bail!("forward model: no IRF set");
        }
        let g = self.grid.gates;
        if out.len() != g {
            bail!(
                "forward model: output of {} gates for a {g}-gate grid",
                out.len()
            );
        }
        for (name, t) in [("tau1", tau1), ("tau2", tau2)] {
            if !(t.is_finite() && t > 0.0 && t <= 1e6) {
                bail!("forward model: {name} = {t} ns is not a positive finite lifetime");
            }
        }
        if !(0.0..=1.0).contains(&a) {
            bail!("forward model: amplitude fraction {a} is not in 0..=1");
        }
        if !(0.0..=1.0).contains(&background) {
            bail!("forward model: background fraction {background} is not in 0..=1");
        }
        self.component(tau1, 1);
        let mono = a >= 1.0 || tau1 == tau2;
        if !mono {
            self.component(tau2, 2);
        }
        let mut sum = 0.0;
        for ((o, &v1), &v2) in out.iter_mut().zip(&self.g1).zip(&self.g2) {
            let v = if mono { v1 } else { a * v1 + (1.0 - a) * v2 };
            *o = v;
            sum += v;
        }
        let flat = background / g as f64;
        if sum > 1e-300 && sum.is_finite() {
            let scale = (1.0 - background) / sum;
            out.iter_mut().for_each(|v| *v = *v * scale + flat);
        } else {
            // No decay photon reaches the window: only the background shape.
            out.iter_mut().for_each(|v| *v = 1.0 / g as f64);
        }
        Ok(())
    }
}

/// One-shot convenience around [`ForwardModel`] (allocates; use the struct
/// in loops).
#[allow(clippy::too_many_arguments)]
pub fn expected_histogram(
    grid: &GateGrid,
    period_ns: f64,
    irf: &Irf,
    tau1: f64,
    tau2: f64,
    a: f64,
    background: f64,
    out: &mut [f64],
) -> Result<()> {
    let mut fm = ForwardModel::new(grid, period_ns)?;
    fm.set_irf(irf)?;
    fm.histogram(tau1, tau2, a, background, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::irf::FWHM_PER_SIGMA;

    /// Dense numerical convolution of a Gaussian IRF with the decay,
    /// periodic, integrated over each gate (midpoint rule, step `step`).
    #[allow(clippy::too_many_arguments)]
    fn brute(
        grid: &GateGrid,
        period: f64,
        centre: f64,
        fwhm: f64,
        tau1: f64,
        tau2: f64,
        a: f64,
        bg: f64,
    ) -> Vec<f64> {
        let sigma = fwhm / FWHM_PER_SIGMA;
        let step = 0.0005;
        let ns = (period / step).round() as usize;
        let step = period / ns as f64;
        // IRF density on the period circle
        let irf: Vec<f64> = (0..ns)
            .map(|i| {
                let t = (i as f64 + 0.5) * step;
                (-3..=3)
                    .map(|n| {
                        let x = (t + n as f64 * period - centre) / sigma;
                        (-0.5 * x * x).exp()
                    })
                    .sum::<f64>()
            })
            .collect();
        let decay = |t: f64| a * (-t / tau1).exp() + (1.0 - a) * (-t / tau2).exp();
        // periodic kernel
        let kern: Vec<f64> = (0..ns)
            .map(|i| {
                let t = (i as f64 + 0.5) * step;
                (0..200).map(|n| decay(t + n as f64 * period)).sum::<f64>()
            })
            .collect();
        let mut resp = vec![0.0; ns];
        for (i, &w) in irf.iter().enumerate() {
            if w < 1e-18 {
                continue;
            }
            for (j, r) in resp.iter_mut().enumerate() {
                // lag from source i to target j (both midpoints), wrapped
                let lag = (j + ns - i) % ns;
                // exact midpoint-to-midpoint kernel with half-step correction
                *r += w * kern[lag] * if lag == 0 { 0.5 } else { 1.0 };
            }
        }
        let mut out = vec![0.0; grid.gates];
        for (j, r) in resp.iter().enumerate() {
            let t = (j as f64 + 0.5) * step;
            let g = (t / grid.dt_ns) as usize;
            if g < grid.gates {
                out[g] += r;
            }
        }
        let s: f64 = out.iter().sum();
        out.iter_mut()
            .for_each(|v| *v = *v / s * (1.0 - bg) + bg / grid.gates as f64);
        out
    }

    #[test]
    fn matches_brute_force_convolution() {
        let grid = GateGrid::new(60, 0.09).unwrap();
        let period = 6.0;
        for &(c, f, t1, t2, a, bg) in &[
            (1.0, 0.25, 0.5, 2.0, 0.6, 0.02),
            (0.7, 0.15, 0.05, 3.0, 0.5, 0.0),
            (1.4, 0.40, 1.0, 1.0, 1.0, 0.05),
            (0.2, 0.30, 0.3, 8.0, 0.2, 0.0),
        ] {
            let irf = Irf::gaussian(c, f).unwrap();
            let mut p = vec![0.0; grid.gates];
            expected_histogram(&grid, period, &irf, t1, t2, a, bg, &mut p).unwrap();
            let q = brute(&grid, period, c, f, t1, t2, a, bg);
            let peak = q.iter().cloned().fold(0.0, f64::max);
            let err = p
                .iter()
                .zip(&q)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            eprintln!("brute-force check: max abs error {err:.2e}, peak {peak:.3e}");
            // Tolerance: 0.3 % of the peak gate probability (observed <= 0.2 %).
            assert!(
                err < 3e-3 * peak,
                "params {:?}: max abs error {err:.2e}, peak {peak:.3e}",
                (c, f, t1, t2, a, bg)
            );
        }
    }

    #[test]
    fn wrap_term_raises_early_gates_only_for_short_periods() {
        let grid = GateGrid::PAPER;
        let irf = Irf::gaussian(1.0, 0.2).unwrap();
        let mut short = vec![0.0; grid.gates];
        let mut long = vec![0.0; grid.gates];
        expected_histogram(
            &grid,
            grid.window_ns() + 1e-6,
            &irf,
            3.0,
            3.0,
            1.0,
            0.0,
            &mut short,
        )
        .unwrap();
        expected_histogram(&grid, 1000.0, &irf, 3.0, 3.0, 1.0, 0.0, &mut long).unwrap();
        // Before the IRF (gate 0..5, < 0.45 ns) only earlier pulses' tails.
        let expected_ratio = (-grid.window_ns() / 3.0f64).exp();
        assert!(long[0] < 1e-12, "long-period gate 0 = {}", long[0]);
        // short: gate 0 ~ (tail at T) relative to the gate just before the
        // next pulse, i.e. the last gate decays into the first one.
        let ratio = short[0] / short[grid.gates - 1];
        assert!(
            (ratio - 1.0).abs() < 0.05,
            "wrap continuity: gate0/gateLast = {ratio}, exp(-W/tau) = {expected_ratio}"
        );
        assert!(short[0] > 0.01 * short.iter().cloned().fold(0.0, f64::max));
    }

    #[test]
    fn rejects_bad_parameters() {
        let grid = GateGrid::PAPER;
        let irf = Irf::gaussian(1.0, 0.2).unwrap();
        let mut p = vec![0.0; grid.gates];
        assert!(expected_histogram(&grid, 5.0, &irf, 1.0, 1.0, 1.0, 0.0, &mut p).is_err());
        assert!(expected_histogram(&grid, 12.5, &irf, -1.0, 1.0, 1.0, 0.0, &mut p).is_err());
        assert!(expected_histogram(&grid, 12.5, &irf, f64::NAN, 1.0, 1.0, 0.0, &mut p).is_err());
        assert!(expected_histogram(&grid, 12.5, &irf, 1.0, 1.0, 1.5, 0.0, &mut p).is_err());
        assert!(expected_histogram(&grid, 12.5, &irf, 1.0, 1.0, 1.0, 0.0, &mut p[..3]).is_err());
    }

    #[test]
    fn area_fraction_follows_amplitude_times_tau() {
        // Long period, IRF early: the window holds nearly all of both
        // components; the short one carries a tau1 / (a tau1 + (1-a) tau2).
        let grid = GateGrid::new(2000, 0.01).unwrap();
        let irf = Irf::gaussian(0.5, 0.1).unwrap();
        let mut fm = ForwardModel::new(&grid, 1000.0).unwrap();
        fm.set_irf(&irf).unwrap();
        let (mut p1, mut p2, mut p) = (vec![0.0; 2000], vec![0.0; 2000], vec![0.0; 2000]);
        fm.histogram(0.3, 0.3, 1.0, 0.0, &mut p1).unwrap();
        fm.histogram(1.5, 1.5, 1.0, 0.0, &mut p2).unwrap();
        fm.histogram(0.3, 1.5, 0.5, 0.0, &mut p).unwrap();
        let w = 0.5 * 0.3 / (0.5 * 0.3 + 0.5 * 1.5);
        for k in 0..2000 {
            assert!((p[k] - (w * p1[k] + (1.0 - w) * p2[k])).abs() < 1e-5);
        }
    }
}
