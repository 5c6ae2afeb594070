//! Mini-batch training of a [`Seq2Seq`]: MSE loss, data-parallel batches
//! (each thread runs forward + BPTT on a slice of the batch, gradients
//! summed), Adam, global gradient-norm clipping, learning rate halved on
//! plateau, early stopping with the best weights restored.

use super::loss::Objective;
use super::seq2seq::{Seq2Seq, Workspace, CHANNELS};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis, NdFloat, Zip};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Hyperparameters of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    /// Global gradient-norm clip (Keras `clipnorm`-style, over all tensors).
    pub clip_norm: f64,
    pub validation_fraction: f64,
    /// Epochs without validation improvement before the rate is halved.
    pub plateau_patience: usize,
    pub min_learning_rate: f64,
    /// Epochs without validation improvement before training stops.
    pub early_stop_patience: usize,
    /// Stop (keeping the best weights) after this much wall time.
    pub max_minutes: Option<f64>,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch: 256,
            epochs: 50,
            learning_rate: 1e-3,
            clip_norm: 1.0,
            validation_fraction: 0.1,
            plateau_patience: 3,
            min_learning_rate: 1e-6,
            early_stop_patience: 8,
            max_minutes: None,
            seed: 1,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 || self.batch > 1 << 16 {
            bail!("batch size {} is out of range (1..=65536)", self.batch);
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!("learning rate {} must be positive", self.learning_rate);
        }
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            bail!("clip norm {} must be positive", self.clip_norm);
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            bail!(
                "validation fraction {} must be in [0, 1)",
                self.validation_fraction
            );
        }
        if self.epochs == 0 {
            bail!("epochs 0: training needs at least 1 epoch");
        }
        if let Some(m) = self.max_minutes.filter(|m| !(m.is_finite() && *m >= 0.0)) {
            bail!("max minutes {m}: the time limit must be a finite number of minutes >= 0");
        }
        Ok(())
    }
}

/// One epoch of the training log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What a training run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Validation loss of the initial weights, before any step.
    #[serde(default)]
    pub initial_validation_loss: f64,
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub wall_seconds: f64,
    pub samples_per_second: f64,
    pub stop_reason: String,
}

/// Training pixels: preprocessed decays `[n, G]` and targets `[n, G, 3]`.
#[derive(Clone, Copy, Debug)]
pub struct TrainData<'a> {
    pub inputs: ArrayView2<'a, f32>,
    pub targets: ArrayView3<'a, f32>,
}

impl TrainData<'_> {
    pub fn validate(&self, min_pixels: usize) -> Result<()> {
        let (n, g) = self.inputs.dim();
        if self.targets.dim() != (n, g, CHANNELS) {
            bail!(
                "targets have shape {:?}, inputs {:?} need [{n}, {g}, {CHANNELS}]",
                self.targets.dim(),
                self.inputs.dim()
            );
        }
        if n < min_pixels {
            bail!("{n} training pixels are too few (need at least {min_pixels})");
        }
        if self
            .inputs
            .iter()
            .chain(self.targets.iter())
            .any(|v| !v.is_finite())
        {
            bail!("training data holds a non-finite value");
        }
        Ok(())
    }
}

/// Gather pixels `idx` into time-major `[T, B, 1]` inputs and `[T, B, 3]`
/// targets.
pub fn gather(data: &TrainData, idx: &[usize]) -> (Array3<f32>, Array3<f32>) {
    let steps = data.inputs.ncols();
    let mut x = Array3::zeros((steps, idx.len(), 1));
    let mut y = Array3::zeros((steps, idx.len(), CHANNELS));
    for (b, &i) in idx.iter().enumerate() {
        x.slice_mut(ndarray::s![.., b, 0])
            .assign(&data.inputs.row(i));
        y.slice_mut(ndarray::s![.., b, ..])
            .assign(&data.targets.index_axis(Axis(0), i));
    }
    (x, y)
}

/// The forward pass a training run differentiates through: the float
/// network itself ([`FloatForward`]), or the fixed-point contract's golden
/// model with straight-through gradients (QAT, in `crate::fixed::qat`).
pub trait ForwardPass: Sync {
    /// Fill `ws` (every layer's cache and `ws.output`) for input `x` as
    /// [`Seq2Seq::forward`] does. Returns the weights the backward pass
    /// must differentiate (`None`: `model` itself).
    fn forward(
        &self,
        model: &Seq2Seq<f32>,
        x: ArrayView3<f32>,
        ws: &mut Workspace<f32>,
    ) -> Option<Seq2Seq<f32>>;

