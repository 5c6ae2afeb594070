//! The defects D1-D10 of issue 22, one test each: the binary run on the
//! hostile input that broke it, which must now end with a clear error (or
//! succeed), a non-zero exit for errors, no panic, no half-written output
//! and every input unchanged. The output policy itself is `src/output.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flimgru"))
}

fn flimgru(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exit status 1, no panic, and an error holding every needle.
fn refused(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    assert!(!err.contains(".flimgru-tmp-"), "names a temp file: {err}");
    err
}

/// No temporary file left in `dir`.
fn no_temps(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.contains("flimgru-tmp"), "temporary {n} left in {dir:?}");
    }
}

/// The shipped quantised student (default grid, 135 gates).
fn student() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-w8a12.json")
}

/// A small image on the default grid: `dir/sample/sample.{ptu,npy}`.
fn sample_image(dir: &Path) -> PathBuf {
    let sample = dir.join("sample");
    ok(&flimgru(&[
        "simulate",
        "--image",
        "--height",
        "6",
        "--width",
        "5",
        "--out",
        s(&sample),
    ]));
    sample
}

/// A few simulated histograms on the default grid: `dir/data/histograms.npy`.
fn histograms(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    ok(&flimgru(&["simulate", "--pixels", "3", "--out", s(&data)]));
    data.join("histograms.npy")
}

/// A VCD with `scopes` nested scopes and the given top-level extra vars.
fn write_vcd(path: &Path, scopes: usize) {
    let mut t = String::from("$timescale 1 ps $end\n$scope module uut $end\n");
    t.push_str("$var wire 1 ! clock $end\n");
    t.push_str("$scope module a $end\n$var wire 1 \" clock $end\n$upscope $end\n");
    for i in 0..scopes {
        t.push_str(&format!("$scope module s{i} $end\n"));
    }
    for _ in 0..scopes {
        t.push_str("$upscope $end\n");
    }
    t.push_str("$upscope $end\n$enddefinitions $end\n#0\n0!\n1\"\n#5\n1!\n");
    std::fs::write(path, t).unwrap();
}

#[test]
fn d1_wave_on_deeply_nested_scopes_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let vcd = dir.path().join("deep.vcd");
    write_vcd(&vcd, 50_000);
    let out = flimgru(&["wave", s(&vcd), "--list"]);
    refused(&out, &["deep.vcd", "nested deeper than"]);
    // Moderate nesting still reads.
    write_vcd(&vcd, 200);
    let out = flimgru(&["wave", s(&vcd), "--signal", "uut.clock"]);
    ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 0\n5 1\n");
}

#[test]
fn d2_a_failing_stdout_is_an_error_and_a_closed_pipe_a_quiet_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Enough signals that the listing outgrows a pipe's buffer.
    let vcd = dir.path().join("wide.vcd");
    let mut t = String::from("$scope module uut $end\n");
    for i in 0..100_000 {
        t.push_str(&format!("$var wire 1 s{i} signal_{i} $end\n"));
    }
    t.push_str("$upscope $end\n$enddefinitions $end\n");
    std::fs::write(&vcd, t).unwrap();
    // `| head -c 10`: read 10 bytes, close the pipe.
    let mut child = bin()
        .args(["wave", s(&vcd), "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {err}");
    assert!(err.is_empty(), "a closed pipe is not an error: {err}");
    // stdout on a full disk: a message and exit 1.
    for args in [
        vec!["wave", s(&vcd), "--list"],
        vec!["compress", "--print-config"],
    ] {
        let out = bin()
            .args(&args)
            .stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )
            .output()
            .unwrap();
        refused(&out, &["cannot write to standard output"]);
    }
}

#[test]
fn d3_simulate_beyond_the_memory_budget_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("big");
    let t = Instant::now();
    let out = flimgru(&["simulate", "--pixels", "10000000", "--out", s(&out_dir)]);
    refused(&out, &["--pixels", "10000000", "GiB limit"]);
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(!out_dir.exists(), "output directory made for a refused run");
    // eval's F-value pixels, likewise before any work.
    let out = flimgru(&[
        "eval",
        "--model",
        s(&student()),
        "--f-pixels",
        "1000000000000",
        "--out",
        s(&dir.path().join("r")),
    ]);
    refused(&out, &["--f-pixels", "GiB limit"]);
}

