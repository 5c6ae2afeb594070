//! The `flimgru` binary end to end: simulate -> infer, and bad input that
//! must fail cleanly (message naming the file, non-zero exit, no output).

use std::path::Path;
use std::process::{Command, Output};

fn flimgru(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flimgru"))
        .args(args)
        .output()
        .expect("runs")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails with a message containing every needle, and leaves no output.
fn fails(out: &Output, needles: &[&str], output: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have failed; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(!output.exists(), "{} left behind", output.display());
}

/// A tiny model on a short grid, trained for one epoch.
fn tiny_model(dir: &Path) -> String {
    let model = dir.join("tiny.json");
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
        model.to_str().unwrap(),
    ]));
    model.to_str().unwrap().to_string()
}

#[test]
fn simulate_then_infer_csv_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d);
    let data = d.join("data");
    ok(&flimgru(&[
        "simulate",
        "--pixels",
        "50",
        "--gates",
        "20",
        "--dt",
        "0.5",
        "--out",
        data.to_str().unwrap(),
    ]));
    let hist = data.join("histograms.npy");
    let csv = d.join("r.csv");
    ok(&flimgru(&[
        "infer",
        "--model",
        &model,
        "--input",
        hist.to_str().unwrap(),
        "--output",
        csv.to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "tau1,tau2,fraction");
    assert_eq!(lines.len(), 51);
    for l in &lines[1..] {
        let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|x| x.is_finite()));
        assert!((0.0..=1.0).contains(&v[2]));
    }
    let npy = d.join("r.npy");
    ok(&flimgru(&[
        "infer",
        "--model",
        &model,
        "--input",
        hist.to_str().unwrap(),
        "--output",
        npy.to_str().unwrap(),
    ]));
    let arr: ndarray::Array2<f64> = ndarray_npy::read_npy(&npy).unwrap();
    assert_eq!(arr.dim(), (50, 3));
    // The same pixels as CSV text and as .npy values.
    let first: Vec<f64> = lines[1].split(',').map(|x| x.parse().unwrap()).collect();
    for j in 0..3 {
        assert!((arr[[0, j]] - first[j]).abs() < 1e-6);
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d);
    let out = d.join("out.csv");
    let o = out.to_str().unwrap();
    // Wrong gate count.
    let wrong = d.join("wrong.csv");
    std::fs::write(&wrong, "1,2,3,4,5,6,7,8,9,10,11,12\n").unwrap();
    fails(
        &flimgru(&[
            "infer",
            "--model",
            &model,
            "--input",
            wrong.to_str().unwrap(),
            "--output",
            o,
        ]),
        &["wrong.csv", "gates"],
        &out,
    );
    // NaN and negative counts.
    let row = |v: &str| {
        let mut r = vec!["1"; 20];
        r[5] = v;
        r.join(",") + "\n"
    };
    for (name, v) in [("nan.csv", "NaN"), ("neg.csv", "-3")] {
        let p = d.join(name);
        std::fs::write(&p, row(v)).unwrap();
        fails(
            &flimgru(&[
                "infer",
                "--model",
                &model,
                "--input",
                p.to_str().unwrap(),
                "--output",
                o,
            ]),
            &[name],
            &out,
        );
    }
    // Empty and missing inputs.
    let empty = d.join("empty.npy");
    std::fs::write(&empty, b"").unwrap();
    fails(
        &flimgru(&[
            "infer",
            "--model",
            &model,
            "--input",
            empty.to_str().unwrap(),
            "--output",
            o,
        ]),
        &["empty.npy"],
        &out,
    );
    fails(
        &flimgru(&[
            "infer",
            "--model",
            &model,
            "--input",
            "/nonexistent/h.npy",
            "--output",
            o,
        ]),
        &["/nonexistent/h.npy"],
        &out,
    );
    // Unknown model version.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    v["version"] = 42.into();
    let future = d.join("future.json");
    std::fs::write(&future, serde_json::to_vec(&v).unwrap()).unwrap();
    let good = d.join("good.csv");
    std::fs::write(&good, row("2")).unwrap();
    fails(
        &flimgru(&[
            "infer",
            "--model",
            future.to_str().unwrap(),
            "--input",
            good.to_str().unwrap(),
            "--output",
            o,
        ]),
        &["future.json", "version 42"],
        &out,
    );
    // Unsupported output extension.
    let txt = d.join("out.txt");
    fails(
        &flimgru(&[
            "infer",
            "--model",
            &model,
            "--input",
            good.to_str().unwrap(),
            "--output",
            txt.to_str().unwrap(),
        ]),
        &["out.txt"],
        &txt,
    );
    // A placement density nextpnr cannot use: refused before anything runs.
    let synth_dir = d.join("synth");
    for density in ["0", "1.5", "NaN"] {
        fails(
            &flimgru(&[
                "synth",
                "--board",
                "ulx3s",
                "--model",
                &model,
                "--density",
                density,
                "--out",
                synth_dir.to_str().unwrap(),
            ]),
            &["--density", "(0, 1]"],
            &synth_dir,
        );
    }
    // An unknown multiplier form: refused, nothing written; the ECP5 form
    // is written beside the inferred one under its own name.
    let rtl = d.join("rtl");
    let student = concat!(env!("CARGO_MANIFEST_DIR"), "/models/student-w8a12.json");
    let export = |dsp: &str| {
        flimgru(&[
            "export",
            "--model",
            student,
            "--dsp",
            dsp,
            "--out",
            rtl.to_str().unwrap(),
        ])
    };
    fails(&export("dsp48"), &["dsp48", "inferred or ecp5"], &rtl);
    ok(&export("ecp5"));
    let v = std::fs::read_to_string(rtl.join("flimgru_w8a12_p1_m96_ecp5.v")).unwrap();
    assert!(v.contains("MULT18X18D #("));
}

