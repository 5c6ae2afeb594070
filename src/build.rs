//! A model for an instrument, in one command (`flimgru build`): the
//! training recipe's float and hardware jobs (configs/recipe/student-float.json
//! and student-w8a12.json, built into the binary) retargeted to the
//! instrument's gate grid, laser period and IRF
//! ([`Instrument::sim_spec`]), then the hardware student's evaluation
//! beside the MLE and its Verilog, all into one folder:
//!
//! ```text
//! DIR/instrument.json        the description it was built for
//! DIR/student-float.json     float student (recipe float stage)
//! DIR/student-w8a12.json     hardware student (recipe QAT stage, W8A12)
//! DIR/student-w8a12.eval.md  its eval table beside the MLE (+ .json)
//! DIR/rtl/flimgru_w8a12_p1_m96.v
//! ```
//!
//! Each stage has the recipe's resumable checkpoints; a stage stopped by
//! the wall-time budget is resumed by running the same command again.

use crate::data::instrument::Instrument;
use crate::data::simulate::SimSpec;
use crate::eval::{EvalConfig, Evaluation};
use crate::model_file::ModelFile;
use crate::output::Plan;
use crate::recipe::{checkpoint_path, RecipeJob};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The recipe's float job, the template of the instrument's.
const FLOAT_JOB: &str = include_str!("../configs/recipe/student-float.json");
/// The recipe's hardware job (W8A12, the default hardware model).
const QAT_JOB: &str = include_str!("../configs/recipe/student-w8a12.json");

/// What `flimgru build` trains and how long it may take.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuildOptions {
    /// Float-stage samples (the recipe's: 1,000,000).
    pub float_samples: Option<u64>,
    /// QAT-stage samples (the recipe's: 250,000).
    pub qat_samples: Option<u64>,
    /// Lifetime range (ns) of the training data (the default spec's:
    /// 0.05..3).
    pub tau_ns: Option<(f64, f64)>,
    /// A separate range for bi-exponential pixels' long lifetime (a
    /// sample class with a short and a long component, e.g. NAD(P)H).
    pub long_tau_ns: Option<(f64, f64)>,
    /// Photon range of the training data (the default spec's: 50..5000).
    pub photons: Option<(f64, f64)>,
    /// Wall-time budget in minutes for the two training stages together
    /// (the float stage gets 80 %).
    pub minutes: f64,
    /// Pixels of the evaluation (the MLE fits a tenth of them).
    pub eval_pixels: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            float_samples: None,
            qat_samples: None,
            tau_ns: None,
            long_tau_ns: None,
            photons: None,
            minutes: 55.0,
            eval_pixels: 5000,
        }
    }
}

/// The files of a build folder.
pub struct BuildFiles {
    pub instrument: PathBuf,
    pub float: PathBuf,
    pub student: PathBuf,
    pub eval: PathBuf,
    pub rtl: PathBuf,
}

impl BuildFiles {
    pub fn in_dir(dir: &Path) -> BuildFiles {
        BuildFiles {
            instrument: dir.join("instrument.json"),
            float: dir.join("student-float.json"),
            student: dir.join("student-w8a12.json"),
            eval: dir.join("student-w8a12.eval"),
            rtl: dir.join("rtl"),
        }
    }
}

/// The two recipe jobs for `inst`.
pub fn jobs(
    inst: &Instrument,
    opts: &BuildOptions,
    float_out: &Path,
) -> Result<(RecipeJob, RecipeJob)> {
    if !(opts.minutes.is_finite() && opts.minutes > 0.0) {
        bail!("--minutes {} must be a positive number", opts.minutes);
    }
    let mut float: RecipeJob = serde_json::from_str(FLOAT_JOB).context("the built-in float job")?;
    let mut qat: RecipeJob = serde_json::from_str(QAT_JOB).context("the built-in hardware job")?;
    // The shipped jobs' preprocessing (their baseline window) on the
    // instrument's grid.
    let mut base = SimSpec::default();
    base.grid = base
        .grid
        .with_baseline_gates(float.data.grid.baseline_gates)?;
    if let Some(t) = opts.tau_ns {
        base.tau_ns = t;
    }
    base.long_tau_ns = opts.long_tau_ns;
    if let Some(p) = opts.photons {
        base.photons = p;
    }
    let spec = inst.sim_spec(&base)?;
    float.name = "instrument-float".into();
    qat.name = "instrument-w8a12".into();
    float.data = spec.clone();
    qat.data = spec;
    qat.init = Some(float_out.to_path_buf());
    let f = float
        .float
        .as_mut()
        .context("the built-in float job has a float stage")?;
    if let Some(n) = opts.float_samples {
        f.samples = n;
        f.validate_every = f.validate_every.min(n.div_ceil(4).max(1));
        f.warmup_samples = f.warmup_samples.min(n / 10);
    }
    f.max_minutes = Some(0.8 * opts.minutes);
    let q = &mut qat
        .qat
        .as_mut()
        .context("the built-in hardware job has a QAT stage")?
        .stream;
    if let Some(n) = opts.qat_samples {
        q.samples = n;
        q.validate_every = q.validate_every.min(n.div_ceil(4).max(1));
        q.warmup_samples = q.warmup_samples.min(n / 10);
    }
    q.max_minutes = Some(0.2 * opts.minutes);
    float.validate().context("the instrument's float job")?;
    Ok((float, qat))
}

