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
/// gate k covering [k dt, (k + 1) dt) after the laser pulse.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateGrid {
    pub gates: usize,
    pub dt_ns: f64,
}

impl GateGrid {
    /// The paper's SwissSPAD3 grid: 135 gates of 90 ps.
    pub const PAPER: GateGrid = GateGrid {
        gates: 135,
        dt_ns: 0.09,
    };

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
        Ok(GateGrid { gates, dt_ns })
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
