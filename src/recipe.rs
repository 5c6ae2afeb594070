//! The training recipe (docs/precision.md): a network trained on a stream
//! of fresh simulated pixels with the extraction-aware objective, the
//! checkpoint chosen on held-out lifetime error; for the hardware student,
//! a second streamed stage of quantisation-aware training through the
//! golden model. One JSON job, one command:
//!
//! ```sh
//! flimgru recipe --config configs/recipe/student-w8a12.json --out models/student-w8a12.json
//! ```

use crate::data::simulate::{simulate, SimSpec};
use crate::data::{preprocess_batch, targets, Dataset};
use crate::fixed::qat::{input_values, QatForward};
pub use crate::fixed::rounding::{RoundingRun, RoundingSearch};
use crate::fixed::{rounding, Format, Golden, QuantModel};
use crate::lifetime::extract::extract_batch;
use crate::lifetime::metrics::{f_value, precision_score, rms_f_value, F_POINTS};
use crate::lifetime::Lifetimes;
use crate::model::loss::distilled_targets;
pub use crate::model::stream::FValidation;
use crate::model::stream::{
    train_stream, CheckpointAt, Chunk, DistilledFrom, SampleSource, StreamConfig, StreamRun,
};
use crate::model::train::{FloatForward, History, TrainConfig};
use crate::model::{Seq2Seq, Seq2SeqConfig};
use crate::model_file::{ModelFile, MODEL_FORMAT, MODEL_VERSION};
use anyhow::{bail, Context, Result};
use ndarray::Array1;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest validation set (pixels).
const MAX_VALIDATION_PIXELS: usize = 1 << 20;

/// The quantisation-aware stage of a hardware student.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QatStage {
    /// Weight width Ww.
    pub bits: u32,
    /// Activation and state width Wa (mixed precision); absent: Wa = Ww.
    #[serde(default)]
    pub act_bits: Option<u32>,
    pub stream: StreamConfig,
}

impl QatStage {
    pub fn format(&self) -> Result<Format> {
        Format::mixed(self.bits, self.act_bits.unwrap_or(self.bits))
    }
}

/// Knowledge distillation: every stage trains on
/// `alpha teacher + (1 - alpha) truth` ([`distilled_targets`]), the
/// teacher's outputs computed on each fresh chunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    /// A float model file trained for the job's gate grid.
    pub teacher: PathBuf,
    /// Weight of the teacher's outputs, in [0, 1].
    pub alpha: f64,
}

/// One recipe job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecipeJob {
    pub name: String,
    pub network: Seq2SeqConfig,
    /// The simulated data the network is trained for.
    pub data: SimSpec,
    /// Seed of the stream and of the validation set (distinct from every
    /// evaluation seed by construction, see [`stream_seed`]).
    pub data_seed: u64,
    /// Held-out pixels the checkpoint is chosen on.
    pub validation_pixels: usize,
    /// The float stage; `None` starts the QAT stage from `init`.
    #[serde(default)]
    pub float: Option<StreamConfig>,
    #[serde(default)]
    pub qat: Option<QatStage>,
    /// A model file to start from instead of fresh weights.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Train every stage on a teacher's outputs blended with the truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<Distill>,
    /// Score checkpoints on the mono-exponential F too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f_validation: Option<FValidation>,
    /// After the QAT stage, search the roundings of its codes
    /// ([`rounding`]) on a search set; kept if the validation score falls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding_search: Option<RoundingSearch>,
}

