//! File formats: round trips and clean errors that name the file.

use flimgru::data::io::{read_npy_f64, write_f32_npy};
use flimgru::data::{
    read_histograms, read_truth_csv, simulate, write_atomically, write_counts_npy, write_truth_csv,
    Irf, SimSpec,
};
use ndarray::{Array2, Array3};
use std::path::Path;

fn err_of<T: std::fmt::Debug>(r: anyhow::Result<T>, path: &Path) -> String {
    let e = format!("{:#}", r.unwrap_err());
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&name), "error does not name {name}: {e}");
    e
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(!n.contains(".tmp."), "left a temporary file {n}");
    }
}

#[test]
fn counts_and_truth_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = simulate(&SimSpec::default(), 50, 3).unwrap();
    let p = dir.path().join("counts.npy");
    write_counts_npy(&p, &d.counts).unwrap();
    let h = read_histograms(&p).unwrap();
    assert_eq!(h.shape, None);
    assert_eq!(h.counts, d.counts.mapv(|c| c as f32));
    let t = dir.path().join("truth.csv");
    write_truth_csv(&t, &d.truth).unwrap();
    assert_eq!(read_truth_csv(&t).unwrap(), d.truth);
    no_temp_files(dir.path());
}

#[test]
fn npy_dtypes_and_ranks_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let base = Array2::from_shape_fn((4, 20), |(i, k)| (i * 20 + k) as u16);
    let expect = base.mapv(|v| v as f32);
    macro_rules! case {
        ($t:ty, $name:expr) => {{
            let p = dir.path().join($name);
            ndarray_npy::write_npy(&p, &base.mapv(|v| v as $t)).unwrap();
            let h = read_histograms(&p).unwrap();
            assert_eq!(h.counts, expect, "{}", $name);
        }};
    }
    case!(u8, "u8.npy");
    case!(u16, "u16.npy");
    case!(u32, "u32.npy");
    case!(u64, "u64.npy");
    case!(i16, "i16.npy");
    case!(i32, "i32.npy");
    case!(i64, "i64.npy");
    case!(f32, "f32.npy");
    case!(f64, "f64.npy");
    // 3-D image [h, w, G]
    let img = Array3::from_shape_fn((2, 3, 20), |(y, x, k)| (y * 60 + x * 20 + k) as f32);
    let p = dir.path().join("img.npy");
    write_f32_npy(&p, &img).unwrap();
    let h = read_histograms(&p).unwrap();
    assert_eq!(h.shape, Some((2, 3)));
    assert_eq!(h.counts.dim(), (6, 20));
    assert_eq!(h.counts[[4, 7]], img[[1, 1, 7]]);
    // Fortran order
    let p = dir.path().join("fortran.npy");
    ndarray_npy::write_npy(&p, &expect.t().as_standard_layout().reversed_axes()).unwrap();
    assert_eq!(read_histograms(&p).unwrap().counts, expect);
}

#[test]
fn csv_with_and_without_header() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.csv");
    std::fs::write(&p, "g0,g1,g2\n1,2,3\n4,5.5,6\n").unwrap();
    let h = read_histograms(&p).unwrap();
    assert_eq!(h.counts, ndarray::arr2(&[[1.0, 2.0, 3.0], [4.0, 5.5, 6.0]]));
    std::fs::write(&p, "1,2,3\n4,5,6\n").unwrap();
    assert_eq!(read_histograms(&p).unwrap().counts.dim(), (2, 3));
}

fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

