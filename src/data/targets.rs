//! The Seq2Seq's three target channels, defined so that the lifetime
//! extraction recovers tau exactly from noise-free targets:
//!
//! - ch1[k] = a exp(-k dt / tau1)            (short component)
//! - ch2[k] = (1 - a) exp(-k dt / tau2)      (long component)
//! - ch0[k] = ch1[k] + ch2[k]                (full decay, peak 1 at k = 0)
//!
//! The channels are the deconvolved decay, aligned to the excitation
//! (k = 0), whatever the IRF of the pixel: the network learns to remove
//! the IRF and the noise. Mono-exponential pixels have ch2 = 0.

use super::{GateGrid, Truth};
use ndarray::{Array3, ArrayViewMut2, Axis, Zip};

/// Channels of one pixel into `out` (`[G, 3]`).
pub fn target_channels(grid: &GateGrid, truth: &Truth, mut out: ArrayViewMut2<f32>) {
    assert_eq!(out.dim(), (grid.gates, 3), "target_channels: shape");
    let (a, b) = if truth.mono {
        (1.0, 0.0)
    } else {
        (truth.fraction, 1.0 - truth.fraction)
    };
    for k in 0..grid.gates {
        let t = k as f64 * grid.dt_ns;
        let c1 = a * (-t / truth.tau1).exp();
        let c2 = b * (-t / truth.tau2).exp();
        out[[k, 0]] = (c1 + c2) as f32;
        out[[k, 1]] = c1 as f32;
        out[[k, 2]] = c2 as f32;
    }
}

/// Channels of many pixels: `[n, G, 3]`.
pub fn targets(grid: &GateGrid, truth: &[Truth]) -> Array3<f32> {
    let mut out = Array3::<f32>::zeros((truth.len(), grid.gates, 3));
    Zip::from(out.axis_iter_mut(Axis(0)))
        .and(truth)
        .par_for_each(|o, t| target_channels(grid, t, o));
    out
}