    /// Called after every optimiser step (QAT keeps latent weights inside
    /// the code range).
    fn project(&self, _model: &mut Seq2Seq<f32>) {}
}

/// Plain float training.
pub struct FloatForward;

impl ForwardPass for FloatForward {
    fn forward(
        &self,
        model: &Seq2Seq<f32>,
        x: ArrayView3<f32>,
        ws: &mut Workspace<f32>,
    ) -> Option<Seq2Seq<f32>> {
        model.forward(x, ws);
        None
    }
}

/// Loss of one slice of a batch under `objective` (the sum over its
/// pixels; see [`Objective::loss_and_gradient`]) and, when `grads` is
/// given, its gradients for the batch mean over `pixels_in_batch` pixels
/// (added into `grads`). The one loss path used by training, validation
/// and the gradient checks.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_gradients<T: NdFloat>(
    model: &Seq2Seq<T>,
    x: ArrayView3<T>,
    y: ArrayView3<T>,
    photons: Option<ArrayView1<T>>,
    objective: &Objective,
    pixels_in_batch: usize,
    ws: &mut Workspace<T>,
    grads: Option<&mut Seq2Seq<T>>,
) -> f64 {
    model.forward(x, ws);
    loss_after_forward(model, x, y, photons, objective, pixels_in_batch, ws, grads)
}

/// The loss of `ws.output` against `y` and, when `grads` is given, the
/// backward pass through `model`.
#[allow(clippy::too_many_arguments)]
fn loss_after_forward<T: NdFloat>(
    model: &Seq2Seq<T>,
    x: ArrayView3<T>,
    y: ArrayView3<T>,
    photons: Option<ArrayView1<T>>,
    objective: &Objective,
    pixels_in_batch: usize,
    ws: &mut Workspace<T>,
    grads: Option<&mut Seq2Seq<T>>,
) -> f64 {
    if ws.d_output.dim() != ws.output.dim() {
        ws.d_output = Array3::zeros(ws.output.raw_dim());
    }
    let loss = objective.loss_and_gradient(
        ws.output.view(),
        y,
        photons,
        pixels_in_batch,
        ws.d_output.view_mut(),
    );
    if let Some(g) = grads {
        model.backward(x, ws, g);
    }
    loss
}

/// [`loss_and_gradients`] through any [`ForwardPass`].
#[allow(clippy::too_many_arguments)]
pub fn loss_with(
    pass: &dyn ForwardPass,
    model: &Seq2Seq<f32>,
    x: ArrayView3<f32>,
    y: ArrayView3<f32>,
    photons: Option<ArrayView1<f32>>,
    objective: &Objective,
    pixels_in_batch: usize,
    ws: &mut Workspace<f32>,
    grads: Option<&mut Seq2Seq<f32>>,
) -> f64 {
    let through = pass.forward(model, x, ws);
    loss_after_forward(
        through.as_ref().unwrap_or(model),
        x,
        y,
        photons,
        objective,
        pixels_in_batch,
        ws,
        grads,
    )
}

/// Mean squared error of a model over pixels (forward only, parallel).
pub fn mean_squared_error(model: &Seq2Seq<f32>, data: &TrainData, idx: &[usize]) -> f64 {
    mean_squared_error_with(&FloatForward, model, data, idx)
}

/// [`mean_squared_error`] through any [`ForwardPass`].
pub fn mean_squared_error_with(
    pass: &dyn ForwardPass,
    model: &Seq2Seq<f32>,
    data: &TrainData,
    idx: &[usize],
) -> f64 {
    if idx.is_empty() {
        return f64::NAN;
    }
    let mse = Objective::mse();
    let sum: f64 = idx
        .par_chunks(128)
        .map_init(Workspace::default, |ws, chunk| {
            let (x, y) = gather(data, chunk);
            loss_with(pass, model, x.view(), y.view(), None, &mse, 1, ws, None)
        })
        .sum();
    sum / idx.len() as f64
}

/// Adam (Keras defaults: beta1 0.9, beta2 0.999, epsilon 1e-7).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adam {
    pub learning_rate: f64,
    m: Vec<Array2<f32>>,
    v: Vec<Array2<f32>>,
    step: i32,
}

impl Adam {
    pub fn new(model: &Seq2Seq<f32>, learning_rate: f64) -> Self {
        let z: Vec<Array2<f32>> = model
            .tensors()
            .iter()
            .map(|t| Array2::zeros(t.raw_dim()))
            .collect();
        Adam {
            learning_rate,
            m: z.clone(),
            v: z,
            step: 0,
        }
    }

