//! Throughput measurements behind `flimgru bench`: training (forward +
//! BPTT + Adam at batch 256), float inference and the simulator.

use crate::data::simulate::{simulate, simulate_with_irfs, SimSpec};
use crate::data::GateGrid;
use crate::lifetime::mle::{MleFitter, MleModel};
use crate::model::train::{gradient_norm, Adam, BatchEngine};
use crate::model::{Seq2Seq, Seq2SeqConfig};
use anyhow::Result;
use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Instant;

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub what: String,
    pub value: f64,
    pub unit: String,
    /// Achieved GFLOP/s, where the work is known.
    pub gflops: Option<f64>,
}

/// Floating-point operations of one training sample (forward + backward):
/// 2 per MAC forward, twice that backward.
pub fn training_flops_per_sample(model: &Seq2Seq<f32>, steps: usize) -> f64 {
    6.0 * model.macs_per_pixel(steps) as f64
}

fn random_batch(steps: usize, batch: usize, seed: u64) -> (Array3<f32>, Array3<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = Array3::from_shape_fn((steps, batch, 1), |_| rng.gen_range(0.0..1.0));
    let y = Array3::from_shape_fn((steps, batch, 3), |_| rng.gen_range(0.0..1.0));
    (x, y)
}

/// Training samples per second of a network shape: full optimiser steps
/// (gradients, clipping norm, Adam) for at least `seconds`.
pub fn training_throughput(
    config: &Seq2SeqConfig,
    grid: &GateGrid,
    batch: usize,
    seconds: f64,
) -> Measurement {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model = Seq2Seq::<f32>::init(config, &mut rng);
    let (x, y) = random_batch(grid.gates, batch, 8);
    let mut engine = BatchEngine::new(&model);
    let mut adam = Adam::new(&model, 1e-4);
    let mut step = |model: &mut Seq2Seq<f32>| {
        let (_, grads) = engine.gradients(model, x.view(), y.view());
        let _ = gradient_norm(grads);
        adam.update(model, grads);
    };
    step(&mut model); // warm-up: buffers allocated
    let t0 = Instant::now();
    let mut samples = 0;
    while samples == 0 || t0.elapsed().as_secs_f64() < seconds {
        step(&mut model);
        samples += batch;
    }
    let rate = samples as f64 / t0.elapsed().as_secs_f64();
    Measurement {
        what: format!("training {} batch {batch}", config.describe()),
        value: rate,
        unit: "samples/s".into(),
        gflops: Some(rate * training_flops_per_sample(&model, grid.gates) / 1e9),
    }
}

/// Float inference pixels per second (network only, preprocessed input).
pub fn inference_throughput(config: &Seq2SeqConfig, grid: &GateGrid, pixels: usize) -> Measurement {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let model = Seq2Seq::<f32>::init(config, &mut rng);
    let x = Array2::from_shape_fn((pixels, grid.gates), |_| rng.gen_range(0.0..1.0f32));
    let _ = model.predict(x.slice(ndarray::s![..pixels.min(64), ..]));
    let t0 = Instant::now();
    let _ = model.predict(x.view());
    let rate = pixels as f64 / t0.elapsed().as_secs_f64();
    Measurement {
        what: format!("float inference {}", config.describe()),
        value: rate,
        unit: "pixels/s".into(),
        gflops: Some(rate * 2.0 * model.macs_per_pixel(grid.gates) as f64 / 1e9),
    }
}

/// Simulator pixels per second (all threads, after a warm-up run).
pub fn simulator_throughput(spec: &SimSpec, pixels: usize) -> Result<Measurement> {
    simulate(spec, pixels.min(4096), 1)?;
    let t0 = Instant::now();
    simulate(spec, pixels, 2)?;
    Ok(Measurement {
        what: format!("simulator, {} gates", spec.grid.gates),
        value: pixels as f64 / t0.elapsed().as_secs_f64(),
        unit: "pixels/s".into(),
        gflops: None,
    })
}

/// Poisson MLE fits per second on one thread (the pixel's IRF known).
pub fn mle_throughput(spec: &SimSpec, model: MleModel, pixels: usize) -> Result<Measurement> {
    let (data, irfs) = simulate_with_irfs(spec, pixels, 3)?;
    let mut fitter = MleFitter::new(&spec.grid, spec.period_ns)?;
    let t0 = Instant::now();
    for (row, irf) in data.counts.outer_iter().zip(&irfs) {
        let row = row.as_slice().expect("counts rows are contiguous");
        fitter.fit(row, irf, model)?;
    }
    Ok(Measurement {
        what: format!("MLE {model:?} fit, one thread"),
        value: pixels as f64 / t0.elapsed().as_secs_f64(),
        unit: "pixels/s".into(),
        gflops: None,
    })
}

/// Golden-model pixels per second (all threads): raw simulated counts in,
/// codes out, for a `hidden`-unit student at `bits`, random weights.
pub fn golden_throughput(
    spec: &SimSpec,
    hidden: usize,
    bits: u32,
    pixels: usize,
) -> Result<Measurement> {
    use crate::fixed::{Golden, QuantModel};
    use crate::model::{CandidateActivation, GateActivation};
    let mut config = Seq2SeqConfig::student(hidden);
    config.gate = GateActivation::HardSigmoid;
    config.candidate = CandidateActivation::ClippedIdentity;
    let model = Seq2Seq::<f32>::init(&config, &mut ChaCha8Rng::seed_from_u64(11));
    let golden = Golden::new(&QuantModel::from_float(&model, bits)?, &spec.grid)?;
    let data = simulate(spec, pixels, 4)?;
    golden.run(data.counts.slice(ndarray::s![..pixels.min(256), ..]))?;
    let t0 = Instant::now();
    golden.run(data.counts.view())?;
    let rate = pixels as f64 / t0.elapsed().as_secs_f64();
    Ok(Measurement {
        what: format!("golden model, {hidden} units, {bits} bits"),
        value: rate,
        unit: "pixels/s".into(),
        // Integer multiply-accumulates, not flops: reported in the docs as
        // GMAC/s = pixels/s x MACs per pixel (855,360 at H = 32, G = 135).
        gflops: None,
    })
}
