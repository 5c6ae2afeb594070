//! The training recipe end to end on a small instrument (float stage, QAT
//! stage through the golden model, model file), its refusals, and the
//! precision budget's measurements.

use flimgru::data::simulate::SimSpec;
use flimgru::data::GateGrid;
use flimgru::engine::{EngineKind, Runner};
use flimgru::model::loss::Objective;
use flimgru::model::stream::StreamConfig;
use flimgru::model_file::ModelFile;
use flimgru::precision::{measure, PrecisionConfig, RowSpec, Widen, F_PHOTONS, F_TAUS};
use flimgru::recipe::{
    checkpoint_path, run, Distill, FValidation, QatStage, RecipeJob, RoundingSearch,
};
use std::process::Command;

fn stream(samples: u64) -> StreamConfig {
    StreamConfig {
        samples,
        batch: 32,
        learning_rate: 5e-3,
        warmup_samples: 64,
        final_learning_rate: 1e-4,
        chunk_pixels: 256,
        validate_every: 512,
        objective: Objective::extraction(),
        max_minutes: None,
        seed: 2,
        ..StreamConfig::default()
    }
}

fn small_job() -> RecipeJob {
    RecipeJob {
        name: "tiny".into(),
        network: flimgru::compress::student_config(6),
        data: SimSpec {
            grid: GateGrid::new(24, 0.4).unwrap(),
            ..SimSpec::default()
        },
        data_seed: 4,
        validation_pixels: 256,
        float: Some(stream(2048)),
        qat: Some(QatStage {
            bits: 8,
            act_bits: None,
            stream: stream(1024),
        }),
        init: None,
        distill: None,
        f_validation: None,
        rounding_search: None,
    }
}

/// (samples, training loss, score) of every validation of every stage.
fn scores(m: &ModelFile) -> Vec<(u64, f64, f64)> {
    m.stream
        .iter()
        .flat_map(|r| r.history.records.iter())
        .map(|r| (r.samples, r.train_loss, r.score))
        .collect()
}

#[test]
fn a_recipe_job_makes_a_quantised_model_that_the_golden_engine_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.json");
    let job = small_job();
    let model = run(&job, "test", &out, false).unwrap();
    assert_eq!(model.stream.len(), 2);
    assert_eq!(model.stream[0].stage, "float");
    assert_eq!(model.stream[1].stage, "qat-W8");
    for r in &model.stream {
        assert_eq!(r.history.records.len(), (r.config.samples / 512) as usize);
        assert!(r.history.best_score.is_finite());
    }
    let float = &model.stream[0].history;
    assert!(
        float.best_score < float.initial_score,
        "float score went from {} to {}",
        float.initial_score,
        float.best_score
    );
    // Written, loadable, quantised, checkpoints gone.
    let back = ModelFile::load(&out).unwrap();
    assert!(back.quantized.is_some());
    assert_eq!(back.stream, model.stream);
    assert!(!checkpoint_path(&out, "float").exists());
    assert!(!checkpoint_path(&out, "qat").exists());
    let engine = Runner::new(&back, None).unwrap();
    assert_eq!(engine.kind(), EngineKind::Fixed);
    // Reproducible: the same job gives the same bytes of weights.
    let again = run(&job, "test", &dir.path().join("m2.json"), false).unwrap();
    assert_eq!(again.quantized, model.quantized);
    // A QAT stage from a model that read its inputs through another
    // baseline window is refused, naming both, with nothing written.
    let mut qat = small_job();
    qat.float = None;
    qat.init = Some(out.clone());
    qat.data.grid = qat.data.grid.with_baseline_gates(0).unwrap();
    let bad = dir.path().join("q.json");
    let e = format!("{:#}", run(&qat, "test", &bad, false).unwrap_err());
    assert!(
        e.contains("init model")
            && e.contains("baseline_gates: 10")
            && e.contains("baseline_gates: 0"),
        "{e}"
    );
    assert!(!bad.exists());
}

