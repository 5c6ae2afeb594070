//! The one preprocessing every path uses (float model, baselines fed by
//! the network path, later the fixed-point contract mirrors it).

use ndarray::{Array2, ArrayView2, Axis, Zip};

/// Gates averaged for the baseline by default (dark counts / background
/// estimate); a grid may set its own ([`super::GateGrid::baseline_gates`]).
pub const BASELINE_GATES: usize = 10;

/// Subtract the mean of the first `baseline_gates` gates (none when 0),
/// clip at 0 and divide by the peak, so the peak is 1. An all-flat
/// histogram (peak 0 after the baseline) maps to all zeros rather than
/// dividing by zero.
pub fn preprocess(counts: &[f32], out: &mut [f32], baseline_gates: usize) {
    assert_eq!(counts.len(), out.len(), "preprocess: length mismatch");
    let n0 = baseline_gates.min(counts.len());
    let baseline = if n0 == 0 {
        0.0
    } else {
        counts[..n0].iter().sum::<f32>() / n0 as f32
    };
    let mut peak = 0.0f32;
    for (o, &c) in out.iter_mut().zip(counts) {
        *o = (c - baseline).max(0.0);
        peak = peak.max(*o);
    }
    if peak > 0.0 {
        let inv = 1.0 / peak;
        out.iter_mut().for_each(|o| *o *= inv);
    }
}

/// [`preprocess`] over rows of a `[n, G]` array of counts.
pub fn preprocess_batch(counts: ArrayView2<f32>, baseline_gates: usize) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros(counts.raw_dim());
    Zip::from(out.axis_iter_mut(Axis(0)))
        .and(counts.axis_iter(Axis(0)))
        .par_for_each(|mut o, c| {
            let c = c.to_vec();
            preprocess(
                &c,
                o.as_slice_mut().expect("row is contiguous"),
                baseline_gates,
            );
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_clip_and_peak() {
        let mut c = vec![2.0f32; 20];
        c[12] = 10.0;
        c[13] = 6.0;
        c[14] = 1.0;
        let mut o = vec![0.0; 20];
        preprocess(&c, &mut o, BASELINE_GATES);
        assert_eq!(o[12], 1.0);
        assert_eq!(o[13], 0.5);
        assert_eq!(o[14], 0.0);
        assert_eq!(o[0], 0.0);
    }

    #[test]
    fn flat_histogram_is_zero() {
        let c = vec![3.0f32; 30];
        let mut o = vec![1.0; 30];
        preprocess(&c, &mut o, BASELINE_GATES);
        assert!(o.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn baseline_window_is_a_parameter() {
        let mut c = vec![2.0f32; 20];
        c[1] = 6.0;
        c[12] = 10.0;
        let mut o = vec![0.0; 20];
        preprocess(&c, &mut o, 0);
        assert_eq!((o[0], o[1], o[12]), (0.2, 0.6, 1.0));
        preprocess(&c, &mut o, 1);
        assert_eq!((o[0], o[1], o[12]), (0.0, 0.5, 1.0));
    }
}
