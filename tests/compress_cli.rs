//! `flimgru compress` end to end on a tiny study, the shipped student
//! through `infer` and `eval`, and quantised model files that must be
//! refused naming the file and the field.

use std::path::Path;
use std::process::{Command, Output};

fn flimgru(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flimgru"))
        .args(args)
        .output()
        .expect("runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have failed; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    assert!(!err.contains("panicked"), "panic: {err}");
}

/// A tiny teacher and a tiny study on a 20-gate grid; returns the shipped
/// student's path.
fn tiny_study(d: &Path) -> String {
    let teacher = d.join("teacher.json");
    ok(&flimgru(&[
        "train",
        "--hidden",
        "4",
        "--pixels",
        "300",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--gates",
        "20",
        "--dt",
        "0.5",
        "--out",
        teacher.to_str().unwrap(),
    ]));
    let job = ok(&flimgru(&["compress", "--print-config"]));
    let mut job: serde_json::Value = serde_json::from_str(&job).unwrap();
    job["teacher"] = teacher.to_str().unwrap().into();
    job["pixels"] = 300.into();
    job["test_pixels"] = 40.into();
    job["f_pixels"] = 10.into();
    job["teacher_sizes"] = serde_json::json!([[4]]);
    job["student_hidden"] = 3.into();
    job["student_bits"] = serde_json::json!([4, 8]);
    for t in [
        "float_training",
        "qat_training",
        "ship_training",
        "ship_qat_training",
    ] {
        job[t]["epochs"] = 1.into();
        job[t]["batch"] = 64.into();
    }
    let cfg = d.join("job.json");
    std::fs::write(&cfg, job.to_string()).unwrap();
    let ship = d.join("student.json");
    let report = d.join("results.md");
    ok(&flimgru(&[
        "compress",
        "--config",
        cfg.to_str().unwrap(),
        "--dir",
        d.join("study").to_str().unwrap(),
        "--ship",
        ship.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let md = std::fs::read_to_string(&report).unwrap();
    for needle in [
        "weight reduction",
        "PTQ",
        "QAT",
        "shipped",
        "## Targets",
        "KD",
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
    }
    // 1 reference + 1 teacher + 2 PTQ + 2 x (float + 2 x (PTQ + QAT)) + sigmoid/tanh + 2 shipped.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        json["rows"].as_array().unwrap().len(),
        1 + 1 + 2 + 2 * 5 + 1 + 2
    );
    ship.to_str().unwrap().to_string()
}

#[test]
fn compress_ships_a_student_that_infer_and_eval_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let student = tiny_study(d);
    let data = d.join("data");
    ok(&flimgru(&[
        "simulate",
        "--pixels",
        "50",
        "--seed",
        "3",
        "--gates",
        "20",
        "--dt",
        "0.5",
        "--out",
        data.to_str().unwrap(),
    ]));
    let input = data.join("histograms.npy");
    let fixed = d.join("fixed.csv");
    let auto = d.join("auto.csv");
    let float = d.join("float.csv");
    for (engine, out) in [
        (Some("fixed"), &fixed),
        (None, &auto),
        (Some("float"), &float),
    ] {
        let mut args = vec![
            "infer",
            "--model",
            &student,
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        if let Some(e) = engine {
            args.extend(["--engine", e]);
        }
        ok(&flimgru(&args));
    }
    let fixed_text = std::fs::read_to_string(&fixed).unwrap();
    assert_eq!(fixed_text.lines().count(), 51);
    assert_eq!(
        fixed_text,
        std::fs::read_to_string(&auto).unwrap(),
        "quantised models default to the fixed engine"
    );
    // Fixed results lie on the contract's grids: tau = k / 256, fraction = k / 32768.
    for line in fixed_text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        for t in &v[..2] {
            assert!((t * 256.0 - (t * 256.0).round()).abs() < 1e-3, "{line}");
            assert!(*t >= 0.0 && *t < 16.0);
        }
        assert!((0.0..=1.0).contains(&v[2]));
    }
    assert_ne!(fixed_text, std::fs::read_to_string(&float).unwrap());
    // The circuit, simulated, writes the same bytes as the golden model.
    let sim = d.join("sim.csv");
    let vcd = d.join("sim.vcd");
    let small = d.join("small.npy");
    let counts: ndarray::Array2<u32> = ndarray_npy::read_npy(&input).unwrap();
    ndarray_npy::write_npy(&small, &counts.slice(ndarray::s![..6, ..]).to_owned()).unwrap();
    let small_fixed = d.join("small-fixed.csv");
    ok(&flimgru(&[
        "infer",
        "--model",
        &student,
        "--input",
        small.to_str().unwrap(),
        "--output",
        small_fixed.to_str().unwrap(),
    ]));
    ok(&flimgru(&[
        "sim",
        "--model",
        &student,
        "--lanes",
        "2",
        "--macs",
        "3",
        "--input",
        small.to_str().unwrap(),
        "--output",
        sim.to_str().unwrap(),
        "--vcd",
        vcd.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(&sim).unwrap(),
        std::fs::read(&small_fixed).unwrap(),
        "flimgru sim and infer --engine fixed disagree"
    );
    let list = ok(&flimgru(&["wave", vcd.to_str().unwrap(), "--list"]));
    let first = list.lines().next().expect("the VCD lists signals");
    let name = first.split_whitespace().next().unwrap();
    let changes = ok(&flimgru(&["wave", vcd.to_str().unwrap(), "--signal", name]));
    assert!(!changes.trim().is_empty(), "no value changes for {name}");
    // A configuration that cannot be built is refused, naming the problem;
    // W is the model's, so --bits is a check against it, not a choice.
    let bad = d.join("bad.csv");
    for (option, value, needles) in [
        ("--macs", "4", vec!["M = 4"]),
        (
            "--bits",
            "6",
            vec!["--bits 6", "the circuit's widths are the model's"],
        ),
    ] {
        let out = flimgru(&[
            "sim",
            "--model",
            &student,
            option,
            value,
            "--input",
            small.to_str().unwrap(),
            "--output",
            bad.to_str().unwrap(),
        ]);
        fails(&out, &needles);
        assert!(!bad.exists());
    }
    // Eval runs the golden model on a quantised student.
    let report = d.join("student.eval");
    let out = ok(&flimgru(&[
        "eval",
        "--model",
        &student,
        "--pixels",
        "200",
        "--mle-pixels",
        "0",
        "--f-pixels",
        "0",
        "--out",
        report.to_str().unwrap(),
    ]));
    assert!(out.contains("network"), "{out}");
    // The fixed engine refuses a float-only model, naming the problem.
    let teacher = d.join("teacher.json");
    let nope = d.join("nope.csv");
    let out = flimgru(&[
        "infer",
        "--model",
        teacher.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        nope.to_str().unwrap(),
        "--engine",
        "fixed",
    ]);
    fails(&out, &["no quantised weights"]);
    assert!(!nope.exists());
}

#[test]
fn broken_quantised_model_files_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let student = tiny_study(d);
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&student).unwrap()).unwrap();
    let input = d.join("h.npy");
    ndarray_npy::write_npy(&input, &ndarray::Array2::<u32>::from_elem((2, 20), 3)).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "code",
            Box::new(|v| v["quantized"]["head_bias"]["codes"][0] = 128.into()),
            vec!["bad-code.json", "head_bias", "128"],
        ),
        (
            "shape",
            Box::new(|v| v["quantized"]["encoder_recurrent"]["shape"] = serde_json::json!([2, 9])),
            vec!["bad-shape.json", "encoder_recurrent", "shape"],
        ),
        (
            "exponent",
            Box::new(|v| v["quantized"]["decoder_bias"]["exponent"] = 9.into()),
            vec!["bad-exponent.json", "decoder_bias", "exponent"],
        ),
        (
            "bits",
            Box::new(|v| v["quantized"]["bits"] = 40.into()),
            vec!["bad-bits.json", "bit width 40"],
        ),
        (
            "version",
            Box::new(|v| v["version"] = 99.into()),
            vec!["bad-version.json", "version 99"],
        ),
        (
            "weights",
            Box::new(|v| v["weights"]["head"]["bias"]["data"][0] = 0.123.into()),
            vec!["bad-weights.json", "\"weights\"", "\"quantized\""],
        ),
    ];
    for (name, edit, needles) in cases {
        let mut v = good.clone();
        edit(&mut v);
        let path = d.join(format!("bad-{name}.json"));
        std::fs::write(&path, v.to_string()).unwrap();
        let out_path = d.join(format!("{name}.csv"));
        let out = flimgru(&[
            "infer",
            "--model",
            path.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out_path.to_str().unwrap(),
        ]);
        fails(&out, &needles);
        assert!(!out_path.exists());
    }
}

#[test]
fn the_committed_study_config_is_the_default_job() {
    let printed: serde_json::Value =
        serde_json::from_str(&ok(&flimgru(&["compress", "--print-config"]))).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/compress.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        printed, committed,
        "configs/compress.json and CompressJob::default() drifted"
    );
}