    pub fn update(&mut self, model: &mut Seq2Seq<f32>, grads: &Seq2Seq<f32>) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-7;
        self.step += 1;
        let c1 = 1.0 - B1.powi(self.step);
        let c2 = 1.0 - B2.powi(self.step);
        let lr = self.learning_rate as f32 * c2.sqrt() / c1;
        for (((w, g), m), v) in model
            .tensors_mut()
            .into_iter()
            .zip(grads.tensors())
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            Zip::from(w).and(g).and(m).and(v).for_each(|w, &g, m, v| {
                *m = B1 * *m + (1.0 - B1) * g;
                *v = B2 * *v + (1.0 - B2) * g * g;
                *w -= lr * *m / (v.sqrt() + EPS);
            });
        }
    }
}

/// Global L2 norm of all gradient tensors.
pub fn gradient_norm(grads: &Seq2Seq<f32>) -> f64 {
    grads
        .tensors()
        .iter()
        .flat_map(|t| t.iter())
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt()
}

/// Data-parallel gradient of one batch: the batch is cut into one slice per
/// worker, each slice runs forward + BPTT into its own gradient buffer, the
/// buffers are summed into `grads[0]`. Returns the batch's mean squared error.
pub struct BatchEngine {
    workspaces: Vec<Workspace<f32>>,
    grads: Vec<Seq2Seq<f32>>,
}

impl BatchEngine {
    pub fn new(model: &Seq2Seq<f32>) -> Self {
        let workers = rayon::current_num_threads().max(1);
        BatchEngine {
            workspaces: (0..workers).map(|_| Workspace::default()).collect(),
            grads: (0..workers)
                .map(|_| Seq2Seq::zeros(&model.config))
                .collect(),
        }
    }

    pub fn gradients(
        &mut self,
        model: &Seq2Seq<f32>,
        x: ArrayView3<f32>,
        y: ArrayView3<f32>,
    ) -> (f64, &mut Seq2Seq<f32>) {
        self.gradients_with(&FloatForward, model, x, y, None, &Objective::mse())
    }

    /// [`Self::gradients`] through any [`ForwardPass`] and objective;
    /// `photons` (`[B]`) weights the objective's extraction terms.
    pub fn gradients_with(
        &mut self,
        pass: &dyn ForwardPass,
        model: &Seq2Seq<f32>,
        x: ArrayView3<f32>,
        y: ArrayView3<f32>,
        photons: Option<ArrayView1<f32>>,
        objective: &Objective,
    ) -> (f64, &mut Seq2Seq<f32>) {
        let (_, batch, _) = x.dim();
        let workers = self.workspaces.len().min(batch).max(1);
        let per = batch.div_ceil(workers);
        let loss: f64 = self
            .workspaces
            .par_iter_mut()
            .zip(self.grads.par_iter_mut())
            .enumerate()
            .take(workers)
            .map(|(w, (ws, g))| {
                g.fill_zero();
                let lo = (w * per).min(batch);
                let hi = ((w + 1) * per).min(batch);
                if lo == hi {
                    return 0.0;
                }
                let xs = x.slice(ndarray::s![.., lo..hi, ..]).to_owned();
                let ys = y.slice(ndarray::s![.., lo..hi, ..]).to_owned();
                let ps = photons.map(|p| p.slice_move(ndarray::s![lo..hi]));
                loss_with(
                    pass,
                    model,
                    xs.view(),
                    ys.view(),
                    ps,
                    objective,
                    batch,
                    ws,
                    Some(g),
                )
            })
            .sum();
        let (first, rest) = self.grads.split_at_mut(1);
        for g in &rest[..workers - 1] {
            first[0].add_scaled(g, 1.0);
        }
        (loss / batch as f64, &mut self.grads[0])
    }
}

/// Train `model` in place; the best weights (by validation loss) are kept.
pub fn train(
    model: &mut Seq2Seq<f32>,
    data: &TrainData,
    config: &TrainConfig,
    show_progress: bool,
) -> Result<History> {
    train_with(&FloatForward, model, data, config, show_progress)
}

