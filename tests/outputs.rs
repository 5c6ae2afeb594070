//! `flimgru map`'s outputs users open: the OME-TIFF and the calibrated
//! phasor (CSV columns g, s; `<stem>-phasor.png`), and their bad input.

use flimgru::data::simulate::{simulate, SimSpec};
use flimgru::lifetime::phasor::semicircle;
use std::path::Path;
use std::process::{Command, Output};

fn flimgru(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flimgru"))
        .args(args)
        .output()
        .expect("runs")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {err}");
    err
}

/// Fails naming every needle, without a panic, leaving none of `outputs`.
fn fails(out: &Output, needles: &[&str], outputs: &[&Path]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have failed; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} lacks {n:?}");
    }
    assert!(!err.contains("panicked"), "panic: {err}");
    for o in outputs {
        assert!(!o.exists(), "{} left behind", o.display());
    }
}

/// An 8 x 8 image of mono-exponential pixels (lifetime `tau`, 5,000
/// photons, no background) on the shipped student's grid and laser period
/// (135 gates of 90 ps, 12.5 ns), through a Gaussian IRF of 0.3 ns FWHM at
/// 1 ns; written as `img.npy`, the IRF as `irf.csv` (1 ps samples).
fn mono_image(dir: &Path, tau: f64) {
    let mut spec = SimSpec {
        tau_ns: (tau, tau),
        mono_fraction: 1.0,
        photons: (5000.0, 5000.0),
        background: (0.0, 0.0),
        ..SimSpec::default()
    };
    spec.irf.centre_ns = (1.0, 1.0);
    spec.irf.fwhm_ns = (0.3, 0.3);
    spec.irf.spad_probability = 0.0;
    let data = simulate(&spec, 64, 5).unwrap();
    let img = data.counts.into_shape_with_order((8, 8, 135)).unwrap();
    ndarray_npy::write_npy(dir.join("img.npy"), &img).unwrap();
    let sigma = 0.3 / flimgru::data::irf::FWHM_PER_SIGMA;
    let mut csv = String::from("time_ns,value\n");
    for i in 0..=2000 {
        let t = i as f64 * 0.001;
        let x = (t - 1.0) / sigma;
        csv.push_str(&format!("{t},{}\n", (-0.5 * x * x).exp()));
    }
    std::fs::write(dir.join("irf.csv"), csv).unwrap();
}

/// Mean (g, s) over the unmasked rows of a map CSV.
fn mean_phasor(csv: &Path) -> (f64, f64) {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&head[8..], ["g", "s"], "{head:?}");
    let (mut g, mut s, mut n) = (0.0, 0.0, 0.0);
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if !f[8].is_empty() {
            g += f[8].parse::<f64>().unwrap();
            s += f[9].parse::<f64>().unwrap();
            n += 1.0;
        }
    }
    assert!(n > 0.0, "no phasor in {}", csv.display());
    (g / n, s / n)
}

/// Through the CLI: `--irf` calibrates a mono-exponential image onto the
/// semicircle at its lifetime. The window (12.15 ns) is a little shorter
/// than the period (12.5 ns), and the background level before the rise is
/// subtracted: measured |dG|, |dS| of the mean 0.0017, 0.0000 at 0.5 ns and
/// 0.0035, 0.0020 at 1 ns (asserted < 0.006).
#[test]
fn map_phasor_with_a_measured_irf_lands_on_the_semicircle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = std::f64::consts::TAU / 12.5;
    for tau in [0.5, 1.0] {
        mono_image(d, tau);
        let png = d.join("m.png");
        let err = ok(&flimgru(&[
            "map",
            d.join("img.npy").to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
            "--irf",
            d.join("irf.csv").to_str().unwrap(),
        ]));
        assert!(err.contains("IRF measured, --irf"), "{err}");
        assert!(err.contains("model's training period"), "{err}");
        let (g, s) = mean_phasor(&d.join("m.csv"));
        let t = semicircle(tau, w);
        eprintln!(
            "tau {tau}: g {g:.4} s {s:.4}, semicircle {:.4} {:.4}",
            t.g, t.s
        );
        assert!(
            (g - t.g).abs() < 0.006 && (s - t.s).abs() < 0.006,
            "tau {tau}: ({g}, {s}) vs ({}, {})",
            t.g,
            t.s
        );
        assert_eq!(
            &std::fs::read(d.join("m-phasor.png")).unwrap()[..4],
            b"\x89PNG"
        );
    }
}