#[test]
fn eval_writes_reports_beside_the_model_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let before = std::fs::read(&model).unwrap();
    let out = flimgru(&[
        "eval",
        "--model",
        &model,
        "--pixels",
        "300",
        "--mle-pixels",
        "20",
        "--f-pixels",
        "20",
    ]);
    ok(&out);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "eval changed the model"
    );
    let md = std::fs::read_to_string(dir.path().join("tiny.eval.md")).unwrap();
    for row in ["| network |", "| RLD bi", "| MLE bi", "F-value", "ch0 R^2"] {
        assert!(md.contains(row), "report lacks {row:?}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tiny.eval.json")).unwrap()).unwrap();
    assert_eq!(json["table"]["methods"][0]["n"], 300);
    // Every F point carries its spread and its RMS with the bias in, at
    // least F sqrt((n - 1) / n) for n >= 2 estimates.
    for p in json["f_values"].as_array().unwrap() {
        let (f, rms) = (p["f_value"].as_f64(), p["rms_f_value"].as_f64());
        assert_eq!(f.is_some(), rms.is_some(), "{p}");
        if let (Some(f), Some(rms)) = (f, rms) {
            assert!(rms >= f * 0.5f64.sqrt() - 1e-9, "{p}");
        }
    }
    assert!(md.contains("| F with bias |"), "{md}");
    // An IRF centre range of its own: recorded in the report; an inverted
    // one refused by name with nothing written.
    let sub = dir.path().join("late");
    let late = |range: &str| {
        flimgru(&[
            "eval",
            "--model",
            &model,
            "--pixels",
            "50",
            "--mle-pixels",
            "5",
            "--f-pixels",
            "5",
            "--irf-centre",
            range,
            "--out",
            sub.to_str().unwrap(),
        ])
    };
    fails(
        &late("1.5,1.3"),
        &["irf.centre_ns", "inverted"],
        &dir.path().join("late.md"),
    );
    ok(&late("1.3,1.5"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("late.json")).unwrap()).unwrap();
    assert_eq!(
        json["config"]["irf_centre_ns"],
        serde_json::json!([1.3, 1.5])
    );
}

