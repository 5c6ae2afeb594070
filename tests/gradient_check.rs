//! Finite-difference check of BPTT for every parameter tensor of both GRU
//! variants (reset_after true and false) and the head, in f64.

use flimgru::model::loss::Objective;
use flimgru::model::train::loss_and_gradients;
use flimgru::model::{CandidateActivation, GateActivation, Seq2Seq, Seq2SeqConfig, Workspace};
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn loss(model: &Seq2Seq<f64>, x: &Array3<f64>, y: &Array3<f64>) -> f64 {
    let mut ws = Workspace::default();
    let batch = x.dim().1;
    loss_and_gradients(
        model,
        x.view(),
        y.view(),
        None,
        &Objective::mse(),
        batch,
        &mut ws,
        None,
    ) / batch as f64
}

/// Largest relative error between analytic and central-difference
/// gradients over every element of every tensor; asserts per tensor.
fn check(config: Seq2SeqConfig, weight_scale: f64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Seq2Seq::<f64>::init(&config, &mut rng);
    for t in model.tensors_mut() {
        t.mapv_inplace(|v| weight_scale * (v + rng.gen_range(-0.3..0.3)));
    }
    let (steps, batch) = (6, 3);
    let x = Array3::from_shape_fn((steps, batch, 1), |_| rng.gen_range(0.0..1.0));
    let y = Array3::from_shape_fn((steps, batch, 3), |_| rng.gen_range(-0.5..1.0));
    let mut grads = Seq2Seq::zeros(&config);
    let mut ws = Workspace::default();
    loss_and_gradients(
        &model,
        x.view(),
        y.view(),
        None,
        &Objective::mse(),
        batch,
        &mut ws,
        Some(&mut grads),
    );
    let names = model.tensor_names();
    let eps = 1e-6;
    for (k, name) in names.iter().enumerate() {
        let analytic = grads.tensors()[k].clone();
        let mut worst: f64 = 0.0;
        let mut checked_nonzero = false;
        for idx in 0..analytic.len() {
            let (r, c) = (idx / analytic.ncols(), idx % analytic.ncols());
            let orig = model.tensors()[k][[r, c]];
            model.tensors_mut()[k][[r, c]] = orig + eps;
            let up = loss(&model, &x, &y);
            model.tensors_mut()[k][[r, c]] = orig - eps;
            let down = loss(&model, &x, &y);
            model.tensors_mut()[k][[r, c]] = orig;
            let numeric = (up - down) / (2.0 * eps);
            let a = analytic[[r, c]];
            // Relative error, absolute below 1e-3 where round-off dominates.
            let err = (a - numeric).abs() / (a.abs().max(numeric.abs()).max(1e-3));
            worst = worst.max(err);
            checked_nonzero |= a.abs() > 1e-9;
        }
        // The decoder's first kernel multiplies an all-zero input: its
        // gradient is exactly zero, and so is the finite difference.
        if name != "decoder.0.kernel" {
            assert!(checked_nonzero, "{name}: gradient identically zero");
        }
        assert!(
            worst < 1e-6,
            "{name} ({config:?}): worst relative gradient error {worst:e}"
        );
    }
}

#[test]
fn reset_after_two_layers() {
    check(Seq2SeqConfig::teacher(vec![4, 3]), 1.0, 1);
}

#[test]
fn reset_before_two_layers() {
    let mut c = Seq2SeqConfig::student(4);
    c.hidden = vec![3, 4];
    check(c, 1.0, 2);
}

#[test]
fn reset_before_one_layer_student_shape() {
    check(Seq2SeqConfig::student(5), 1.0, 3);
}

/// Hard sigmoid and clipped identity are piecewise linear; with small
/// weights every pre-activation stays inside the linear region, where the
/// finite difference is exact.
#[test]
fn piecewise_linear_activations() {
    for reset_after in [false, true] {
        let c = Seq2SeqConfig {
            hidden: vec![4],
            reset_after,
            gate: GateActivation::HardSigmoid,
            candidate: CandidateActivation::ClippedIdentity,
        };
        check(c, 0.3, 4);
    }
}

#[test]
fn parameter_counts_match_keras() {
    let teacher = Seq2Seq::<f32>::zeros(&Seq2SeqConfig::teacher(vec![128, 128]));
    assert_eq!(teacher.parameter_count(), 299_139);
    let student = Seq2Seq::<f32>::zeros(&Seq2SeqConfig::student(32));
    assert_eq!(student.parameter_count(), 6_627);
    // The figure: encoder 427,680 + decoder with head 427,680.
    assert_eq!(student.macs_per_pixel(135), 427_680 * 2);
}