/// Distillation: alpha = 0 is the truth alone, bit for bit (the blend
/// is exact there); alpha = 1 trains on the teacher's outputs, recorded
/// in every stage; a teacher for another grid and an alpha outside [0, 1]
/// are refused by name.
#[test]
fn a_distilled_recipe_trains_on_its_teachers_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut float_only = small_job();
    float_only.qat = None;
    float_only.name = "teacher".into();
    let teacher = dir.path().join("teacher.json");
    run(&float_only, "test", &teacher, false).unwrap();

    let plain = run(&small_job(), "test", &dir.path().join("plain.json"), false).unwrap();
    let mut job = small_job();
    job.distill = Some(Distill {
        teacher: teacher.clone(),
        alpha: 0.0,
    });
    let zero = run(&job, "test", &dir.path().join("zero.json"), false).unwrap();
    assert_eq!(zero.quantized, plain.quantized);
    assert_eq!(scores(&zero), scores(&plain));

    job.distill.as_mut().unwrap().alpha = 1.0;
    let out = dir.path().join("kd.json");
    let kd = run(&job, "test", &out, false).unwrap();
    assert_ne!(kd.quantized, plain.quantized);
    for r in &kd.stream {
        let d = r.distilled_from.as_ref().expect("recorded");
        assert_eq!((d.teacher.as_str(), d.alpha), ("teacher", 1.0));
    }
    assert!(plain.stream.iter().all(|r| r.distilled_from.is_none()));
    assert_eq!(ModelFile::load(&out).unwrap().stream, kd.stream);

    job.distill.as_mut().unwrap().alpha = 1.5;
    let e = format!("{:#}", job.validate().unwrap_err());
    assert!(e.contains("alpha") && e.contains("1.5"), "{e}");
    let mut other = small_job();
    other.data.grid = GateGrid::new(20, 0.4).unwrap();
    other.distill = Some(Distill {
        teacher: teacher.clone(),
        alpha: 0.5,
    });
    let e = format!(
        "{:#}",
        run(&other, "test", &dir.path().join("x.json"), false).unwrap_err()
    );
    assert!(
        e.contains("teacher.json") && e.contains("24 gates") && e.contains("20 gates"),
        "{e}"
    );
    assert!(!dir.path().join("x.json").exists());
}