#[test]
fn image_shaped_input_keeps_its_shape_and_config_training_works() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Train from a config file printed by --print-config.
    let printed = flimgru(&[
        "train",
        "--hidden",
        "3",
        "--pixels",
        "200",
        "--epochs",
        "1",
        "--batch",
        "50",
        "--gates",
        "20",
        "--dt",
        "0.5",
        "--print-config",
    ]);
    ok(&printed);
    let config = d.join("job.json");
    std::fs::write(&config, &printed.stdout).unwrap();
    let model = d.join("m.json");
    ok(&flimgru(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!(m["weights"]["config"]["hidden"], serde_json::json!([3]));
    assert!(m["command"]
        .as_str()
        .unwrap()
        .starts_with("flimgru train --config"));
    // A [4, 5, 20] u16 image: results come back as [4, 5, 3].
    let img = ndarray::Array3::<u16>::from_shape_fn((4, 5, 20), |(i, j, k)| {
        ((i + j + 1) * 40) as u16 * (20 - k as u16) / 20
    });
    let input = d.join("img.npy");
    ndarray_npy::write_npy(&input, &img).unwrap();
    let out = d.join("img_tau.npy");
    ok(&flimgru(&[
        "infer",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]));
    let r: ndarray::Array3<f64> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(r.dim(), (4, 5, 3));
    // A broken config fails naming the file.
    let bad = d.join("bad.json");
    std::fs::write(&bad, b"{\"name\": 3}").unwrap();
    let out2 = d.join("never.json");
    fails(
        &flimgru(&[
            "train",
            "--config",
            bad.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
        ]),
        &["bad.json"],
        &out2,
    );
}

#[test]
fn map_writes_png_histogram_table_and_values_and_masks_dim_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d);
    // A 6 x 7 image on the tiny model's 20-gate grid; the left column dim.
    let img = ndarray::Array3::<u32>::from_shape_fn((6, 7, 20), |(_, c, k)| {
        let peak = if c == 0 { 1 } else { 60 };
        peak * (20 - k as u32) / 20 + u32::from(k < 3)
    });
    let input = d.join("img.npy");
    ndarray_npy::write_npy(&input, &img).unwrap();
    let png = d.join("map.png");
    ok(&flimgru(&[
        "map",
        input.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--model",
        &model,
        "--min-photons",
        "100",
    ]));
    for f in ["map.png", "map-histogram.png"] {
        let bytes = std::fs::read(d.join(f)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f} is not a PNG");
    }
    let csv = std::fs::read_to_string(d.join("map.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 1 + 42);
    assert!(
        rows[1].ends_with(",,,,"),
        "dim pixel not masked: {}",
        rows[1]
    );
    assert!(
        !rows[2].ends_with(",,,,"),
        "bright pixel masked: {}",
        rows[2]
    );
    let v: ndarray::Array3<f64> = ndarray_npy::read_npy(d.join("map.npy")).unwrap();
    assert_eq!(v.dim(), (6, 7, 5));
    assert!(v[[0, 0, 0]].is_nan() && v[[0, 1, 0]].is_finite());
    // No pixel bright enough, and a flat list without image shape: clean errors.
    let out = d.join("none.png");
    fails(
        &flimgru(&[
            "map",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            &model,
            "--min-photons",
            "1e9",
        ]),
        &["img.npy", "photons"],
        &out,
    );
    assert!(!d.join("none.csv").exists());
    let flat = d.join("flat.npy");
    ndarray_npy::write_npy(&flat, &img.into_shape_with_order((42, 20)).unwrap()).unwrap();
    fails(
        &flimgru(&[
            "map",
            flat.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            &model,
        ]),
        &["flat.npy", "image shape"],
        &out,
    );
}

#[test]
fn sample_image_maps_from_ptu_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A model on the default grid (the sample image uses it).
    let model = d.join("m.json");
    ok(&flimgru(&[
        "train",
        "--hidden",
        "3",
        "--pixels",
        "200",
        "--epochs",
        "1",
        "--batch",
        "50",
        "--out",
        model.to_str().unwrap(),
    ]));
    let sample = d.join("sample");
    ok(&flimgru(&[
        "simulate",
        "--image",
        "--height",
        "12",
        "--width",
        "10",
        "--seed",
        "4",
        "--out",
        sample.to_str().unwrap(),
    ]));
    for input in ["sample.ptu", "sample.npy"] {
        let png = d.join(format!("{input}.png"));
        let out = flimgru(&[
            "map",
            sample.join(input).to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--min-photons",
            "1",
        ]);
        ok(&out);
        assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");
        let v: ndarray::Array3<f64> = ndarray_npy::read_npy(png.with_extension("npy")).unwrap();
        assert_eq!(v.dim(), (12, 10, 5));
        if input.ends_with("ptu") {
            // The grid matching says what it did.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("gates of 0.0900 ns"), "{err}");
        }
    }
}

