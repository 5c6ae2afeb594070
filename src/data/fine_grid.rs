//! The fine time grid over one laser period and the exact periodic
//! convolution of piecewise-constant masses with an exponential on it: the
//! primitive both the forward model (`decay`) and the IRF shapes (`irf`,
//! a diffusion tail is an exponential convolved with the Gaussian) build
//! on, kept apart so neither of those modules depends on the other.

use super::GateGrid;
use anyhow::{bail, Result};

/// Largest fine grid accepted (sub-bins over one period).
pub const MAX_SUBBINS_TOTAL: usize = 1 << 22;

/// Sub-bins over one laser period: `nwin` of width `h` covering the gate
/// window, then `ntail` of width `h2 <= h` up to the period.
#[derive(Clone, Debug, PartialEq)]
pub struct FineGrid {
    period_ns: f64,
    subbins: usize,
    nwin: usize,
    h: f64,
    ntail: usize,
    h2: f64,
    edges: Vec<f64>,
}

impl FineGrid {
    pub fn new(grid: &GateGrid, period_ns: f64, subbins: usize) -> Result<Self> {
        let grid = GateGrid::new(grid.gates, grid.dt_ns)?;
        if !(1..=64).contains(&subbins) {
            bail!("forward model: {subbins} sub-bins per gate is out of range 1..=64");
        }
        let window = grid.window_ns();
        if !(period_ns.is_finite() && period_ns > 0.0) {
            bail!("laser period {period_ns} ns is not a positive finite time");
        }
        if period_ns < window * (1.0 - 1e-9) {
            bail!("laser period {period_ns} ns is shorter than the gate window {window} ns");
        }
        let h = grid.dt_ns / subbins as f64;
        let nwin = grid.gates * subbins;
        let rest = (period_ns - window).max(0.0);
        let ntail_f = if rest <= 1e-9 * period_ns {
            0.0
        } else {
            (rest / h).ceil()
        };
        if nwin as f64 + ntail_f > MAX_SUBBINS_TOTAL as f64 {
            bail!(
                "laser period {period_ns} ns needs {} sub-bins of {h} ns, more than {MAX_SUBBINS_TOTAL}",
                nwin as f64 + ntail_f
            );
        }
        let ntail = ntail_f as usize;
        let h2 = if ntail > 0 { rest / ntail as f64 } else { h };
        let mut edges = Vec::with_capacity(nwin + ntail + 1);
        edges.extend((0..=nwin).map(|k| k as f64 * h));
        edges.extend((1..=ntail).map(|k| window + k as f64 * h2));
        // The period is the exact last edge whatever the rounding.
        let last = edges.len() - 1;
        edges[last] = edges[last].max(period_ns);
        Ok(FineGrid {
            period_ns: period_ns.max(window),
            subbins,
            nwin,
            h,
            ntail,
            h2,
            edges,
        })
    }

    /// Number of sub-bins over one period.
    pub fn len(&self) -> usize {
        self.nwin + self.ntail
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sub-bin edges, `len() + 1` of them, from 0 to the period.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    pub fn centres(&self) -> Vec<f64> {
        self.edges.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }

    pub fn period_ns(&self) -> f64 {
        self.period_ns
    }

    pub fn subbins(&self) -> usize {
        self.subbins
    }

    /// Sub-bins covering the gate window.
    pub fn window_len(&self) -> usize {
        self.nwin
    }
}

/// Recursion coefficients for sub-bins of width `h`: decay `r`, decay
/// complement `1 - r`, mass-to-state `tau (1 - r) / h` and the self term
/// `tau (1 - tau (1 - r) / h)` (a uniform mass convolved within its bin).
#[inline]
fn coeffs(h: f64, tau: f64) -> (f64, f64, f64, f64) {
    let omr = -(-h / tau).exp_m1();
    let r = 1.0 - omr;
    let c = tau * omr / h;
    let x = h / tau;
    // tau (1 - c) = tau (x - 1 + e^-x) / x, series for small x.
    let s = if x < 1e-3 {
        h * (0.5 - x / 6.0 + x * x / 24.0)
    } else {
        tau * (1.0 - omr / x)
    };
    (r, omr, c, s)
}

/// Periodic convolution of uniform-in-bin masses with `exp(-t/tau)`:
/// `y[k]` = integral over sub-bin k of the steady-state response, for the
/// first `need` sub-bins. `masses[..j0]` must be zero (a skip hint).
pub(crate) fn periodic_exp_conv(
    fine: &FineGrid,
    masses: &[f64],
    j0: usize,
    tau: f64,
    need: usize,
    y: &mut [f64],
) {
    let (nwin, k_all) = (fine.nwin, fine.len());
    let need = need.min(k_all).min(y.len());
    let j0 = j0.min(k_all);
    let (r1, o1, c1, s1) = coeffs(fine.h, tau);
    let (r2, o2, c2, s2) = coeffs(fine.h2, tau);
    y[..need.min(j0)].iter_mut().for_each(|v| *v = 0.0);
    let mut z = 0.0;
    for k in j0..nwin.max(j0) {
        let m = masses[k];
        if k < need {
            y[k] = tau * z * o1 + m * s1;
        }
        z = r1 * z + m * c1;
    }
    for k in nwin.max(j0)..k_all {
        let m = masses[k];
        if k < need {
            y[k] = tau * z * o2 + m * s2;
        }
        z = r2 * z + m * c2;
    }
    // Earlier pulses: state at t = 0 is z(T) (1 + R + R^2 + ...).
    let big_r = (-fine.period_ns / tau).exp();
    let mut p = z / (1.0 - big_r);
    if p.is_nan() || p <= 1e-300 {
        return;
    }
    for (k, v) in y.iter_mut().enumerate().take(need) {
        if k < nwin {
            *v += tau * p * o1;
            p *= r1;
        } else {
            *v += tau * p * o2;
            p *= r2;
        }
        if p < 1e-300 {
            break;
        }
    }
}