impl RecipeJob {
    pub fn load(path: &Path) -> Result<RecipeJob> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read recipe job {}", path.display()))?;
        let job: RecipeJob = serde_json::from_str(&text)
            .with_context(|| format!("recipe job {} is malformed", path.display()))?;
        job.validate()
            .with_context(|| format!("recipe job {}", path.display()))?;
        Ok(job)
    }

    /// What a checkpoint of this job must match to be resumed
    /// ([`CheckpointAt::run_key`]): the job as JSON, without its name and
    /// its stages' wall-time budgets (a resumed run may be given more time).
    pub fn run_key(&self) -> Result<String> {
        let mut key = self.clone();
        key.name.clear();
        if let Some(f) = &mut key.float {
            f.max_minutes = None;
        }
        if let Some(q) = &mut key.qat {
            q.stream.max_minutes = None;
        }
        serde_json::to_string(&key).context("serialising the recipe job")
    }

    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        self.data.validate()?;
        if self.validation_pixels == 0 || self.validation_pixels > MAX_VALIDATION_PIXELS {
            bail!(
                "validation_pixels = {} is out of range (1..={MAX_VALIDATION_PIXELS})",
                self.validation_pixels
            );
        }
        if self.float.is_none() && self.qat.is_none() {
            bail!("the job has neither a float nor a qat stage");
        }
        if self.float.is_none() && self.init.is_none() {
            bail!("a job without a float stage needs an init model to quantise");
        }
        if let Some(f) = &self.float {
            f.validate().context("float stage")?;
        }
        if let Some(d) = &self.distill {
            if !(0.0..=1.0).contains(&d.alpha) {
                bail!(
                    "distill alpha = {} must be in [0, 1] (the teacher's weight)",
                    d.alpha
                );
            }
        }
        if let Some(f) = &self.f_validation {
            if !(2..=MAX_VALIDATION_PIXELS).contains(&f.pixels) {
                bail!(
                    "f_validation pixels = {} is out of range (2..={MAX_VALIDATION_PIXELS})",
                    f.pixels
                );
            }
            if !(f.weight.is_finite() && f.weight >= 0.0) {
                bail!(
                    "f_validation weight = {} must be a finite number >= 0",
                    f.weight
                );
            }
        }
        if let Some(r) = &self.rounding_search {
            if self.qat.is_none() {
                bail!("rounding_search needs a qat stage (it searches the quantised codes)");
            }
            r.validate()?;
            if r.pixels > MAX_VALIDATION_PIXELS {
                bail!(
                    "rounding_search pixels = {} is out of range (1..={MAX_VALIDATION_PIXELS})",
                    r.pixels
                );
            }
        }
        if let Some(q) = &self.qat {
            q.format().context("qat stage")?;
            q.stream.validate().context("qat stage")?;
            crate::fixed::quant::check_contract_shape(&self.network).context("qat stage")?;
        }
        Ok(())
    }
}

/// Seed of stream chunk `index` (`index` = u64::MAX: the validation set):
/// a mix of the job's seed far from the small seeds evaluations use.
pub fn stream_seed(data_seed: u64, index: u64) -> u64 {
    let mut z = data_seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03))
        ^ 0x5851_F42D_4C95_7F2D;
    z ^= z >> 31;
    z | (1 << 62)
}

/// How a stream's inputs are preprocessed.
#[derive(Clone, Copy, Debug)]
enum Inputs {
    /// Float preprocessing (`data::preprocess`).
    Float,
    /// The contract's input codes at a bit width, as QAT reads them.
    Codes(Format),
}

/// Fresh simulated pixels of a spec, their targets distilled from a
/// teacher (its float network, alpha) when the job says so.
struct SimSource<'a> {
    spec: &'a SimSpec,
    data_seed: u64,
    pixels: usize,
    inputs: Inputs,
    teacher: Option<(&'a Seq2Seq<f32>, f64)>,
}

impl SimSource<'_> {
    fn chunk_of(&self, data: &Dataset) -> Chunk {
        let b = data.grid.baseline_gates;
        let float = || preprocess_batch(data.counts.mapv(|c| c as f32).view(), b);
        let x = match self.inputs {
            Inputs::Float => float(),
            Inputs::Codes(fmt) => input_values(fmt, b, data.counts.view()),
        };
        let mut t = targets(&data.grid, &data.truth);
        if let Some((teacher, alpha)) = self.teacher {
            let out = match self.inputs {
                Inputs::Float => teacher.predict(x.view()),
                Inputs::Codes(_) => teacher.predict(float().view()),
            };
            t = distilled_targets(out.view(), t.view(), alpha);
        }
        Chunk {
            inputs: x,
            targets: t,
            photons: Array1::from_iter(data.truth.iter().map(|t| t.photons as f32)),
        }
    }
}

impl SampleSource for SimSource<'_> {
    fn chunk(&self, index: u64) -> Result<Chunk> {
        let data = simulate(self.spec, self.pixels, stream_seed(self.data_seed, index))?;
        Ok(self.chunk_of(&data))
    }
}