#[test]
fn map_takes_block_and_prints_reader_warnings() {
    use flimgru::data::formats::{
        write_ptu_t3_image, write_sdt_with, PtuT3Spec, SdtBlock, SdtCompression, SdtWriteOptions,
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d);
    // --block reaches the SDT reader.
    let img = ndarray::Array3::from_shape_fn((4, 5, 200), |(y, x, k)| {
        (50.0 * (-(k as f64) / 40.0).exp()) as u32 + (y + x) as u32
    });
    let sdt = d.join("two.sdt");
    let block = SdtBlock {
        counts: img.view(),
        content: 0x60,
    };
    write_sdt_with(
        &sdt,
        &[block.clone(), block],
        0.05,
        &SdtWriteOptions {
            compression: SdtCompression::Zip,
            ..SdtWriteOptions::default()
        },
    )
    .unwrap();
    let out = d.join("two.png");
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "map".to_string(),
            sdt.to_str().unwrap().to_string(),
            "-o".to_string(),
            out.to_str().unwrap().to_string(),
            "--model".to_string(),
            model.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| flimgru(&a.iter().map(String::as_str).collect::<Vec<_>>());
    fails(
        &run(args(&["--block", "7"])),
        &["two.sdt", "data block 7 asked for, the file holds 2"],
        &out,
    );
    let o = run(args(&["--block", "1"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("block 1 read as asked"), "{err}");

    // Two detector channels 2 ns apart: the reader's warning is printed
    // (whatever the model makes of the image).
    let ptu = d.join("chan.ptu");
    let spec = PtuT3Spec::new(2, 2, 0.05, 12.5);
    let photons: Vec<Vec<u16>> = (0..4)
        .map(|_| {
            (0..400u16)
                .map(|j| {
                    let dt = 10 + (-20.0 * (1.0 - (j / 2) as f64 / 200.0).ln()) as u16;
                    if j % 2 == 0 {
                        dt
                    } else {
                        // Marked for channel 1, 2 ns later.
                        1000 + dt + 40
                    }
                })
                .collect()
        })
        .collect();
    let spec = PtuT3Spec {
        period_ns: 100.0,
        ..spec
    };
    write_ptu_t3_image(&ptu, &spec, &photons).unwrap();
    let mut b = std::fs::read(&ptu).unwrap();
    let end = b.windows(10).position(|w| w == b"Header_End").unwrap() + 48;
    for rec in b[end..].chunks_exact_mut(4) {
        let r = u32::from_le_bytes(rec.try_into().unwrap());
        let dtime = (r >> 10) & 0x7FFF;
        if r >> 31 == 0 && dtime >= 1000 {
            let r = (r & !(0x7FFF << 10)) | ((dtime - 1000) << 10) | (1 << 25);
            rec.copy_from_slice(&r.to_le_bytes());
        }
    }
    std::fs::write(&ptu, &b).unwrap();
    let out = d.join("chan.png");
    let o = flimgru(&[
        "map",
        ptu.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        &model,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("chan.ptu: warning: the detector channels' decays are misaligned"),
        "{err}"
    );
}

/// The shipped student is built into the binary: `map` and `infer` without
/// `--model`, run from a directory with no models/ folder, give what the
/// same commands give with the repository's file named.
#[test]
fn shipped_model_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run_in = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flimgru"))
            .current_dir(d)
            .args(args)
            .output()
            .expect("runs")
    };
    ok(&run_in(&[
        "simulate", "--pixels", "40", "--seed", "3", "--out", "sim",
    ]));
    let h = "sim/histograms.npy";
    ok(&run_in(&["infer", "-i", h, "-o", "built-in.csv"]));
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-w8a12.json");
    ok(&run_in(&[
        "infer",
        "--model",
        file.to_str().unwrap(),
        "-i",
        h,
        "-o",
        "named.csv",
    ]));
    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    assert_eq!(read("built-in.csv"), read("named.csv"));
    assert_eq!(read("built-in.csv").lines().count(), 41);
    ok(&run_in(&[
        "simulate", "--image", "--height", "6", "--width", "5", "--out", "img",
    ]));
    ok(&run_in(&["map", "img/sample.ptu", "-o", "m.png"]));
    assert!(d.join("m.png").exists() && d.join("m.npy").exists());
}

/// A decay far longer than the model's training range is flagged, not
/// mapped with a confident number: the left half of the image holds 1 ns
/// decays, the right half 12 ns ones (noise-free expected counts, 3,000
/// photons, rising at the model's reference peak).
#[test]
fn map_flags_decays_outside_the_training_range() {
    use ndarray_npy::WriteNpyExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (h, w, g, dt) = (4, 6, 135, 0.09);
    let mut a = ndarray::Array3::<u32>::zeros((h, w, g));
    for r in 0..h {
        for c in 0..w {
            let tau: f64 = if c < w / 2 { 1.0 } else { 12.0 };
            let shape: Vec<f64> = (0..g)
                .map(|k| {
                    let t = (k as f64 - 16.0) * dt;
                    if t < 0.0 {
                        0.0
                    } else {
                        (-t / tau).exp()
                    }
                })
                .collect();
            let sum: f64 = shape.iter().sum();
            for (k, v) in shape.iter().enumerate() {
                a[[r, c, k]] = (3000.0 * v / sum).round() as u32 + 1;
            }
        }
    }
    let input = d.join("long.npy");
    a.write_npy(std::fs::File::create(&input).unwrap()).unwrap();
    let png = d.join("m.png");
    let out = flimgru(&["map", input.to_str().unwrap(), "-o", png.to_str().unwrap()]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("12 of 24 pixels are out of range"), "{err}");
    let table = std::fs::read_to_string(d.join("m.csv")).unwrap();
    let mut lines = table.lines();
    assert!(lines.next().unwrap().ends_with(",out_of_range,g,s"));
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let col: usize = f[1].parse().unwrap();
        assert_eq!(f[7], if col < w / 2 { "0" } else { "1" }, "{line}");
    }
}

