//! Training on a stream of fresh samples: the recipe of docs/precision.md.
//!
//! The simulator makes pixels ~25x faster than the student trains on them,
//! so no pixel needs to be seen twice: every chunk of the stream is newly
//! simulated (deterministically from its index), the budget is counted in
//! samples seen, the learning rate follows a linear warm-up and a cosine
//! decay over that budget, and the weights kept are those with the best
//! validation *score* (a lifetime error computed by the caller on pixels
//! the stream never yields), not the best loss. A checkpoint file
//! (weights, best weights, Adam state, position) written after every
//! validation lets an interrupted run resume where it stopped.

use super::loss::Objective;
use super::seq2seq::{Seq2Seq, CHANNELS};
use super::train::{gradient_norm, Adam, BatchEngine, ForwardPass};
use crate::data::io::write_atomically;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{s, Array1, Array2, Array3};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Fresh training pixels: preprocessed inputs `[n, G]`, targets
/// `[n, G, 3]` and detected photons `[n]` (the objective's pixel weights).
#[derive(Clone, Debug)]
pub struct Chunk {
    pub inputs: Array2<f32>,
    pub targets: Array3<f32>,
    pub photons: Array1<f32>,
}

/// Where the stream's chunks come from. `chunk(i)` must return the same
/// pixels for the same `i` (a resumed run sees the same stream).
pub trait SampleSource: Sync {
    fn chunk(&self, index: u64) -> Result<Chunk>;
}

/// Hyperparameters of a streamed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// Budget: samples seen (the schedule's length).
    pub samples: u64,
    pub batch: usize,
    /// Peak learning rate (after the warm-up).
    pub learning_rate: f64,
    /// Linear warm-up from 0 over this many samples.
    pub warmup_samples: u64,
    /// Learning rate at the end of the cosine decay.
    pub final_learning_rate: f64,
    /// Global gradient-norm clip.
    pub clip_norm: f64,
    /// Pixels simulated per chunk of the stream.
    pub chunk_pixels: usize,
    /// Validate (and checkpoint) every this many samples.
    pub validate_every: u64,
    pub objective: Objective,
    /// Stop (keeping the best weights) after this much wall time; a
    /// checkpointed run resumes from there.
    #[serde(default)]
    pub max_minutes: Option<f64>,
    /// Seed of the initial weights (the stream has its own).
    pub seed: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            samples: 4_000_000,
            batch: 256,
            learning_rate: 2e-3,
            warmup_samples: 100_000,
            final_learning_rate: 2e-5,
            clip_norm: 1.0,
            chunk_pixels: 32_768,
            validate_every: 250_000,
            objective: Objective::recipe(),
            max_minutes: None,
            seed: 1,
        }
    }
}

impl StreamConfig {
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 || self.samples > 1 << 40 {
            bail!(
                "stream budget samples = {} is out of range (1..=2^40)",
                self.samples
            );
        }
        if self.batch == 0 || self.batch > 1 << 16 {
            bail!("stream batch = {} is out of range (1..=65536)", self.batch);
        }
        if self.chunk_pixels > 1 << 22 || !self.chunk_pixels.is_multiple_of(self.batch) {
            bail!(
                "stream chunk_pixels = {} must be a whole number of batches ({}) up to 2^22",
                self.chunk_pixels,
                self.batch
            );
        }
        if self.validate_every < self.batch as u64 {
            bail!(
                "stream validate_every = {} must be at least one batch ({})",
                self.validate_every,
                self.batch
            );
        }
        for (name, v) in [
            ("learning_rate", self.learning_rate),
            ("clip_norm", self.clip_norm),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("stream {name} = {v} must be a positive number");
            }
        }
        if !(self.final_learning_rate.is_finite()
            && (0.0..=self.learning_rate).contains(&self.final_learning_rate))
        {
            bail!(
                "stream final_learning_rate = {} must be in [0, learning_rate]",
                self.final_learning_rate
            );
        }
        if let Some(m) = self.max_minutes {
            if !(m.is_finite() && m > 0.0) {
                bail!("stream max_minutes = {m} must be a positive number");
            }
        }
        self.objective.validate()
    }

    /// The schedule: linear warm-up to `learning_rate`, then a cosine
    /// decay to `final_learning_rate` at `samples`.
    pub fn learning_rate_at(&self, seen: u64) -> f64 {
        if seen < self.warmup_samples {
            return self.learning_rate * (seen + 1) as f64 / self.warmup_samples as f64;
        }
        let span = self.samples.saturating_sub(self.warmup_samples).max(1) as f64;
        let p = ((seen - self.warmup_samples) as f64 / span).min(1.0);
        let c = 0.5 * (1.0 + (std::f64::consts::PI * p).cos());
        self.final_learning_rate + (self.learning_rate - self.final_learning_rate) * c
    }
}

