//! FLIM file formats: round trips through the project's own writers and
//! corrupted variants that must fail cleanly, naming the file.

use flimgru::data::formats::{
    read_recording, read_recording_with, write_phu, write_ptu_t3_counts, write_ptu_t3_image,
    write_sdt, PtuRecordType, PtuT3Spec, ReadOptions,
};
use ndarray::{Array2, Array3};
use std::path::Path;

fn err_of<T: std::fmt::Debug>(r: anyhow::Result<T>, path: &Path) -> String {
    let e = format!("{:#}", r.unwrap_err());
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    assert!(e.contains(&name), "error does not name {name}: {e}");
    e
}

/// Deterministic pseudo-random counts with a decay-like shape.
fn counts(h: usize, w: usize, bins: usize, seed: u64) -> Array3<u32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    Array3::from_shape_fn((h, w, bins), |(y, x, k)| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = (40.0 * (-(k as f64) / 20.0).exp()) as u64 + (y + x) as u64 % 3;
        ((s >> 33) % (base + 1)) as u32
    })
}

fn patch(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

/// Offset of the 8-byte value of PTU tag `name`.
fn tag_value_at(bytes: &[u8], name: &str) -> usize {
    let mut ident = [0u8; 32];
    ident[..name.len()].copy_from_slice(name.as_bytes());
    let i = bytes
        .windows(32)
        .position(|w| w == ident)
        .unwrap_or_else(|| panic!("no tag {name}"));
    i + 40
}

#[test]
fn ptu_round_trip_all_record_types() {
    let dir = tempfile::tempdir().unwrap();
    for (i, rt) in [
        PtuRecordType::PicoHarpT3,
        PtuRecordType::HydraHarpT3,
        PtuRecordType::HydraHarp2T3,
    ]
    .into_iter()
    .enumerate()
    {
        let c = counts(5, 7, 64, i as u64);
        let mut spec = PtuT3Spec::new(7, 5, 0.05, 3.2);
        spec.record_type = rt;
        // Long dwell and flyback so the sync counter overflows many times.
        spec.pixel_syncs = 70_000;
        spec.flyback_syncs = 3000;
        let p = dir.path().join(format!("img{i}.ptu"));
        write_ptu_t3_counts(&p, &spec, c.view()).unwrap();
        let r = read_recording(&p).unwrap();
        assert_eq!(r.counts, c, "{rt:?}");
        assert!((r.bin_width_ns - 0.05).abs() < 1e-12);
        assert!((r.period_ns.unwrap() - 3.2).abs() < 1e-9);
        assert!(r.source.contains("T3 image"), "{}", r.source);
    }
}

#[test]
fn ptu_frames_are_summed_and_binning_works() {
    let dir = tempfile::tempdir().unwrap();
    let (h, w) = (3, 4);
    let spec = PtuT3Spec::new(w, h, 0.01, 1.0); // 100 channels
    let mut photons = Vec::new();
    let mut expect = Array3::<u32>::zeros((h, w, 100));
    for f in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let list: Vec<u16> = (0..(f + y + x) as u16)
                    .map(|j| (j * 7 + x as u16) % 100)
                    .collect();
                for &d in &list {
                    expect[[y, x, d as usize]] += 1;
                }
                photons.push(list);
            }
        }
    }
    let p = dir.path().join("frames.ptu");
    write_ptu_t3_image(&p, &spec, &photons).unwrap();
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, expect);
    assert!(
        r.notes.iter().any(|n| n.contains("3 frame(s)")),
        "{:?}",
        r.notes
    );
    let opts = ReadOptions {
        dtime_binning: 8,
        ..ReadOptions::default()
    };
    let b = read_recording_with(&p, &opts).unwrap();
    assert_eq!(b.bins(), 13);
    assert!((b.bin_width_ns - 0.08).abs() < 1e-12);
    for y in 0..h {
        for x in 0..w {
            for k in 0..13 {
                let s: u32 = (8 * k..(8 * k + 8).min(100))
                    .map(|d| expect[[y, x, d]])
                    .sum();
                assert_eq!(b.counts[[y, x, k]], s);
            }
        }
    }
}

