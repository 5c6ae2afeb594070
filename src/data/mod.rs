//! FLI physics and data: the gate grid, decays convolved with an IRF,
//! photon sampling, preprocessing, the Seq2Seq target channels and files.

use anyhow::{bail, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub mod binning;
pub mod decay;
pub mod fine_grid;
pub mod formats;
pub mod grid_match;
pub mod image;
pub mod instrument;
pub mod io;
pub mod irf;
pub mod preprocess;
pub mod simulate;
pub mod targets;

pub use decay::{expected_histogram, ForwardModel};
pub use io::{
    read_histograms, read_truth_csv, write_atomically, write_counts_npy, write_truth_csv,
    Histograms,
};
pub use irf::{Irf, IrfSpec, MeasuredIrf};
pub use preprocess::{preprocess, preprocess_batch, BASELINE_GATES};
pub use simulate::{simulate, simulate_with_irfs, simulate_with_progress, SimSpec};
pub use targets::{target_channels, targets};

/// Time axis of a histogram: `gates` contiguous gates of width `dt_ns`,
/// gate k covering [k dt, (k + 1) dt) after the laser pulse, and the
/// leading gates whose mean preprocessing takes as the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateGrid {
    pub gates: usize,
    pub dt_ns: f64,
    /// Leading gates averaged for the baseline ([`preprocess`]); 0: no
    /// baseline subtracted. They must hold background only: where the IRF's
    /// rising edge reaches into them, the subtraction removes signal and
    /// the clip at 0 the decay's tail (docs/precision.md).
    #[serde(
        default = "default_baseline_gates",
        skip_serializing_if = "is_default_baseline_gates"
    )]
    pub baseline_gates: usize,
}

fn default_baseline_gates() -> usize {
    BASELINE_GATES
}

fn is_default_baseline_gates(b: &usize) -> bool {
    *b == BASELINE_GATES
}

/// Largest baseline window: the contract sums it into 24 bits
/// (docs/fixed-point.md section 1).
pub const MAX_BASELINE_GATES: usize = 64;

impl GateGrid {
    /// The paper's SwissSPAD3 grid: 135 gates of 90 ps.
    pub const PAPER: GateGrid = GateGrid {
        gates: 135,
        dt_ns: 0.09,
        baseline_gates: BASELINE_GATES,
    };

    /// A grid with the default baseline window of [`BASELINE_GATES`].
    pub fn new(gates: usize, dt_ns: f64) -> Result<Self> {
        if !(BASELINE_GATES + 1..=1 << 16).contains(&gates) {
            bail!(
                "gate count {gates} is out of range ({}..=65536)",
                BASELINE_GATES + 1
            );
        }
        if !(dt_ns.is_finite() && dt_ns > 0.0 && dt_ns <= 100.0) {
            bail!("gate width {dt_ns} ns is not a positive finite width up to 100 ns");
        }
        Ok(GateGrid {
            gates,
            dt_ns,
            baseline_gates: BASELINE_GATES,
        })
    }

    /// The same grid with a baseline window of `b` leading gates.
    pub fn with_baseline_gates(self, b: usize) -> Result<Self> {
        let g = GateGrid {
            baseline_gates: b,
            ..self
        };
        g.check_baseline()?;
        Ok(g)
    }

    /// Refuses a baseline window (as read from a file) that is not below
    /// the gate count or exceeds [`MAX_BASELINE_GATES`].
    pub fn check_baseline(&self) -> Result<()> {
        if self.baseline_gates > MAX_BASELINE_GATES || self.baseline_gates >= self.gates {
            bail!(
                "baseline window of {} gates (grid field baseline_gates) must be below the {} gates and at most {MAX_BASELINE_GATES}",
                self.baseline_gates,
                self.gates
            );
        }
        Ok(())
    }

    pub fn window_ns(&self) -> f64 {
        self.gates as f64 * self.dt_ns
    }
}

impl Default for GateGrid {
    fn default() -> Self {
        Self::PAPER
    }
}

/// Ground truth of one simulated pixel.
///
/// `fraction` is the amplitude fraction `a` of the short component:
/// decay(t) = a exp(-t/tau1) + (1 - a) exp(-t/tau2). Mono-exponential
/// pixels have `mono = true`, `fraction = 1` and `tau2 = tau1`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub tau1: f64,
    pub tau2: f64,
    pub fraction: f64,
    pub mono: bool,
    /// Photons actually detected in the window (sum of the histogram).
    pub photons: u64,
    /// Expected photons in the window the sample was drawn from.
    pub expected_photons: f64,
    /// Fraction of the expected photons that is uniform background.
    pub background: f64,
    /// IRF centre (ns) and FWHM (ns) of this pixel.
    pub irf_centre: f64,
    pub irf_fwhm: f64,
    /// Weight of the exponential diffusion tail in the IRF (0 = Gaussian).
    pub irf_tail: f64,
}

/// A set of simulated (or loaded) pixels: raw counts `[n, G]` and truth.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub grid: GateGrid,
    pub counts: Array2<u32>,
    pub truth: Vec<Truth>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_window_defaults_to_ten_and_is_checked() {
        // A default window is not written, so existing files keep their bytes.
        let json = serde_json::to_string(&GateGrid::PAPER).unwrap();
        assert!(!json.contains("baseline_gates"), "{json}");
        let g: GateGrid = serde_json::from_str(r#"{"gates":135,"dt_ns":0.09}"#).unwrap();
        assert_eq!(g.baseline_gates, BASELINE_GATES);
        let g2 = g.with_baseline_gates(2).unwrap();
        let back: GateGrid = serde_json::from_str(&serde_json::to_string(&g2).unwrap()).unwrap();
        assert_eq!(back, g2);
        assert!(g.with_baseline_gates(0).is_ok());
        let e = g.with_baseline_gates(65).unwrap_err().to_string();
        assert!(e.contains("baseline_gates") && e.contains("65"), "{e}");
        let short = GateGrid::new(11, 0.1).unwrap();
        assert!(short.with_baseline_gates(11).is_err());
    }
}