/// One validation of a streamed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub samples: u64,
    /// Mean objective over the batches since the previous record.
    pub train_loss: f64,
    /// The caller's validation score (lower is better).
    pub score: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What a streamed run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamHistory {
    pub initial_score: f64,
    pub records: Vec<StreamRecord>,
    pub best_samples: u64,
    pub best_score: f64,
    pub samples_seen: u64,
    /// Wall time over all sessions of the run (resumed ones included).
    pub wall_seconds: f64,
    pub samples_per_second: f64,
    pub stop_reason: String,
}

/// A stage trained on distilled targets
/// ([`super::loss::distilled_targets`]): the teacher and its weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistilledFrom {
    /// The teacher model file's name.
    pub teacher: String,
    pub alpha: f64,
}

/// One streamed stage of a model file's training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamRun {
    /// "float" or "qat-<W>bit".
    pub stage: String,
    pub config: StreamConfig,
    pub history: StreamHistory,
    /// Absent: trained on the simulator's truth alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distilled_from: Option<DistilledFrom>,
    /// Absent: the scores are the lifetime score alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f_validation: Option<FValidation>,
}

/// The mono-exponential F on validation pixels, added to the checkpoint
/// score by the recipe: `score + weight * mean F` over
/// `lifetime::metrics::F_POINTS`, each point's F on tau1 as `flimgru eval`
/// measures it, on its own held-out pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FValidation {
    /// Pixels per point (at least 2).
    pub pixels: usize,
    /// Weight of the mean F in the score (finite, >= 0).
    pub weight: f64,
    /// Score the bias too: sqrt(N) RMS(tau - true) / tau
    /// (`lifetime::metrics::rms_f_value`) instead of F.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bias: bool,
}

/// Everything needed to resume a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub config: StreamConfig,
    /// The run's [`CheckpointAt::run_key`].
    #[serde(default)]
    pub run_key: String,
    pub model: Seq2Seq<f32>,
    pub best: Seq2Seq<f32>,
    pub adam: Adam,
    pub history: StreamHistory,
}

/// Where a run checkpoints, and what its stream and score depend on
/// beyond its [`StreamConfig`]: a checkpoint resumes only the run it was
/// written for, so no run mixes scores or samples of two definitions.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointAt<'a> {
    pub path: &'a Path,
    /// The recipe passes its job (data, validation, F term, teacher, init)
    /// as JSON; any change to it refuses the checkpoint.
    pub run_key: &'a str,
}

/// Load the checkpoint at `at` if one exists; it must have been written by
/// [`train_stream`] for the same run: `config` (its wall-time budget aside,
/// which a resumed run may change) and the same run key.
pub fn load_checkpoint(at: CheckpointAt, config: &StreamConfig) -> Result<Option<Checkpoint>> {
    let path = at.path;
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let ck: Checkpoint = serde_json::from_slice(&bytes)
        .with_context(|| format!("checkpoint {} is malformed", path.display()))?;
    let budget_aside = |c: &StreamConfig| StreamConfig {
        max_minutes: None,
        ..c.clone()
    };
    if budget_aside(&ck.config) != budget_aside(config) {
        bail!(
            "checkpoint {} was written for another stream configuration; remove it to start afresh",
            path.display()
        );
    }
    if ck.run_key != at.run_key {
        bail!(
            "checkpoint {} was written for another job (its data, validation, F term, teacher or starting model differ); remove it to start afresh",
            path.display()
        );
    }
    ck.model
        .validate()
        .and(ck.best.validate())
        .with_context(|| format!("checkpoint {} has inconsistent weights", path.display()))?;
    Ok(Some(ck))
}

