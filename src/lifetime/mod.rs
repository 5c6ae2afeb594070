//! Lifetimes from the network's channels, the classical baselines a user
//! would run instead (RLD, Poisson MLE), and the accuracy metrics.

pub mod mle;

use serde::{Deserialize, Serialize};

/// One pixel's estimate: lifetimes in ns, amplitude fraction of tau1 in 0..1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifetimes {
    pub tau1: f64,
    pub tau2: f64,
    pub fraction: f64,
}

pub mod extract;
pub mod metrics;
pub mod phasor;
pub mod range;
pub mod results;
pub mod rld;

pub use extract::{
    extract, extract_batch, extract_paper, extract_paper_batch, tau_from_ratio, TAU_MAX_NS,
};
pub use metrics::{AccuracyTable, BinMetrics, ChannelMetrics, ErrStats, MethodMetrics};
pub use rld::{rld_bi, rld_mono, RldOptions};

impl Lifetimes {
    /// Amplitude-weighted mean lifetime a tau1 + (1 - a) tau2 (ns).
    pub fn tau_mean(&self) -> f64 {
        self.fraction * self.tau1 + (1.0 - self.fraction) * self.tau2
    }
}