#[test]
fn sdt_round_trip_u16_and_u32() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(6, 9, 256, 4);
    let p = dir.path().join("a.sdt");
    write_sdt(&p, c.view(), 0.0488).unwrap();
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, c);
    assert!((r.bin_width_ns - 0.0488).abs() < 1e-6, "{}", r.bin_width_ns);
    let mut big = counts(2, 3, 16, 5);
    big[[1, 2, 3]] = 100_000;
    let p = dir.path().join("b.sdt");
    write_sdt(&p, big.view(), 0.1).unwrap();
    assert_eq!(read_recording(&p).unwrap().counts, big);
}

#[test]
fn phu_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let c = Array2::from_shape_fn((3, 50), |(i, k)| (i * 100 + k) as u32);
    let p = dir.path().join("h.phu");
    write_phu(&p, c.view(), 0.025).unwrap();
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts.shape(), &[1, 3, 50]);
    assert_eq!(r.counts.index_axis(ndarray::Axis(0), 0), c);
    assert!((r.bin_width_ns - 0.025).abs() < 1e-12);
}

#[test]
fn npy_recording_needs_a_bin_width() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(4, 5, 20, 1);
    let p = dir.path().join("c.npy");
    ndarray_npy::write_npy(&p, &c).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("bin width"), "{e}");
    let opts = ReadOptions {
        bin_width_ns: Some(0.09),
        ..ReadOptions::default()
    };
    let r = read_recording_with(&p, &opts).unwrap();
    assert_eq!(r.counts, c);
}

fn sample_ptu(dir: &Path, name: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    let spec = PtuT3Spec::new(8, 6, 0.05, 5.0);
    write_ptu_t3_counts(&p, &spec, counts(6, 8, 100, 9).view()).unwrap();
    p
}

#[test]
fn truncated_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ptu = sample_ptu(dir.path(), "t.ptu");
    let sdt = dir.path().join("t.sdt");
    write_sdt(&sdt, counts(6, 8, 64, 2).view(), 0.1).unwrap();
    let phu = dir.path().join("t.phu");
    write_phu(&phu, Array2::from_elem((2, 40), 3u32).view(), 0.1).unwrap();
    for p in [&ptu, &sdt, &phu] {
        let full = std::fs::read(p).unwrap();
        let n = full.len();
        for cut in [0, 5, 8, 20, 47, 100, 300, n / 2, n - 3, n - 1] {
            let q = dir.path().join(format!(
                "cut{cut}.{}",
                p.extension().unwrap().to_str().unwrap()
            ));
            std::fs::write(&q, &full[..cut]).unwrap();
            let e = err_of(read_recording(&q), &q);
            assert!(
                e.contains("truncated") || e.contains("empty") || e.contains("not a"),
                "cut {cut} of {}: {e}",
                p.display()
            );
        }
    }
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let p = sample_ptu(dir.path(), "m.ptu");
    patch(&p, |b| b[..6].copy_from_slice(b"PQXXXX"));
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("bad magic"), "{e}");
    // A PTU named .phu is refused by the PHU reader.
    let q = dir.path().join("m2.phu");
    std::fs::copy(sample_ptu(dir.path(), "m3.ptu"), &q).unwrap();
    assert!(err_of(read_recording(&q), &q).contains("bad magic"));
    // Random bytes named .sdt.
    let s = dir.path().join("m.sdt");
    std::fs::write(&s, vec![7u8; 4000]).unwrap();
    let e = err_of(read_recording(&s), &s);
    assert!(e.contains("not a Becker & Hickl SDT file"), "{e}");
}

#[test]
fn unsupported_record_type() {
    let dir = tempfile::tempdir().unwrap();
    let p = sample_ptu(dir.path(), "rt.ptu");
    patch(&p, |b| {
        let o = tag_value_at(b, "TTResultFormat_TTTRRecType");
        b[o..o + 8].copy_from_slice(&0x0001_0203i64.to_le_bytes()); // PicoHarp T2
    });
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("unsupported record type 0x00010203"), "{e}");
    assert!(e.contains("T2"), "{e}");
    let q = sample_ptu(dir.path(), "rt2.ptu");
    patch(&q, |b| {
        let o = tag_value_at(b, "TTResultFormat_TTTRRecType");
        b[o..o + 8].copy_from_slice(&0x0042_4242i64.to_le_bytes());
    });
    assert!(err_of(read_recording(&q), &q).contains("unsupported record type"));
}