/// The held-out pixels checkpoints are scored on: the validation set and,
/// when the job asks for it, one mono-exponential set per [`F_POINTS`]
/// point with the F term's weight.
struct Validation {
    set: Dataset,
    f_sets: Vec<Dataset>,
    f_weight: f64,
    f_of: fn(&[f64], f64, f64) -> Option<f64>,
}

/// Stream index of the validation set's seed (its F sets: the indices
/// just below).
const VALIDATION_INDEX: u64 = u64::MAX;
/// Stream index of the rounding search's set (its F sets just below),
/// apart from the validation set, which confirms the search.
const ROUNDING_SEARCH_INDEX: u64 = u64::MAX - 16;

impl Validation {
    fn new(job: &RecipeJob) -> Result<Validation> {
        Self::at(job, VALIDATION_INDEX, job.validation_pixels)
    }

    /// `pixels` held-out pixels of stream index `index`, F sets (when the
    /// job scores F) of indices `index - 1 - k`.
    fn at(job: &RecipeJob, index: u64, pixels: usize) -> Result<Validation> {
        let set = simulate(&job.data, pixels, stream_seed(job.data_seed, index))?;
        let f_of = match &job.f_validation {
            Some(f) if f.bias => rms_f_value,
            _ => f_value,
        };
        let (f_sets, f_weight) = match &job.f_validation {
            Some(f) => (
                F_POINTS
                    .iter()
                    .enumerate()
                    .map(|(k, &(tau, n))| {
                        let seed = stream_seed(job.data_seed, index - 1 - k as u64);
                        simulate(&job.data.mono_at(tau, n), f.pixels, seed)
                    })
                    .collect::<Result<Vec<_>>>()?,
                f.weight,
            ),
            None => (Vec::new(), 0.0),
        };
        Ok(Validation {
            set,
            f_sets,
            f_weight,
            f_of,
        })
    }

    /// The score of an estimator (`lifetimes` of a set's counts): the
    /// lifetime score plus the weighted mean F, or F with the bias
    /// (infinite where a point has fewer than 2 finite estimates).
    fn score(&self, lifetimes: &dyn Fn(&Dataset) -> Result<Vec<Lifetimes>>) -> Result<f64> {
        let mut score = precision_score(&self.set.truth, &lifetimes(&self.set)?);
        if !self.f_sets.is_empty() {
            let mut sum = 0.0;
            for (set, &(tau, n)) in self.f_sets.iter().zip(&F_POINTS) {
                let taus: Vec<f64> = lifetimes(set)?.iter().map(|l| l.tau1).collect();
                sum += (self.f_of)(&taus, tau, n).unwrap_or(f64::INFINITY);
            }
            score += self.f_weight * sum / self.f_sets.len() as f64;
        }
        Ok(score)
    }
}

/// The float network's validation score on held-out pixels.
fn float_score(val: &Validation) -> impl Fn(&Seq2Seq<f32>) -> Result<f64> + '_ {
    move |model| {
        val.score(&|set: &Dataset| {
            let inputs = preprocess_batch(
                set.counts.mapv(|c| c as f32).view(),
                set.grid.baseline_gates,
            );
            let ch = model.predict(inputs.view());
            Ok(extract_batch(ch.view(), set.grid.dt_ns))
        })
    }
}

/// The quantised network's validation score (the golden model's lifetimes).
fn golden_score<'a>(
    val: &'a Validation,
    pass: &'a QatForward,
) -> impl Fn(&Seq2Seq<f32>) -> Result<f64> + 'a {
    move |model| quantised_score(val, &pass.quantise(model))
}

/// The score of a quantised student's codes (the golden model's lifetimes).
fn quantised_score(val: &Validation, q: &QuantModel) -> Result<f64> {
    let golden = Golden::new(q, &val.set.grid)?;
    val.score(&|set: &Dataset| {
        Ok(golden
            .run(set.counts.view())?
            .iter()
            .map(|c| c.lifetimes())
            .collect())
    })
}