#[test]
fn d4_an_endless_or_huge_csv_input_is_a_bounded_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let zero = d.join("zero.csv");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let r = d.join("r.csv");
    let out = flimgru(&[
        "infer",
        "--model",
        s(&student()),
        "-i",
        s(&zero),
        "-o",
        s(&r),
    ]);
    refused(&out, &["zero.csv", "MiB"]);
    assert!(!r.exists());
    // A large regular file is refused from its size, before reading.
    let big = d.join("big.csv");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let t = Instant::now();
    let out = flimgru(&[
        "infer",
        "--model",
        s(&student()),
        "-i",
        s(&big),
        "-o",
        s(&r),
    ]);
    refused(&out, &["big.csv", "larger than 256 MiB"]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!r.exists());
    no_temps(d);
}

#[test]
fn d5_sim_vcd_never_replaces_an_input_or_another_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hist = histograms(d);
    let before = std::fs::read(&hist).unwrap();
    let r = d.join("r.csv");
    let model = s(&student()).to_string();
    let out = flimgru(&[
        "sim",
        "--model",
        &model,
        "-i",
        s(&hist),
        "-o",
        s(&r),
        "--vcd",
        s(&hist),
    ]);
    refused(
        &out,
        &["--vcd", "--input", "refusing to overwrite an input"],
    );
    let out = flimgru(&[
        "sim",
        "--model",
        &model,
        "-i",
        s(&hist),
        "-o",
        s(&r),
        "--vcd",
        s(&r),
    ]);
    refused(&out, &["--vcd", "--output"]);
    let out = flimgru(&[
        "sim",
        "--model",
        &model,
        "-i",
        s(&hist),
        "-o",
        s(&r),
        "--vcd",
        &model,
    ]);
    refused(&out, &["--vcd", "--model"]);
    assert_eq!(std::fs::read(&hist).unwrap(), before);
    assert!(!r.exists());
    no_temps(d);
    no_temps(hist.parent().unwrap());
}

#[test]
fn d6_outputs_never_replace_inputs_or_devices() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = s(&student()).to_string();
    let model_bytes = std::fs::read(student()).unwrap();
    // map m.npy -o m.png: m.npy would be the result array.
    let sample = sample_image(d);
    let npy = sample.join("sample.npy");
    let before = std::fs::read(&npy).unwrap();
    let png = sample.join("sample.png");
    let out = flimgru(&["map", s(&npy), "-o", s(&png), "--model", &model]);
    refused(&out, &["sample.npy", "refusing to overwrite an input"]);
    assert_eq!(std::fs::read(&npy).unwrap(), before);
    assert!(!png.exists(), "map wrote its PNG before refusing");
    // infer --output equal to --input, also through a hard link.
    let link = d.join("link.npy");
    std::fs::hard_link(&npy, &link).unwrap();
    for o in [&npy, &link] {
        let out = flimgru(&["infer", "--model", &model, "-i", s(&npy), "-o", s(o)]);
        refused(&out, &["--output", "--input"]);
    }
    // The model file as an output (a model file may have any name).
    let odd = d.join("model.npy");
    std::fs::copy(student(), &odd).unwrap();
    let out = flimgru(&["infer", "--model", s(&odd), "-i", s(&npy), "-o", s(&odd)]);
    refused(&out, &["--output", "--model"]);
    assert_eq!(std::fs::read(&odd).unwrap(), model_bytes);
    // A character device is not replaced by a regular file.
    let dev = d.join("null.csv");
    std::os::unix::fs::symlink("/dev/null", &dev).unwrap();
    let out = flimgru(&["infer", "--model", &model, "-i", s(&npy), "-o", s(&dev)]);
    refused(&out, &["null.csv", "character device"]);
    assert!(!Path::new("/dev/null").metadata().unwrap().is_file());
    // A directory is not an output either.
    let out = flimgru(&["bench", "--json", s(d)]);
    refused(&out, &["--json", "a directory"]);
    // compress: --ship onto the teacher, --ship onto the report's JSON twin.
    let cfg = d.join("job.json");
    let job = String::from_utf8(flimgru(&["compress", "--print-config"]).stdout).unwrap();
    let mut job: serde_json::Value = serde_json::from_str(&job).unwrap();
    let teacher = d.join("teacher.json");
    std::fs::copy(student(), &teacher).unwrap();
    job["teacher"] = teacher.to_str().unwrap().into();
    std::fs::write(&cfg, serde_json::to_string(&job).unwrap()).unwrap();
    let report = d.join("R.md");
    let run = |ship: &Path| {
        flimgru(&[
            "compress",
            "--config",
            s(&cfg),
            "--dir",
            s(&d.join("study")),
            "--ship",
            s(ship),
            "--report",
            s(&report),
        ])
    };
    refused(&run(&teacher), &["--ship", "teacher"]);
    refused(&run(&d.join("R.json")), &["--ship", "--report", "R.json"]);
    refused(&run(&cfg), &["--ship", "--config"]);
    assert_eq!(std::fs::read(&teacher).unwrap(), model_bytes);
    assert!(!report.exists());
    assert_eq!(std::fs::read(student()).unwrap(), model_bytes);
    no_temps(d);
    no_temps(&sample);
}