/// The instrument flow end to end on the simulated PTU image (10 ps
/// channels): describe it, build a model for it with small budgets, map
/// the recording with that model; and bad instrument input refused with
/// the file named and nothing written.
#[test]
fn instrument_build_and_map_with_the_instruments_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    ok(&flimgru(&[
        "simulate",
        "--image",
        "--height",
        "16",
        "--width",
        "16",
        "--seed",
        "3",
        "--out",
        &p("img"),
    ]));
    let ptu = p("img/sample.ptu");
    std::fs::create_dir(d.join("models")).unwrap();
    let out = flimgru(&["instrument", &ptu, "-o", &p("inst.json")]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("estimated from the rising edge"), "{text}");
    let inst: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p("inst.json")).unwrap()).unwrap();
    assert_eq!(inst["format"], "flimgru-instrument");
    assert!((inst["bin_width_ns"].as_f64().unwrap() - 0.01).abs() < 1e-9);
    let fwhm = inst["irf_fwhm_ns"].as_f64().unwrap();
    assert!((0.1..0.6).contains(&fwhm), "IRF FWHM {fwhm}");
    let out = flimgru(&[
        "build",
        "--instrument",
        &p("inst.json"),
        "--out",
        &p("models/scope"),
        "--float-samples",
        "20000",
        "--qat-samples",
        "4000",
        "--eval-pixels",
        "200",
    ]);
    ok(&out);
    for f in [
        "models/scope/instrument.json",
        "models/scope/student-float.json",
        "models/scope/student-w8a12.json",
        "models/scope/student-w8a12.eval.md",
        "models/scope/rtl",
    ] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    ok(&flimgru(&[
        "map",
        &ptu,
        "--model",
        &p("models/scope/student-w8a12.json"),
        "-o",
        &p("m.png"),
    ]));
    // Without --model, map picks the build for this instrument under
    // ./models (also one whose hardware student has the W8 build's name),
    // says which, and maps the same numbers.
    let map_auto = |student: &str, name: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_flimgru"))
            .current_dir(d)
            .args(["map", &ptu, "-o", &format!("{name}.png")])
            .output()
            .unwrap();
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("map: using models/scope/{student}")),
            "{err}"
        );
        assert_eq!(
            std::fs::read(d.join(format!("{name}.npy"))).unwrap(),
            std::fs::read(d.join("m.npy")).unwrap()
        );
    };
    map_auto("student-w8a12.json", "auto");
    std::fs::rename(
        d.join("models/scope/student-w8a12.json"),
        d.join("models/scope/student-8bit.json"),
    )
    .unwrap();
    map_auto("student-8bit.json", "auto8");
    // Bad instrument files: zero bin width, a window longer than the
    // period; a negative IRF sample.
    let mut bad = inst.clone();
    bad["bin_width_ns"] = serde_json::json!(0.0);
    std::fs::write(p("bad.json"), bad.to_string()).unwrap();
    let out = flimgru(&[
        "build",
        "--instrument",
        &p("bad.json"),
        "--out",
        &p("bad-scope"),
    ]);
    fails(&out, &["bad.json", "bin_width_ns"], &d.join("bad-scope"));
    let mut bad = inst.clone();
    bad["period_ns"] = serde_json::json!(2.0);
    std::fs::write(p("bad2.json"), bad.to_string()).unwrap();
    let out = flimgru(&[
        "build",
        "--instrument",
        &p("bad2.json"),
        "--out",
        &p("bad-scope"),
    ]);
    fails(
        &out,
        &["bad2.json", "longer than the laser period"],
        &d.join("bad-scope"),
    );
    std::fs::write(p("irf.asc"), "0 0\n0.1 5\n0.2 -1\n0.3 0\n").unwrap();
    let out = flimgru(&[
        "instrument",
        &ptu,
        "--irf",
        &p("irf.asc"),
        "-o",
        &p("i2.json"),
    ]);
    fails(&out, &["irf.asc", "negative"], &d.join("i2.json"));
}