/// The rounding search after the QAT stage: searched on its own set,
/// confirmed on the validation set (the search's codes are kept only if
/// they score lower there too).
fn search_rounding(
    job: &RecipeJob,
    cfg: &RoundingSearch,
    val: &Validation,
    start: &QuantModel,
    latent: &Seq2Seq<f32>,
) -> Result<(QuantModel, RoundingRun)> {
    let t0 = std::time::Instant::now();
    eprintln!(
        "recipe {}: rounding search, {} trials of {} flips on {} pixels",
        job.name, cfg.trials, cfg.flips, cfg.pixels
    );
    let search_set = Validation::at(job, ROUNDING_SEARCH_INDEX, cfg.pixels)?;
    let score = |q: &QuantModel| quantised_score(&search_set, q);
    let (found, candidates, accepted, search_start, search_end) =
        rounding::search(start, latent, cfg, &score)?;
    let validation_start = quantised_score(val, start)?;
    let validation_end = quantised_score(val, &found)?;
    let kept = validation_end < validation_start;
    let chosen = if kept { found } else { start.clone() };
    let run = RoundingRun {
        config: cfg.clone(),
        candidates,
        accepted,
        search_start,
        search_end,
        validation_start,
        validation_end,
        kept,
        changed: rounding::changed_codes(start, &chosen),
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "recipe {}: rounding search kept {} of {} trials ({} candidates): search score {:.4} -> {:.4}, validation {:.4} -> {:.4}, {}",
        job.name,
        accepted,
        cfg.trials,
        candidates,
        search_start,
        search_end,
        validation_start,
        validation_end,
        if kept { "kept" } else { "not kept (validation did not fall)" }
    );
    Ok((chosen, run))
}

/// The distillation teacher: a float model for the job's gate grid.
fn load_teacher(d: &Distill, job: &RecipeJob) -> Result<ModelFile> {
    let t = ModelFile::load(&d.teacher)?;
    if t.data.grid != job.data.grid {
        bail!(
            "distill teacher {} is trained for {} gates of {} ns, the job for {} gates of {} ns",
            d.teacher.display(),
            t.data.grid.gates,
            t.data.grid.dt_ns,
            job.data.grid.gates,
            job.data.grid.dt_ns
        );
    }
    Ok(t)
}

/// Checkpoint files of a job writing `out`: `<out>.float.ckpt`, `<out>.qat.ckpt`.
pub fn checkpoint_path(out: &Path, stage: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(format!(".{stage}.ckpt"));
    PathBuf::from(s)
}