#[test]
fn absurd_dimensions_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    // PTU claiming 10^9 pixels per side, and 40000 x 40000 pixels.
    for (i, (x, y)) in [(1_000_000_000i64, 1i64), (40_000, 40_000), (-5, 4)]
        .into_iter()
        .enumerate()
    {
        let p = sample_ptu(dir.path(), &format!("big{i}.ptu"));
        patch(&p, |b| {
            let o = tag_value_at(b, "ImgHdr_PixX");
            b[o..o + 8].copy_from_slice(&x.to_le_bytes());
            let o = tag_value_at(b, "ImgHdr_PixY");
            b[o..o + 8].copy_from_slice(&y.to_le_bytes());
        });
        let e = err_of(read_recording(&p), &p);
        assert!(e.contains("plausible") || e.contains("accepted"), "{e}");
    }
    // PTU claiming 2^40 records.
    let p = sample_ptu(dir.path(), "records.ptu");
    patch(&p, |b| {
        let o = tag_value_at(b, "TTResult_NumberOfRecords");
        b[o..o + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    });
    assert!(err_of(read_recording(&p), &p).contains("truncated"));
    // PTU string tag claiming 2^31 bytes.
    let p = sample_ptu(dir.path(), "string.ptu");
    patch(&p, |b| {
        let o = tag_value_at(b, "File_Comment");
        b[o..o + 8].copy_from_slice(&(1i64 << 31).to_le_bytes());
    });
    assert!(err_of(read_recording(&p), &p).contains("claims"));
    // SDT claiming 2^31 bins / a huge image.
    let s = dir.path().join("big.sdt");
    write_sdt(&s, counts(2, 2, 8, 1).view(), 0.1).unwrap();
    let full = std::fs::read(&s).unwrap();
    let meas_offs = i32::from_le_bytes(full[24..28].try_into().unwrap()) as usize;
    let s2 = dir.path().join("big2.sdt");
    let mut b = full.clone();
    b[meas_offs + 82..meas_offs + 84].copy_from_slice(&(-1i16).to_le_bytes());
    std::fs::write(&s2, &b).unwrap();
    assert!(err_of(read_recording(&s2), &s2).contains("ADC resolution"));
    let s3 = dir.path().join("big3.sdt");
    let mut b = full.clone();
    for o in [173, 177, 309, 313] {
        b[meas_offs + o..meas_offs + o + 4].copy_from_slice(&100_000i32.to_le_bytes());
    }
    // Block length to match 10^10 pixels x 8 bins would not fit u32; claim
    // a block far beyond the file instead.
    let block = i32::from_le_bytes(full[14..18].try_into().unwrap()) as usize;
    b[block + 18..block + 22].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&s3, &b).unwrap();
    let e = err_of(read_recording(&s3), &s3);
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn zero_photon_images_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let z = Array3::<u32>::zeros((4, 4, 32));
    let p = dir.path().join("z.ptu");
    write_ptu_t3_counts(&p, &PtuT3Spec::new(4, 4, 0.1, 3.2), z.view()).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("no photons"), "{e}");
    let s = dir.path().join("z.sdt");
    write_sdt(&s, z.view(), 0.1).unwrap();
    assert!(err_of(read_recording(&s), &s).contains("no photons"));
    let n = dir.path().join("z.npy");
    ndarray_npy::write_npy(&n, &z).unwrap();
    let opts = ReadOptions {
        bin_width_ns: Some(0.1),
        ..ReadOptions::default()
    };
    assert!(err_of(read_recording_with(&n, &opts), &n).contains("no photons"));
}