/// The F validation adds `weight * mean F` to every checkpoint's score and
/// changes nothing else: weight 0 is the plain run bit for bit; with
/// weight 1 the training losses are the same and every score is higher by
/// the mean F, a positive number.
#[test]
fn the_f_validation_adds_the_weighted_mean_f_to_the_score() {
    let dir = tempfile::tempdir().unwrap();
    let mut plain_job = small_job();
    plain_job.qat = None;
    plain_job.float = Some(StreamConfig {
        validate_every: 4096,
        ..stream(16_384)
    });
    let plain = run(&plain_job, "test", &dir.path().join("plain.json"), false).unwrap();
    let mut job = plain_job.clone();
    job.f_validation = Some(FValidation {
        pixels: 64,
        weight: 0.0,
        bias: false,
    });
    let zero = run(&job, "test", &dir.path().join("zero.json"), false).unwrap();
    assert_eq!(zero.weights, plain.weights);
    assert_eq!(scores(&zero), scores(&plain));

    job.f_validation.as_mut().unwrap().weight = 1.0;
    let out = dir.path().join("f.json");
    let with_f = run(&job, "test", &out, false).unwrap();
    assert_eq!(with_f.stream[0].f_validation, job.f_validation);
    assert_eq!(plain.stream[0].f_validation, None);
    assert_eq!(
        ModelFile::load(&out).unwrap().stream[0].f_validation,
        job.f_validation
    );
    let (a, b) = (&plain.stream[0].history, &with_f.stream[0].history);
    assert_eq!(a.records.len(), b.records.len());
    for (p, f) in a.records.iter().zip(&b.records) {
        assert_eq!(p.train_loss, f.train_loss);
        let mean_f = f.score - p.score;
        assert!(
            mean_f.is_finite() && mean_f > 0.0,
            "score {} with F against {} without",
            f.score,
            p.score
        );
    }
    // With the bias in, each point's term is sqrt(N) RMS(tau - true) / tau,
    // at least F sqrt((n - 1) / n) (RMS^2 = variance + bias^2).
    job.f_validation = Some(FValidation {
        pixels: 64,
        weight: 1.0,
        bias: true,
    });
    let with_bias = run(&job, "test", &dir.path().join("fb.json"), false).unwrap();
    let c = &with_bias.stream[0].history;
    for ((p, f), b) in a.records.iter().zip(&b.records).zip(&c.records) {
        assert_eq!(p.train_loss, b.train_loss);
        let (f_term, rms_term) = (f.score - p.score, b.score - p.score);
        assert!(
            rms_term >= f_term * (63.0f64 / 64.0).sqrt() - 1e-9,
            "{rms_term} against F {f_term}"
        );
    }
    // A bad F validation is refused by name, nothing written.
    for (pixels, weight, want) in [(1, 0.1, "pixels = 1"), (64, -1.0, "weight = -1")] {
        job.f_validation = Some(FValidation {
            pixels,
            weight,
            bias: false,
        });
        let bad = dir.path().join("bad.json");
        let e = format!("{:#}", run(&job, "test", &bad, false).unwrap_err());
        assert!(e.contains("f_validation") && e.contains(want), "{e}");
        assert!(!bad.exists());
    }
    job.f_validation = Some(FValidation {
        pixels: 64,
        weight: f64::NAN,
        bias: false,
    });
    assert!(format!("{:#}", job.validate().unwrap_err()).contains("weight = NaN"));
}

/// The rounding search after QAT: recorded in the model file, its codes
/// kept only when they lower the validation score (the file's codes are
/// then the searched ones, else the QAT stage's), every changed code one
/// step from the QAT stage's; without a QAT stage it is refused.
#[test]
fn the_rounding_search_keeps_codes_only_where_validation_improves() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run(&small_job(), "test", &dir.path().join("p.json"), false).unwrap();
    let mut job = small_job();
    job.rounding_search = Some(RoundingSearch {
        trials: 40,
        flips: 2,
        min_distance: 0.25,
        pixels: 128,
        seed: 3,
    });
    let out = dir.path().join("r.json");
    let searched = run(&job, "test", &out, false).unwrap();
    assert_eq!(scores(&searched), scores(&plain));
    let r = searched.rounding.as_ref().unwrap();
    assert_eq!(ModelFile::load(&out).unwrap().rounding.as_ref(), Some(r));
    assert!(r.candidates > 0 && r.search_end <= r.search_start);
    assert_eq!(r.validation_start, plain.stream[1].history.best_score);
    let (a, b) = (plain.quantized.unwrap(), searched.quantized.unwrap());
    let changed: usize = a
        .tensors()
        .iter()
        .zip(b.tensors())
        .map(|(x, y)| {
            x.codes
                .iter()
                .zip(&y.codes)
                .filter(|(p, q)| {
                    assert!((*p - *q).abs() <= 1);
                    p != q
                })
                .count()
        })
        .sum();
    assert_eq!(changed, r.changed);
    if r.kept {
        assert!(r.validation_end < r.validation_start && changed > 0);
    } else {
        assert_eq!(changed, 0);
    }
    let mut bad = job.clone();
    bad.qat = None;
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains("rounding_search needs a qat stage"), "{e}");
    bad = job.clone();
    bad.rounding_search.as_mut().unwrap().flips = 0;
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains("flips = 0"), "{e}");
}