/// Declare every file of the build to `plan` (before any work).
pub fn plan_outputs(dir: &Path, plan: &mut Plan) -> Result<()> {
    let f = BuildFiles::in_dir(dir);
    plan.output_dir("--out", dir)?;
    for p in [&f.instrument, &f.float, &f.student] {
        plan.output("--out", p)?;
    }
    for (model, stage) in [(&f.float, "float"), (&f.student, "qat")] {
        plan.output("a checkpoint", &checkpoint_path(model, stage))?;
    }
    Ok(())
}

/// What a build did.
pub struct BuildReport {
    pub files: BuildFiles,
    pub minutes: f64,
    pub evaluation: Evaluation,
    pub verilog: PathBuf,
}

/// Train, evaluate and export a model for `inst` into `dir` (outputs
/// declared with [`plan_outputs`]).
pub fn run(
    inst: &Instrument,
    opts: &BuildOptions,
    dir: &Path,
    command: &str,
    plan: &mut Plan,
) -> Result<BuildReport> {
    let start = Instant::now();
    let files = BuildFiles::in_dir(dir);
    let (float_job, qat_job) = jobs(inst, opts, &files.float)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::output::write_bytes(
        &files.instrument,
        serde_json::to_string_pretty(inst)?.as_bytes(),
    )?;
    match ModelFile::load(&files.float) {
        Ok(m) if m.data == float_job.data => eprintln!(
            "build: {} is there for this instrument; going on with the hardware student",
            files.float.display()
        ),
        _ => {
            eprintln!(
                "build: float student ({} gates of {:.4} ns)",
                float_job.data.grid.gates, float_job.data.grid.dt_ns
            );
            crate::recipe::run(&float_job, command, &files.float, true)?;
        }
    }
    eprintln!("build: hardware student, W8A12 (QAT through the golden model)");
    let student = crate::recipe::run(&qat_job, command, &files.student, true)?;
    eprintln!("build: evaluating beside the MLE");
    let config = EvalConfig {
        pixels: opts.eval_pixels,
        mle_pixels: (opts.eval_pixels / 10).max(1),
        f_pixels: (opts.eval_pixels / 10).clamp(2, 300),
        seed: 12_345,
        engine: None,
        irf_centre_ns: None,
    };
    let evaluation = crate::app::evaluate_to_files(&student, &config, &files.eval, plan)?;
    let verilog = crate::app::export_verilog(
        &student,
        &crate::app::CircuitChoice::default(),
        &files.rtl,
        plan,
    )?;
    Ok(BuildReport {
        files,
        minutes: start.elapsed().as_secs_f64() / 60.0,
        evaluation,
        verilog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::formats::Recording;

    /// An instrument's jobs read their histograms as the shipped jobs do:
    /// the built-in jobs' baseline window, on the instrument's grid.
    #[test]
    fn instrument_jobs_keep_the_shipped_baseline_window() {
        let (dt, bins) = (0.05, 240);
        let counts = ndarray::Array3::from_shape_fn((1, 1, bins), |(_, _, k)| {
            let t = k as f64 * dt - 1.5;
            let rise = 0.5 * (1.0 + libm::erf(t / 0.1));
            (1e5 * rise * (-t.max(0.0) / 2.0).exp()).round() as u32 + 3
        });
        let rec = Recording {
            counts,
            bin_width_ns: dt,
            period_ns: Some(12.5),
            source: "test".into(),
            notes: vec![],
            valid_bins: 0..bins,
        };
        let inst = Instrument::describe(&rec, "test", None).unwrap();
        let (float, qat) = jobs(&inst, &BuildOptions::default(), Path::new("f.json")).unwrap();
        let shipped: RecipeJob = serde_json::from_str(FLOAT_JOB).unwrap();
        assert_eq!(shipped.data.grid.baseline_gates, 0);
        assert_eq!(float.data.grid.baseline_gates, 0);
        assert_eq!(qat.data.grid, float.data.grid);
        assert_ne!(float.data.grid.dt_ns, shipped.data.grid.dt_ns);
    }
}