#[test]
fn too_large_histogram_asks_for_binning() {
    let dir = tempfile::tempdir().unwrap();
    // 16384 x 16384 pixels x 1250 channels: refused, with the reason.
    let p = sample_ptu(dir.path(), "huge.ptu");
    patch(&p, |b| {
        for t in ["ImgHdr_PixX", "ImgHdr_PixY"] {
            let o = tag_value_at(b, t);
            b[o..o + 8].copy_from_slice(&16384i64.to_le_bytes());
        }
    });
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("bin the time axis"), "{e}");
}

#[test]
fn corrupted_bytes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ptu = sample_ptu(dir.path(), "f.ptu");
    let sdt = dir.path().join("f.sdt");
    write_sdt(&sdt, counts(3, 4, 32, 2).view(), 0.1).unwrap();
    let phu = dir.path().join("f.phu");
    write_phu(&phu, Array2::from_elem((2, 40), 3u32).view(), 0.1).unwrap();
    let mut s = 12345u64;
    for p in [&ptu, &sdt, &phu] {
        let full = std::fs::read(p).unwrap();
        for i in 0..300 {
            let mut b = full.clone();
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let at = (s >> 33) as usize % b.len().min(1200);
                b[at] = (s >> 20) as u8;
            }
            let q = dir
                .path()
                .join(format!("x{i}.{}", p.extension().unwrap().to_str().unwrap()));
            std::fs::write(&q, &b).unwrap();
            if let Err(e) = read_recording(&q) {
                let e = format!("{e:#}");
                assert!(e.contains(&format!("x{i}.")), "{e}");
            }
        }
    }
}

#[test]
fn sample_image_is_deterministic_and_round_trips_through_ptu_and_npy() {
    use flimgru::data::image::{
        ptu_channels_per_gate, simulate_image, write_image_sample, BACKGROUND, CYTOPLASM, NUCLEUS,
    };
    let spec = flimgru::data::SimSpec::default();
    let a = simulate_image(&spec, 24, 32, 3).unwrap();
    let b = simulate_image(&spec, 24, 32, 3).unwrap();
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.truth, b.truth);
    assert_ne!(simulate_image(&spec, 24, 32, 4).unwrap().counts, a.counts);
    assert_eq!(a.counts.shape(), &[24, 32, 135]);
    for label in [BACKGROUND, CYTOPLASM, NUCLEUS] {
        assert!(a.region.iter().any(|&r| r == label), "no region {label}");
    }
    // Background is dim, cells bright; truth photons are the pixel sums.
    let mean = |l: u8| {
        let v: Vec<f64> = a
            .region
            .iter()
            .zip(&a.truth)
            .filter(|(r, _)| **r == l)
            .map(|(_, t)| t.photons as f64)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(BACKGROUND) * 10.0 < mean(CYTOPLASM));
    for (i, t) in a.truth.iter().enumerate() {
        let (y, x) = (i / 32, i % 32);
        assert_eq!(
            t.photons,
            a.counts.slice(ndarray::s![y, x, ..]).sum() as u64
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let files = write_image_sample(&a, dir.path(), "sample", 3).unwrap();
    let k = ptu_channels_per_gate(&spec.grid, spec.period_ns);
    assert_eq!(k, 9);
    let opts = ReadOptions {
        dtime_binning: k,
        ..ReadOptions::default()
    };
    let r = read_recording_with(&files.ptu, &opts).unwrap();
    assert!((r.bin_width_ns - 0.09).abs() < 1e-9);
    assert_eq!(r.counts.slice(ndarray::s![.., .., ..135]), a.counts);
    assert!(r
        .counts
        .slice(ndarray::s![.., .., 135..])
        .iter()
        .all(|&c| c == 0));
    let opts = ReadOptions {
        bin_width_ns: Some(0.09),
        ..ReadOptions::default()
    };
    assert_eq!(
        read_recording_with(&files.npy, &opts).unwrap().counts,
        a.counts
    );
    assert_eq!(
        flimgru::data::read_truth_csv(&files.truth).unwrap(),
        a.truth
    );
    // Same seed, same bytes.
    let again = tempfile::tempdir().unwrap();
    let f2 = write_image_sample(&b, again.path(), "sample", 3).unwrap();
    assert_eq!(
        std::fs::read(&files.ptu).unwrap(),
        std::fs::read(&f2.ptu).unwrap()
    );
}