/// A stage stopped at its wall-time budget leaves a checkpoint that only
/// the same job resumes: with another F term the scores would mix, so it
/// is refused by name; the same job with more time continues the same
/// stream (every regular validation scores as in a run that never
/// stopped) and removes the checkpoint.
#[test]
fn a_stopped_recipe_resumes_only_as_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = small_job();
    job.qat = None;
    let whole = run(&job, "test", &dir.path().join("whole.json"), false).unwrap();

    let out = dir.path().join("m.json");
    job.float.as_mut().unwrap().max_minutes = Some(1e-7);
    let e = format!("{:#}", run(&job, "test", &out, false).unwrap_err());
    assert!(
        e.contains("wall-time budget") && e.contains("resume"),
        "{e}"
    );
    let ck = checkpoint_path(&out, "float");
    assert!(ck.exists() && !out.exists());

    let mut other = job.clone();
    other.f_validation = Some(FValidation {
        pixels: 64,
        weight: 0.1,
        bias: false,
    });
    let e = format!("{:#}", run(&other, "test", &out, false).unwrap_err());
    assert!(
        e.contains("m.json.float.ckpt") && e.contains("another job"),
        "{e}"
    );
    assert!(ck.exists() && !out.exists());

    job.float.as_mut().unwrap().max_minutes = None;
    let resumed = run(&job, "test", &out, false).unwrap();
    let records = &resumed.stream[0].history.records;
    assert_eq!(resumed.stream[0].history.samples_seen, 2048);
    for r in &whole.stream[0].history.records {
        let same = records.iter().find(|x| x.samples == r.samples).unwrap();
        assert_eq!(same.score, r.score, "at {} samples", r.samples);
    }
    assert!(out.exists() && !ck.exists());
}

/// Every committed job (configs/recipe and its ablations) loads and
/// validates, and the committed models it starts from or distills from
/// exist (an ablation may start from another ablation's output instead).
#[test]
fn the_committed_recipe_jobs_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["configs/recipe", "configs/recipe/ablation"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let job = RecipeJob::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
            let files = job
                .init
                .iter()
                .chain(job.distill.iter().map(|d| &d.teacher));
            for f in files.filter(|f| f.starts_with("models")) {
                assert!(root.join(f).exists(), "{}: {}", path.display(), f.display());
            }
            n += 1;
        }
    }
    assert!(n >= 10, "{n} jobs");
}

