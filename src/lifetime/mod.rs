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