/// Train `model` in place on `source`'s stream through `pass`; `score`
/// rates weights on held-out pixels (lower is better) and the best-rated
/// weights are kept, the starting weights included (`best_samples` 0).
/// With `checkpoint`, the run resumes from that file when it exists (see
/// [`load_checkpoint`]) and rewrites it after every validation.
pub fn train_stream(
    pass: &dyn ForwardPass,
    model: &mut Seq2Seq<f32>,
    source: &dyn SampleSource,
    score: &dyn Fn(&Seq2Seq<f32>) -> Result<f64>,
    config: &StreamConfig,
    checkpoint: Option<CheckpointAt>,
    show_progress: bool,
) -> Result<StreamHistory> {
    config.validate()?;
    let resumed = match checkpoint {
        Some(p) => load_checkpoint(p, config)?,
        None => None,
    };
    let (mut best, mut adam, mut history) = match resumed {
        Some(ck) => {
            *model = ck.model;
            eprintln!(
                "resuming at {} of {} samples (best score {:.4} at {})",
                ck.history.samples_seen,
                config.samples,
                ck.history.best_score,
                ck.history.best_samples
            );
            (ck.best, ck.adam, ck.history)
        }
        None => {
            let initial = score(model)?;
            (
                model.clone(),
                Adam::new(model, config.learning_rate),
                // The starting weights are a candidate too: a stage that
                // only makes them worse (QAT from a good PTQ) keeps them.
                StreamHistory {
                    initial_score: initial,
                    best_score: if initial.is_finite() {
                        initial
                    } else {
                        f64::INFINITY
                    },
                    best_samples: 0,
                    ..Default::default()
                },
            )
        }
    };
    let mut engine = BatchEngine::new(model);
    let start = Instant::now();
    let wall_before = history.wall_seconds;
    let deadline = config.max_minutes.map(|m| m * 60.0);
    let bar = if show_progress {
        ProgressBar::new(config.samples)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} samples, loss {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(history.samples_seen);
    let chunk_len = config.chunk_pixels as u64;
    let batch = config.batch as u64;
    let mut loss_sum = 0.0;
    let mut loss_n = 0usize;
    let mut since_record = Instant::now();
    let mut session_samples = 0u64;
    history.stop_reason = format!("budget of {} samples seen", config.samples);
    'stream: while history.samples_seen < config.samples {
        let index = history.samples_seen / chunk_len;
        let chunk = source.chunk(index)?;
        if chunk.inputs.nrows() < config.chunk_pixels {
            bail!(
                "sample source gave {} pixels, the stream needs chunks of {}",
                chunk.inputs.nrows(),
                config.chunk_pixels
            );
        }
        // Whole batches from where the run stands inside this chunk.
        let mut pos = history.samples_seen % chunk_len;
        while pos + batch <= chunk_len && history.samples_seen < config.samples {
            let r = pos as usize..(pos + batch) as usize;
            let x = time_major(chunk.inputs.slice(s![r.clone(), ..]));
            let y = chunk
                .targets
                .slice(s![r.clone(), .., ..])
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .to_owned();
            let p = chunk.photons.slice(s![r]);
            adam.learning_rate = config.learning_rate_at(history.samples_seen);
            let (loss, grads) =
                engine.gradients_with(pass, model, x.view(), y.view(), Some(p), &config.objective);
            let norm = gradient_norm(grads);
            if norm > config.clip_norm {
                let k = (config.clip_norm / norm) as f32;
                grads.tensors_mut().into_iter().for_each(|t| *t *= k);
            }
            adam.update(model, grads);
            pass.project(model);
            loss_sum += loss;
            loss_n += 1;
            pos += batch;
            history.samples_seen += batch;
            session_samples += batch;
            bar.set_position(history.samples_seen);
            if loss_n.is_multiple_of(16) {
                bar.set_message(format!("{:.5}", loss_sum / loss_n as f64));
            }
            let out_of_time = deadline.is_some_and(|d| start.elapsed().as_secs_f64() > d);
            let due = history.samples_seen % config.validate_every < batch
                || history.samples_seen >= config.samples
                || out_of_time;
            if due {
                let val = score(model)?;
                let rec = StreamRecord {
                    samples: history.samples_seen,
                    train_loss: loss_sum / loss_n.max(1) as f64,
                    score: val,
                    learning_rate: adam.learning_rate,
                    seconds: since_record.elapsed().as_secs_f64(),
                };
                bar.suspend(|| {
                    eprintln!(
                        "{:>10} samples: loss {:.5}  score {:.4}  lr {:.2e}  {:.0} s",
                        rec.samples, rec.train_loss, rec.score, rec.learning_rate, rec.seconds
                    )
                });
                history.records.push(rec);
                if val < history.best_score {
                    history.best_score = val;
                    history.best_samples = history.samples_seen;
                    best = model.clone();
                }
                loss_sum = 0.0;
                loss_n = 0;
                since_record = Instant::now();
                history.wall_seconds = wall_before + start.elapsed().as_secs_f64();
                if let Some(at) = checkpoint {
                    let path = at.path;
                    let ck = Checkpoint {
                        config: config.clone(),
                        run_key: at.run_key.to_string(),
                        model: model.clone(),
                        best: best.clone(),
                        adam: adam.clone(),
                        history: history.clone(),
                    };
                    let json = serde_json::to_vec(&ck).context("serialising the checkpoint")?;
                    write_atomically(path, |tmp| {
                        std::fs::write(tmp, &json)
                            .with_context(|| format!("writing checkpoint {}", path.display()))
                    })?;
                }
                if out_of_time {
                    history.stop_reason = format!(
                        "wall-time budget of {:.1} min reached at {} samples (resumable)",
                        config.max_minutes.unwrap_or(0.0),
                        history.samples_seen
                    );
                    break 'stream;
                }
            }
        }
    }
    bar.finish_and_clear();
    if history.records.is_empty() {
        bail!("the stream ended before its first validation");
    }
    *model = best;
    history.wall_seconds = wall_before + start.elapsed().as_secs_f64();
    history.samples_per_second = session_samples as f64 / start.elapsed().as_secs_f64().max(1e-9);
    Ok(history)
}