#[test]
fn ome_tiff_is_written_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mono_image(d, 1.0);
    let input = d.join("img.npy");
    let run = |sub: &str| {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        let png = d.join(sub).join("m.png");
        ok(&flimgru(&[
            "map",
            input.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
        ]));
        std::fs::read(d.join(sub).join("m.ome.tif")).unwrap()
    };
    let (one, two) = (run("a"), run("b"));
    assert_eq!(one, two, "the same command gave other bytes");
    assert_eq!(&one[..4], b"II*\0");
    let text = String::from_utf8_lossy(&one);
    for needle in [
        "DimensionOrder=\"XYCZT\"",
        "SizeC=\"8\"",
        "Type=\"float\"",
        "Name=\"tau_mean (ns)\"",
        "Name=\"phasor G\"",
        "<MapAnnotation",
    ] {
        assert!(text.contains(needle), "OME-XML lacks {needle}");
    }
    // 8 float32 planes of 8 x 8 and the header.
    assert!(one.len() > 8 * 64 * 4, "{} bytes", one.len());
}

#[test]
fn bad_period_and_irf_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    mono_image(d, 1.0);
    let input = d.join("img.npy");
    let png = d.join("bad.png");
    let outputs = [
        png.clone(),
        d.join("bad.csv"),
        d.join("bad.ome.tif"),
        d.join("bad-phasor.png"),
    ];
    let outs: Vec<&Path> = outputs.iter().map(|p| p.as_path()).collect();
    for p in ["0", "-1", "NaN", "inf"] {
        fails(
            &flimgru(&[
                "map",
                input.to_str().unwrap(),
                "-o",
                png.to_str().unwrap(),
                "--period",
                p,
            ]),
            &["--period"],
            &outs,
        );
    }
    // All zeros: refused by name.
    let zeros = d.join("zeros.csv");
    std::fs::write(&zeros, "0,0\n0.1,0\n0.2,0\n").unwrap();
    // Flat over exactly one period (12.5 ns): its phasor is 0.
    let flat = d.join("flat.csv");
    let mut csv = String::new();
    for i in 0..125 {
        csv.push_str(&format!("{},1\n", (i as f64 + 0.5) * 0.1));
    }
    std::fs::write(&flat, csv).unwrap();
    for (irf, needle) in [(&zeros, "zeros.csv"), (&flat, "flat.csv")] {
        fails(
            &flimgru(&[
                "map",
                input.to_str().unwrap(),
                "-o",
                png.to_str().unwrap(),
                "--irf",
                irf.to_str().unwrap(),
            ]),
            &[needle, "IRF"],
            &outs,
        );
    }
    let e = String::from_utf8_lossy(
        &flimgru(&[
            "map",
            input.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
            "--irf",
            flat.to_str().unwrap(),
        ])
        .stderr,
    )
    .into_owned();
    assert!(e.contains("phasor of modulus"), "{e}");
    // The IRF is an input: an output over it is refused.
    let irf_png = d.join("irf.png");
    let e = flimgru(&[
        "map",
        input.to_str().unwrap(),
        "-o",
        irf_png.to_str().unwrap(),
        "--irf",
        d.join("irf.csv").to_str().unwrap(),
    ]);
    fails(&e, &["irf.csv", "--irf"], &[&irf_png]);
}