/// [`train`] through any [`ForwardPass`] (QAT).
pub fn train_with(
    pass: &dyn ForwardPass,
    model: &mut Seq2Seq<f32>,
    data: &TrainData,
    config: &TrainConfig,
    show_progress: bool,
) -> Result<History> {
    config.validate()?;
    data.validate(2)?;
    let n = data.inputs.nrows();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_val = ((n as f64 * config.validation_fraction).round() as usize).min(n - 1);
    let (val_idx, train_idx) = order.split_at(n_val);
    let mut train_idx = train_idx.to_vec();
    let batch = config.batch.min(train_idx.len());
    let batches = train_idx.len() / batch;

    let mut engine = BatchEngine::new(model);
    let mut adam = Adam::new(model, config.learning_rate);
    let mut history = History {
        best_validation_loss: f64::INFINITY,
        ..Default::default()
    };
    history.initial_validation_loss = if val_idx.is_empty() {
        f64::NAN
    } else {
        mean_squared_error_with(pass, model, data, val_idx)
    };
    let mut best = model.clone();
    let mut since_best = 0;
    let mut since_lr_change = 0;
    let start = Instant::now();
    let deadline = config.max_minutes.map(|m| m * 60.0);
    let mut samples = 0usize;
    history.stop_reason = format!("completed {} epochs", config.epochs);
    for epoch in 1..=config.epochs {
        let t0 = Instant::now();
        train_idx.shuffle(&mut rng);
        let bar = if show_progress {
            ProgressBar::new(batches as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches, loss {msg} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        let mut loss_sum = 0.0;
        let mut done = 0;
        let mut out_of_time = false;
        for chunk in train_idx.chunks_exact(batch) {
            let (x, y) = gather(data, chunk);
            let (loss, grads) =
                engine.gradients_with(pass, model, x.view(), y.view(), None, &Objective::mse());
            let norm = gradient_norm(grads);
            if norm > config.clip_norm {
                let s = (config.clip_norm / norm) as f32;
                grads.tensors_mut().into_iter().for_each(|t| *t *= s);
            }
            adam.update(model, grads);
            pass.project(model);
            loss_sum += loss;
            done += 1;
            samples += chunk.len();
            if done % 8 == 0 {
                bar.set_message(format!("{:.5}", loss_sum / done as f64));
            }
            bar.inc(1);
            if deadline.is_some_and(|d| start.elapsed().as_secs_f64() > d) {
                out_of_time = true;
                break;
            }
        }
        bar.finish_and_clear();
        let improved = record_epoch(
            pass,
            &mut history,
            model,
            data,
            val_idx,
            epoch,
            loss_sum / done.max(1) as f64,
            adam.learning_rate,
            t0,
            &mut best,
        );
        if out_of_time {
            history.stop_reason = format!(
                "wall-time budget of {:.1} min reached",
                config.max_minutes.unwrap_or(0.0)
            );
            break;
        }
        if improved {
            since_best = 0;
            since_lr_change = 0;
        } else {
            since_best += 1;
            since_lr_change += 1;
            if since_lr_change >= config.plateau_patience
                && adam.learning_rate > config.min_learning_rate
            {
                adam.learning_rate = (adam.learning_rate * 0.5).max(config.min_learning_rate);
                since_lr_change = 0;
                eprintln!("  learning rate halved to {:.2e}", adam.learning_rate);
            }
            if since_best >= config.early_stop_patience {
                history.stop_reason =
                    format!("early stop: no validation improvement for {since_best} epochs");
                break;
            }
        }
    }
    *model = best;
    history.wall_seconds = start.elapsed().as_secs_f64();
    history.samples_per_second = samples as f64 / history.wall_seconds.max(1e-9);
    Ok(history)
}

#[allow(clippy::too_many_arguments)]
fn record_epoch(
    pass: &dyn ForwardPass,
    history: &mut History,
    model: &Seq2Seq<f32>,
    data: &TrainData,
    val_idx: &[usize],
    epoch: usize,
    train_loss: f64,
    learning_rate: f64,
    t0: Instant,
    best: &mut Seq2Seq<f32>,
) -> bool {
    let val = if val_idx.is_empty() {
        train_loss
    } else {
        mean_squared_error_with(pass, model, data, val_idx)
    };
    let rec = EpochRecord {
        epoch,
        train_loss,
        validation_loss: val,
        learning_rate,
        seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "epoch {:>3}: train {:.6}  validation {:.6}  lr {:.1e}  {:.1} s",
        rec.epoch, rec.train_loss, rec.validation_loss, rec.learning_rate, rec.seconds
    );
    history.epochs.push(rec);
    if val < history.best_validation_loss {
        history.best_validation_loss = val;
        history.best_epoch = epoch;
        *best = model.clone();
        true
    } else {
        false
    }
}