#[test]
fn d7_unwritable_outputs_are_found_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("job.json");
    let job = String::from_utf8(flimgru(&["compress", "--print-config"]).stdout).unwrap();
    let mut job: serde_json::Value = serde_json::from_str(&job).unwrap();
    job["teacher"] = s(&student()).into();
    std::fs::write(&cfg, serde_json::to_string(&job).unwrap()).unwrap();
    let ship = d.join("ship.json");
    let study = d.join("study");
    let t = Instant::now();
    // The report's directory is not there: the full study would otherwise
    // train for minutes before finding out.
    let out = flimgru(&[
        "compress",
        "--config",
        s(&cfg),
        "--dir",
        s(&study),
        "--ship",
        s(&ship),
        "--report",
        s(&d.join("missing/R.md")),
    ]);
    refused(&out, &["--report", "missing/R.md"]);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(!ship.exists(), "shipped a model before failing");
    // A job whose F-value pixels exceed the budget fails before training,
    // naming the field and the file.
    job["f_pixels"] = 1_000_000_000_000u64.into();
    std::fs::write(&cfg, serde_json::to_string(&job).unwrap()).unwrap();
    let out = flimgru(&[
        "compress",
        "--config",
        s(&cfg),
        "--dir",
        s(&study),
        "--ship",
        s(&ship),
        "--report",
        s(&d.join("R.md")),
    ]);
    refused(&out, &["f_pixels", "job.json", "GiB limit"]);
    assert!(!ship.exists());
    // sim checks its output directory before simulating.
    let hist = histograms(d);
    let t = Instant::now();
    let out = flimgru(&[
        "sim",
        "--model",
        s(&student()),
        "-i",
        s(&hist),
        "-o",
        s(&d.join("missing/r.csv")),
    ]);
    refused(&out, &["--output", "missing/r.csv", "is not there"]);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn d8_map_time_does_not_grow_with_the_model_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sample = sample_image(d);
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(student()).unwrap()).unwrap();
    m["name"] = "n".repeat(8 << 20).into();
    let model = d.join("long-name.json");
    std::fs::write(&model, serde_json::to_vec(&m).unwrap()).unwrap();
    let png = d.join("m.png");
    let t = Instant::now();
    ok(&flimgru(&[
        "map",
        s(&sample.join("sample.npy")),
        "-o",
        s(&png),
        "--model",
        s(&model),
        "--min-photons",
        "1",
    ]));
    // Drawing the 8 MB name as the title took over half a minute.
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
}

#[test]
fn d9_errors_name_the_users_path_the_option_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hist = histograms(d);
    // An output whose directory is a file: the error names the user's path.
    let blocker = d.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let o = blocker.join("r.csv");
    let out = flimgru(&[
        "infer",
        "--model",
        s(&student()),
        "-i",
        s(&hist),
        "-o",
        s(&o),
    ]);
    refused(&out, &["--output", s(&o)]);
    // Negative numbers name the option.
    for (cmd, opt) in [
        (vec!["simulate", "--pixels", "-1", "--out", "x"], "--pixels"),
        (
            vec!["train", "--epochs", "-3", "--out", "x.json"],
            "--epochs",
        ),
        (
            vec!["sim", "--lanes", "-2", "-i", "a.npy", "-o", "b.csv"],
            "--lanes",
        ),
    ] {
        let out = flimgru(&cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(opt) && err.contains("-"), "{err}");
        assert!(!err.contains("unexpected argument"), "{err}");
    }
    // A negative range is a value, checked by the range's own rules.
    let out = flimgru(&[
        "simulate",
        "--pixels",
        "2",
        "--photons",
        "-5,10",
        "--out",
        s(&d.join("neg")),
    ]);
    refused(&out, &[]);
    // A bad value in --spec names the file holding it.
    let spec = d.join("bad-spec.json");
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(hist.parent().unwrap().join("spec.json")).unwrap(),
    )
    .unwrap();
    v["spec"]["mono_fraction"] = 3.0.into();
    std::fs::write(&spec, v["spec"].to_string()).unwrap();
    let out = flimgru(&[
        "simulate",
        "--pixels",
        "2",
        "--spec",
        s(&spec),
        "--out",
        s(&d.join("o")),
    ]);
    refused(&out, &["bad-spec.json", "mono_fraction"]);
    // And in a training --config.
    let cfg = d.join("train.json");
    let job = flimgru(&["train", "--print-config", "--pixels", "100"]);
    ok(&job);
    let mut job: serde_json::Value = serde_json::from_slice(&job.stdout).unwrap();
    job["training"]["epochs"] = 0.into();
    std::fs::write(&cfg, job.to_string()).unwrap();
    let out = flimgru(&["train", "--config", s(&cfg), "--out", s(&d.join("m.json"))]);
    refused(&out, &["train.json", "epochs"]);
    no_temps(d);
}