/// `[n, T]` rows to the `[T, n, 1]` layout the network reads.
fn time_major(x: ndarray::ArrayView2<f32>) -> Array3<f32> {
    super::seq2seq::time_major(x)
}

const _: () = assert!(CHANNELS == 3);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train::FloatForward;
    use crate::model::Seq2SeqConfig;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random smooth decays (inputs) and their exponential targets.
    struct Toy;
    impl SampleSource for Toy {
        fn chunk(&self, index: u64) -> Result<Chunk> {
            let (n, g) = (64, 12);
            let mut rng = ChaCha8Rng::seed_from_u64(index);
            let mut x = Array2::zeros((n, g));
            let mut y = Array3::zeros((n, g, 3));
            for i in 0..n {
                let tau: f32 = rng.gen_range(0.5..4.0);
                for k in 0..g {
                    let v = (-(k as f32) / tau).exp();
                    x[[i, k]] = v;
                    y[[i, k, 0]] = v;
                    y[[i, k, 1]] = v;
                }
            }
            Ok(Chunk {
                inputs: x,
                targets: y,
                photons: Array1::from_elem(n, 1000.0),
            })
        }
    }

    fn config() -> StreamConfig {
        StreamConfig {
            samples: 1024,
            batch: 32,
            learning_rate: 1e-2,
            warmup_samples: 64,
            final_learning_rate: 1e-4,
            chunk_pixels: 64,
            validate_every: 256,
            seed: 3,
            ..StreamConfig::default()
        }
    }

    fn model() -> Seq2Seq<f32> {
        Seq2Seq::init(
            &Seq2SeqConfig::student(4),
            &mut ChaCha8Rng::seed_from_u64(5),
        )
    }

    /// Held-out score: the loss on one fixed chunk.
    fn score(m: &Seq2Seq<f32>) -> Result<f64> {
        let c = Toy.chunk(999)?;
        let ch = m.predict(c.inputs.view());
        Ok(ch
            .iter()
            .zip(c.targets.iter())
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>())
    }

    /// A stage that only makes the weights worse returns them unchanged.
    #[test]
    fn a_stage_that_only_hurts_keeps_the_starting_weights() {
        let start = model();
        let mut m = start.clone();
        // A score that ranks the starting weights best of all.
        let s0 = start.clone();
        let score = move |w: &Seq2Seq<f32>| Ok(if *w == s0 { 0.0 } else { 1.0 });
        let h = train_stream(&FloatForward, &mut m, &Toy, &score, &config(), None, false).unwrap();
        assert_eq!((h.best_score, h.best_samples), (0.0, 0));
        assert_eq!(m, start);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let c = config();
        assert!(c.learning_rate_at(0) < c.learning_rate_at(32));
        assert!((c.learning_rate_at(64) - c.learning_rate).abs() < 1e-12);
        assert!(c.learning_rate_at(500) < c.learning_rate);
        assert!((c.learning_rate_at(1024) - c.final_learning_rate).abs() < 1e-12);
        assert!((c.learning_rate_at(1 << 20) - c.final_learning_rate).abs() < 1e-12);
    }

    #[test]
    fn training_lowers_the_score_and_keeps_the_best() {
        let mut m = model();
        let before = score(&m).unwrap();
        let h = train_stream(&FloatForward, &mut m, &Toy, &score, &config(), None, false).unwrap();
        assert_eq!(h.samples_seen, 1024);
        assert_eq!(h.records.len(), 4);
        let best = h
            .records
            .iter()
            .map(|r| r.score)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(h.best_score, best);
        assert_eq!(score(&m).unwrap(), best, "the best weights are returned");
        assert!(best < before, "{best} !< {before}");
    }

    /// A run killed after a validation and resumed from its checkpoint
    /// ends with the same weights, bit for bit, as one that never stopped;
    /// the resumed run may change its wall-time budget, nothing else.
    #[test]
    fn a_resumed_run_equals_an_uninterrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.ckpt");
        let at = CheckpointAt {
            path: &path,
            run_key: "job A",
        };
        let mut whole = model();
        train_stream(
            &FloatForward,
            &mut whole,
            &Toy,
            &score,
            &config(),
            None,
            false,
        )
        .unwrap();

        let calls = std::cell::Cell::new(0);
        let failing = |m: &Seq2Seq<f32>| {
            calls.set(calls.get() + 1);
            if calls.get() == 3 {
                bail!("killed");
            }
            score(m)
        };
        let mut first = model();
        let err = train_stream(
            &FloatForward,
            &mut first,
            &Toy,
            &failing,
            &config(),
            Some(at),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("killed"));
        let saved = load_checkpoint(at, &config()).unwrap().unwrap();
        assert_eq!(saved.history.samples_seen, 256);

        let mut other = config();
        other.samples = 2048;
        let e = load_checkpoint(at, &other).unwrap_err();
        assert!(
            e.to_string().contains("another stream configuration"),
            "{e}"
        );
        let other_job = CheckpointAt {
            path: &path,
            run_key: "job B",
        };
        let e = load_checkpoint(other_job, &config()).unwrap_err();
        assert!(e.to_string().contains("another job"), "{e}");

        let mut longer = config();
        longer.max_minutes = Some(600.0);
        let mut resumed = model();
        let h = train_stream(
            &FloatForward,
            &mut resumed,
            &Toy,
            &score,
            &longer,
            Some(at),
            false,
        )
        .unwrap();
        assert_eq!(h.samples_seen, 1024);
        assert_eq!(resumed, whole);
    }

    #[test]
    fn bad_configurations_are_refused_by_name() {
        let mut c = config();
        c.chunk_pixels = 100;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("chunk_pixels"));
        let mut c = config();
        c.final_learning_rate = 1.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("final_learning_rate"));
        let mut c = config();
        c.max_minutes = Some(f64::NAN);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_minutes"));
    }
}