/// Run a recipe job; the model file is written to `out` (checkpoints
/// beside it, removed once the file is written).
pub fn run(job: &RecipeJob, command: &str, out: &Path, show_progress: bool) -> Result<ModelFile> {
    job.validate()?;
    let run_key = job.run_key()?;
    let val = Validation::new(job)?;
    let mut model = match &job.init {
        Some(p) => {
            let m = ModelFile::load(p)?;
            if m.weights.config != job.network {
                bail!(
                    "init model {} is a {}, the job trains a {}",
                    p.display(),
                    m.weights.config.describe(),
                    job.network.describe()
                );
            }
            if m.data.grid != job.data.grid {
                bail!(
                    "init model {} reads {:?}, the job's data.grid is {:?} (the gates, their width and the baseline window must agree)",
                    p.display(),
                    m.data.grid,
                    job.data.grid
                );
            }
            m.weights
        }
        None => {
            let seed = job.float.as_ref().map_or(1, |f| f.seed);
            Seq2Seq::<f32>::init(&job.network, &mut ChaCha8Rng::seed_from_u64(seed))
        }
    };
    let teacher = job
        .distill
        .as_ref()
        .map(|d| Ok::<_, anyhow::Error>((load_teacher(d, job)?, d.alpha)))
        .transpose()?;
    let teacher_ref = teacher.as_ref().map(|(t, alpha)| (&t.weights, *alpha));
    let distilled_from = teacher.as_ref().map(|(t, alpha)| DistilledFrom {
        teacher: t.name.clone(),
        alpha: *alpha,
    });
    let mut runs = Vec::new();
    if let Some(cfg) = &job.float {
        eprintln!(
            "recipe {}: float stage, {} ({} parameters), {} samples",
            job.name,
            job.network.describe(),
            model.parameter_count(),
            cfg.samples
        );
        let source = SimSource {
            spec: &job.data,
            data_seed: job.data_seed,
            pixels: cfg.chunk_pixels,
            inputs: Inputs::Float,
            teacher: teacher_ref,
        };
        let score = float_score(&val);
        let ck = checkpoint_path(out, "float");
        let history = train_stream(
            &FloatForward,
            &mut model,
            &source,
            &score,
            cfg,
            Some(CheckpointAt {
                path: &ck,
                run_key: &run_key,
            }),
            show_progress,
        )?;
        eprintln!(
            "recipe {}: float stage best score {:.4} at {} samples ({})",
            job.name, history.best_score, history.best_samples, history.stop_reason
        );
        let done = history.samples_seen >= cfg.samples;
        runs.push(StreamRun {
            stage: "float".into(),
            config: cfg.clone(),
            history,
            distilled_from: distilled_from.clone(),
            f_validation: job.f_validation.clone(),
        });
        if !done {
            bail!(
                "recipe {}: the float stage stopped at its wall-time budget; run the same command again to resume from {}",
                job.name,
                ck.display()
            );
        }
    }
    let mut quantized = None;
    let mut rounding_run = None;
    if let Some(q) = &job.qat {
        let fmt = q.format()?;
        let start = QuantModel::from_float_in(&model, fmt)?;
        let pass = QatForward::new(&start, &job.data.grid)?;
        let mut latent = model.clone();
        crate::model::train::ForwardPass::project(&pass, &mut latent);
        eprintln!(
            "recipe {}: QAT stage at {}, {} samples",
            job.name,
            fmt.name(),
            q.stream.samples
        );
        let source = SimSource {
            spec: &job.data,
            data_seed: job.data_seed ^ 0xA5A5_A5A5,
            pixels: q.stream.chunk_pixels,
            inputs: Inputs::Codes(pass.format()),
            teacher: teacher_ref,
        };
        let score = golden_score(&val, &pass);
        let ck = checkpoint_path(out, "qat");
        let history = train_stream(
            &pass,
            &mut latent,
            &source,
            &score,
            &q.stream,
            Some(CheckpointAt {
                path: &ck,
                run_key: &run_key,
            }),
            show_progress,
        )?;
        eprintln!(
            "recipe {}: QAT stage best score {:.4} at {} samples ({})",
            job.name, history.best_score, history.best_samples, history.stop_reason
        );
        let done = history.samples_seen >= q.stream.samples;
        runs.push(StreamRun {
            stage: format!("qat-{}", fmt.name()),
            config: q.stream.clone(),
            history,
            distilled_from: distilled_from.clone(),
            f_validation: job.f_validation.clone(),
        });
        if !done {
            bail!(
                "recipe {}: the QAT stage stopped at its wall-time budget; run the same command again to resume from {}",
                job.name,
                ck.display()
            );
        }
        let mut qm = pass.quantise(&latent);
        if let Some(cfg) = &job.rounding_search {
            let (searched, run) = search_rounding(job, cfg, &val, &qm, &latent)?;
            qm = searched;
            rounding_run = Some(run);
        }
        model = qm.dequantise();
        quantized = Some(qm);
    }
    let last = runs.last().expect("a validated job has a stage");
    let file = ModelFile {
        format: MODEL_FORMAT.to_string(),
        version: MODEL_VERSION,
        name: job.name.clone(),
        command: command.to_string(),
        data: job.data.clone(),
        data_seed: job.data_seed,
        data_pixels: 0,
        training: TrainConfig {
            batch: last.config.batch,
            epochs: 0,
            learning_rate: last.config.learning_rate,
            clip_norm: last.config.clip_norm,
            max_minutes: last.config.max_minutes,
            seed: last.config.seed,
            ..TrainConfig::default()
        },
        history: History {
            best_validation_loss: last.history.best_score,
            wall_seconds: runs.iter().map(|r| r.history.wall_seconds).sum(),
            samples_per_second: last.history.samples_per_second,
            stop_reason: format!(
                "streamed recipe: see \"stream\" ({})",
                last.history.stop_reason
            ),
            ..History::default()
        },
        metrics: None,
        weights: model,
        quantized,
        stream: runs,
        rounding: rounding_run,
    };
    file.save(out)?;
    for stage in ["float", "qat"] {
        let _ = std::fs::remove_file(checkpoint_path(out, stage));
    }
    Ok(file)
}