/// Patch the f64 value of a PTU header tag in place.
fn patch_ptu_float(path: &Path, tag: &str, value: f64) {
    let mut b = std::fs::read(path).unwrap();
    let at = b
        .windows(tag.len())
        .position(|w| w == tag.as_bytes())
        .expect("tag present");
    // 32-byte identifier, i32 index, u32 type, 8-byte value.
    b[at + 40..at + 48].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn d10_nonsense_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = s(&student()).to_string();
    let sample = sample_image(d);
    let png = d.join("m.png");
    // map --dtime-binning 0.
    let out = flimgru(&[
        "map",
        s(&sample.join("sample.ptu")),
        "-o",
        s(&png),
        "--model",
        &model,
        "--dtime-binning",
        "0",
    ]);
    refused(&out, &["--dtime-binning"]);
    // Fractional counts on the fixed engine (infer refuses them too).
    let frac = d.join("frac.npy");
    let a = ndarray::Array3::<f32>::from_elem((4, 4, 135), 2.5);
    ndarray_npy::write_npy(&frac, &a).unwrap();
    let out = flimgru(&["map", s(&frac), "-o", s(&png), "--model", &model]);
    refused(&out, &["frac.npy", "whole non-negative photon counts"]);
    assert!(!png.exists());
    // train --max-minutes NaN, --epochs 0: no model written.
    let m = d.join("m.json");
    for (opt, v, needle) in [
        ("--max-minutes", "NaN", "max minutes"),
        ("--max-minutes", "-1", "max minutes"),
        ("--epochs", "0", "epochs"),
    ] {
        let out = flimgru(&["train", "--pixels", "100", opt, v, "--out", s(&m)]);
        refused(&out, &[needle]);
        assert!(!m.exists());
    }
    // wave --signal clock: several signals end in `clock`.
    let vcd = d.join("w.vcd");
    write_vcd(&vcd, 0);
    let out = flimgru(&["wave", s(&vcd), "--signal", "clock"]);
    refused(
        &out,
        &["ambiguous", "uut.clock", "uut.a.clock", "full path"],
    );
    // A PTU sync period of 0, NaN, infinity or a negative value.
    for v in [0.0, f64::NAN, f64::INFINITY, -1e-8] {
        let ptu = d.join("bad.ptu");
        std::fs::copy(sample.join("sample.ptu"), &ptu).unwrap();
        patch_ptu_float(&ptu, "MeasDesc_GlobalResolution", v);
        let out = flimgru(&["map", s(&ptu), "-o", s(&png), "--model", &model]);
        refused(&out, &["bad.ptu", "MeasDesc_GlobalResolution"]);
        assert!(!png.exists());
    }
}

/// A model file whose baseline window is not below its gate count (or
/// beyond the contract's 64) is refused at load, naming the field, before
/// any histogram is read.
#[test]
fn a_model_with_an_impossible_baseline_window_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let input = histograms(dir.path());
    let text = std::fs::read_to_string(student()).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["data"]["grid"]["baseline_gates"] = serde_json::json!(500);
    let model = dir.path().join("wide-baseline.json");
    std::fs::write(&model, serde_json::to_vec(&json).unwrap()).unwrap();
    let out_csv = dir.path().join("out.csv");
    let out = flimgru(&[
        "infer",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--output",
        s(&out_csv),
    ]);
    refused(&out, &["wide-baseline.json", "baseline_gates", "500"]);
    assert!(!out_csv.exists());
}