#[test]
fn bad_files_are_clean_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // truncated npy
    let good = dir.path().join("good.npy");
    write_counts_npy(&good, &Array2::<u32>::ones((10, 20))).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let p = w("truncated.npy", &bytes[..bytes.len() - 7]);
    assert!(err_of(read_histograms(&p), &p).contains("truncated"));
    let p = w("header_cut.npy", &bytes[..20]);
    err_of(read_histograms(&p), &p);
    // wrong magic
    let p = w("magic.npy", b"NOTNUMPY and some more bytes here");
    assert!(err_of(read_histograms(&p), &p).contains("magic"));
    // huge claimed shape: must fail before allocating
    let p = w(
        "huge.npy",
        &npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000000, 135), }",
            &[0u8; 64],
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("truncated"));
    let p = w(
        "overflow.npy",
        &npy_with_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615), }",
            &[],
        ),
    );
    err_of(read_histograms(&p), &p);
    // NaN and negative
    let nan = [1.0f32, f32::NAN, 2.0, 3.0];
    let p = w(
        "nan.npy",
        &npy_with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
            &nan.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("not finite"));
    let neg = [1i16, -2, 3, 4];
    let p = w(
        "neg.npy",
        &npy_with_header(
            "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 2), }",
            &neg.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("negative"));
    // wrong rank, zero pixels, unsupported dtype, trailing bytes
    let p = w(
        "rank1.npy",
        &npy_with_header(
            "{'descr': '<u1', 'fortran_order': False, 'shape': (4,), }",
            &[1, 2, 3, 4],
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("shape"));
    let p = w(
        "zero.npy",
        &npy_with_header(
            "{'descr': '<u1', 'fortran_order': False, 'shape': (0, 135), }",
            &[],
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("zero pixels"));
    let p = w(
        "complex.npy",
        &npy_with_header(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 1), }",
            &[0; 8],
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("dtype"));
    let p = w(
        "trailing.npy",
        &npy_with_header(
            "{'descr': '<u1', 'fortran_order': False, 'shape': (1, 2), }",
            &[1, 2, 3],
        ),
    );
    assert!(err_of(read_histograms(&p), &p).contains("trailing"));
    // empty files, missing file, csv problems
    let p = w("empty.npy", b"");
    assert!(err_of(read_histograms(&p), &p).contains("empty"));
    let p = w("empty.csv", b"");
    assert!(err_of(read_histograms(&p), &p).contains("empty"));
    let p = dir.path().join("missing.npy");
    err_of(read_histograms(&p), &p);
    let p = w("ragged.csv", b"1,2,3\n4,5\n");
    assert!(err_of(read_histograms(&p), &p).contains("columns"));
    let p = w("negative.csv", b"1,2,3\n4,-5,6\n");
    assert!(err_of(read_histograms(&p), &p).contains("negative"));
    let p = w("nan.csv", b"1,2,3\n4,NaN,6\n");
    assert!(err_of(read_histograms(&p), &p).contains("not finite"));
    let p = w("text.csv", b"a,b\n1,x\n");
    err_of(read_histograms(&p), &p);
    let p = w("data.bin", b"123");
    err_of(read_histograms(&p), &p);
    let p = w("bad_truth.csv", b"tau1,tau2\n1,2\n");
    err_of(read_truth_csv(&p), &p);
}

#[test]
fn atomic_write_leaves_nothing_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.npy");
    std::fs::write(&p, b"old").unwrap();
    let r = write_atomically(&p, |tmp| {
        std::fs::write(tmp, b"half")?;
        anyhow::bail!("writer failed")
    });
    assert!(r.is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    no_temp_files(dir.path());
    write_atomically(&p, |tmp| Ok(std::fs::write(tmp, b"new")?)).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"new");
    no_temp_files(dir.path());
}

#[test]
fn measured_irf_files() {
    let dir = tempfile::tempdir().unwrap();
    let vals: Vec<f64> = (0..50)
        .map(|i| (-(i as f64 - 12.0).powi(2) / 6.0).exp())
        .collect();
    let csv = dir.path().join("irf.csv");
    let mut s = String::from("time_ns,value\n");
    for (i, v) in vals.iter().enumerate() {
        s.push_str(&format!("{},{}\n", i as f64 * 0.09, v));
    }
    std::fs::write(&csv, s).unwrap();
    let a = Irf::load(&csv, None).unwrap();
    assert!((a.centre_ns() - 12.0 * 0.09).abs() < 1e-6);
    let npy = dir.path().join("irf.npy");
    ndarray_npy::write_npy(&npy, &ndarray::Array1::from(vals.clone())).unwrap();
    let b = Irf::load(&npy, Some(0.09)).unwrap();
    assert!((b.centre_ns() - a.centre_ns()).abs() < 1e-9);
    err_of(Irf::load(&npy, None), &npy);
    let (shape, back) = read_npy_f64(&npy).unwrap();
    assert_eq!((shape, back), (vec![50], vals));
    // a simulation on the measured IRF, shifted per pixel
    let spec = SimSpec {
        irf: flimgru::data::irf::IrfSpec {
            measured: Some(flimgru::data::irf::MeasuredIrfSpec {
                samples: None,
                path: csv.clone(),
                spacing_ns: None,
                shift_ns: (-0.2, 0.2),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let d = simulate(&spec, 100, 1).unwrap();
    for t in &d.truth {
        assert!((t.irf_centre - 1.08).abs() <= 0.2 + 1e-9);
    }
    let missing = SimSpec {
        irf: flimgru::data::irf::IrfSpec {
            measured: Some(flimgru::data::irf::MeasuredIrfSpec {
                samples: None,
                path: dir.path().join("nope.csv"),
                spacing_ns: None,
                shift_ns: (0.0, 0.0),
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(format!("{:#}", simulate(&missing, 10, 1).unwrap_err()).contains("nope.csv"));
    let bad = dir.path().join("bad_irf.csv");
    std::fs::write(&bad, "0,1\n0.1,-1\n0.2,0\n").unwrap();
    assert!(err_of(Irf::load(&bad, None), &bad).contains("negative"));
    std::fs::write(&bad, "0,0\n0.1,0\n").unwrap();
    err_of(Irf::load(&bad, None), &bad);
    std::fs::write(&bad, "0,1\n0.1,2\n0.5,1\n").unwrap();
    assert!(err_of(Irf::load(&bad, None), &bad).contains("uniformly"));
}