#[test]
fn bad_recipe_jobs_are_refused_by_name() {
    let mut j = small_job();
    j.validation_pixels = 0;
    assert!(j
        .validate()
        .unwrap_err()
        .to_string()
        .contains("validation_pixels"));
    let mut j = small_job();
    j.float = None;
    assert!(j.validate().unwrap_err().to_string().contains("init"));
    let mut j = small_job();
    j.qat.as_mut().unwrap().bits = 17;
    let e = format!("{:#}", j.validate().unwrap_err());
    assert!(e.contains("qat stage") && e.contains("17"), "{e}");
    let mut j = small_job();
    j.float.as_mut().unwrap().objective.ratio = -1.0;
    let e = format!("{:#}", j.validate().unwrap_err());
    assert!(e.contains("float stage") && e.contains("ratio"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("job.json");
    std::fs::write(&cfg, "{\"name\": 1}").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_flimgru"))
        .args(["recipe", "--config"])
        .arg(&cfg)
        .args(["--out"])
        .arg(dir.path().join("m.json"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("job.json") && err.contains("malformed"),
        "{err}"
    );
    assert!(!dir.path().join("m.json").exists());
}

/// The budget on the shipped student: the MLE row sits near the
/// Cramer-Rao bound where it should, and every row and point is measured.
#[test]
fn the_precision_budget_measures_every_row_beside_the_mle() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = PrecisionConfig {
        rows: vec![
            RowSpec {
                label: "hardware".into(),
                model: format!("{root}/models/student-w8a12.json").into(),
                engine: None,
                widen: None,
            },
            RowSpec {
                label: "same weights, float".into(),
                model: format!("{root}/models/student-w8a12.json").into(),
                engine: Some(EngineKind::Float),
                widen: None,
            },
            RowSpec {
                label: "extraction in f64".into(),
                model: format!("{root}/models/student-w8a12.json").into(),
                engine: None,
                widen: Some(Widen {
                    point: "extraction".into(),
                    bits: 16,
                    ptq_bits: None,
                    ptq_act_bits: None,
                }),
            },
            RowSpec {
                label: "PTQ W8A12, state on 16 bits".into(),
                model: format!("{root}/models/student-float.json").into(),
                engine: None,
                widen: Some(Widen {
                    point: "state".into(),
                    bits: 16,
                    ptq_bits: Some(8),
                    ptq_act_bits: Some(12),
                }),
            },
        ],
        pixels: 200,
        f_pixels: 120,
        seed: 5,
        mle_irf_unknown: true,
    };
    let b = measure(&config).unwrap();
    assert_eq!(b.rows.len(), 6);
    assert_eq!(b.mono_pixels + b.bi_pixels, 200);
    for r in &b.rows {
        assert_eq!(r.f.len(), F_TAUS.len() * F_PHOTONS.len());
        assert!(
            r.f.iter().all(|f| f.is_some_and(|f| f > 0.0)),
            "{}",
            r.label
        );
    }
    let mle = &b.rows[0];
    let at = |tau: f64, n: f64| {
        let i = F_TAUS.iter().position(|&t| t == tau).unwrap();
        let j = F_PHOTONS.iter().position(|&p| p == n).unwrap();
        i * F_PHOTONS.len() + j
    };
    let f = mle.f[at(1.0, 1000.0)].unwrap();
    assert!((0.75..1.5).contains(&f), "MLE F at 1 ns, 1000 photons: {f}");
    // Not knowing the IRF costs a fit precision, at every photon count.
    let blind = &b.rows[1];
    assert!(blind.score.is_none() && blind.bi_tau1.all.n == 0);
    let fb = blind.f[at(1.0, 1000.0)].unwrap();
    assert!(
        (f..4.0).contains(&fb),
        "MLE F with the IRF unknown: {fb} (known: {f})"
    );
    assert!(mle.ch0_rmse.is_none() && b.rows[2].ch0_rmse.is_some());
    // The hardware and the float run of the same codes differ, but little.
    let (hw, fl) = (&b.rows[2], &b.rows[3]);
    assert_ne!(hw.mono_tau.all.rmse, fl.mono_tau.all.rmse);
    // The extraction row decodes the hardware's own head outputs.
    assert_eq!(b.rows[4].ch0_rmse, hw.ch0_rmse);
    assert_ne!(b.rows[4].mono_tau.all.rmse, hw.mono_tau.all.rmse);
    let md = b.to_markdown();
    for r in &b.rows {
        assert!(md.contains(&r.label));
    }
    assert!(
        md.contains("### Per-point budget: ")
            && md.contains("(PTQ) on W8A12")
            && md.contains("| state | "),
        "{md}"
    );
    // A PTQ activation width without its weight width, or narrower than
    // it, is refused naming the widths.
    let mut bad = config.clone();
    bad.rows[3].widen.as_mut().unwrap().ptq_bits = None;
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains("ptq_act_bits = 12 needs ptq_bits"), "{e}");
    let mut bad = config.clone();
    bad.rows[3].widen.as_mut().unwrap().ptq_act_bits = Some(6);
    let e = format!("{:#}", bad.validate().unwrap_err());
    assert!(e.contains('8') && e.contains('6'), "{e}");
    // A point the probe does not know, or a float row widened, is refused.
    let mut bad = config.clone();
    bad.rows[2].widen.as_mut().unwrap().point = "bias".into();
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("bias") && e.contains("extraction in f64"), "{e}");
    let mut bad = config.clone();
    bad.rows[3].widen.as_mut().unwrap().ptq_bits = None;
    let e = format!("{:#}", measure(&bad).unwrap_err());
    assert!(e.contains("ptq_bits"), "{e}");
}