/// A recording whose IRF is much wider than the model's training IRFs is
/// mapped with a warning that says so; one simulated with the model's own
/// IRFs is not.
#[test]
fn map_warns_of_an_irf_wider_than_the_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("wide.json"),
        r#"{"irf": {"centre_ns": [0.8, 0.9], "fwhm_ns": [0.9, 1.0], "spad_probability": 0.0}}"#,
    )
    .unwrap();
    for (name, spec) in [("wide", Some(p("wide.json"))), ("plain", None)] {
        let out_dir = p(name);
        let mut args = vec![
            "simulate", "--image", "--height", "8", "--width", "8", "--out", &out_dir,
        ];
        if let Some(s) = &spec {
            args.extend(["--spec", s.as_str()]);
        }
        ok(&flimgru(&args));
        let ptu = format!("{out_dir}/sample.ptu");
        let png = p(&format!("{name}.png"));
        let out = flimgru(&["map", &ptu, "-o", &png]);
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.contains("a wider IRF than the model was trained for"),
            spec.is_some(),
            "{name}: {err}"
        );
    }
}

/// A recording too dim for any pixel to reach --min-photons is binned by
/// the smallest square that makes it mappable, and says so; `--binning 0`
/// keeps it unbinned (and refuses, naming the way forward).
#[test]
fn map_bins_a_dim_image_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = tiny_model(d);
    // 12 photons per pixel: a 3 x 3 square holds 108.
    let img = ndarray::Array3::<u32>::from_shape_fn((8, 8, 20), |(_, _, k)| {
        [0, 0, 0, 3, 3, 2, 2, 1, 1].get(k).copied().unwrap_or(0)
    });
    let input = d.join("rec.npy");
    ndarray_npy::write_npy(&input, &img).unwrap();
    let png = d.join("map.png");
    let out = flimgru(&[
        "map",
        input.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
        "--model",
        &model,
    ]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("binned 1") && err.contains("3 x 3"), "{err}");
    let csv = std::fs::read_to_string(d.join("map.csv")).unwrap();
    // Interior pixels sum 9 x 12 photons; corners 4 x 12 = 48 stay masked.
    let row = |r: usize, c: usize| csv.lines().nth(1 + r * 8 + c).unwrap().to_string();
    assert!(row(3, 3).starts_with("3,3,108,"), "{}", row(3, 3));
    assert!(row(0, 0).starts_with("0,0,48,,"), "{}", row(0, 0));
    let unbinned = d.join("unbinned.png");
    fails(
        &flimgru(&[
            "map",
            input.to_str().unwrap(),
            "-o",
            unbinned.to_str().unwrap(),
            "--model",
            &model,
            "--binning",
            "0",
        ]),
        &["rec.npy", "the brightest has 12", "--binning"],
        &unbinned,
    );
}
