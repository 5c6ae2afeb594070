//! FLIM file formats: round trips through the project's own writers and
//! corrupted variants that must fail cleanly, naming the file.

use flimgru::data::formats::{
    read_recording, read_recording_with, write_phu, write_ptu_t3_counts, write_ptu_t3_image,
    write_sdt, write_sdt_with, PtuRecordType, PtuT3Spec, ReadOptions, SdtBlock, SdtCompression,
    SdtWriteOptions,
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
    let zsdt = dir.path().join("fz.sdt");
    let c = counts(3, 4, 32, 2);
    let d = counts(1, 2, 32, 3);
    write_sdt_with(
        &zsdt,
        &[block(&d, 0x00), block(&c, 0x60)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::Zip),
    )
    .unwrap();
    let mut s = 12345u64;
    for p in [&ptu, &sdt, &phu, &zsdt] {
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

// ---------------------------------------------------------------------------
// Real-world variants, reproduced synthetically.

/// Offset of the 32-byte name field of PTU tag `name`.
fn tag_name_at(bytes: &[u8], name: &str) -> usize {
    tag_value_at(bytes, name) - 40
}

fn set_tag_name(bytes: &mut [u8], at: usize, raw: &[u8]) {
    let mut ident = [0u8; 32];
    ident[..raw.len()].copy_from_slice(raw);
    bytes[at..at + 32].copy_from_slice(&ident);
}

#[test]
fn ptu_tag_names_with_control_bytes_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let expect = counts(6, 8, 100, 9);
    // SymPhoTime 64 writes "\x02HWInpChan_CFDLeveld": an unused tag here.
    let p = sample_ptu(dir.path(), "sympho.ptu");
    patch(&p, |b| {
        let at = tag_name_at(b, "ImgHdr_SinCorrection");
        set_tag_name(b, at, b"\x02HWInpChan_CFDLeveld");
    });
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, expect);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("\\x02HWInpChan_CFDLeveld")
                && n.contains("read as HWInpChan_CFDLeveld")),
        "{:?}",
        r.notes
    );
    // A tag the reader uses, with control bytes and spaces around its name,
    // is still found.
    let p = sample_ptu(dir.path(), "used.ptu");
    patch(&p, |b| {
        let at = tag_name_at(b, "ImgHdr_PixX");
        set_tag_name(b, at, b"\x02ImgHdr_PixX \x7F");
    });
    assert_eq!(read_recording(&p).unwrap().counts, expect);
    // A garbled name inside an unused tag is kept aside and noted.
    let p = sample_ptu(dir.path(), "garbled.ptu");
    patch(&p, |b| {
        let at = tag_name_at(b, "ImgHdr_Ident");
        set_tag_name(b, at, b"ImgHdr\xFF\x01Ident");
    });
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, expect);
    assert!(
        r.notes.iter().any(|n| n.contains("garbled name")),
        "{:?}",
        r.notes
    );
    // A nameless tag (nothing but control bytes) is a corrupt header.
    for raw in [&b""[..], b"\x02\x03  "] {
        let p = sample_ptu(dir.path(), "nameless.ptu");
        patch(&p, |b| {
            let at = tag_name_at(b, "ImgHdr_Ident");
            set_tag_name(b, at, raw);
        });
        let e = err_of(read_recording(&p), &p);
        assert!(
            e.contains("empty name") && e.contains("corrupt header"),
            "{e}"
        );
    }
    // As is a known name with an unknown tag type.
    let p = sample_ptu(dir.path(), "badtype.ptu");
    patch(&p, |b| {
        let at = tag_name_at(b, "ImgHdr_Ident");
        b[at + 36..at + 40].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    });
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("unknown type 0x12345678"), "{e}");
}

fn block(counts: &Array3<u32>, content: u16) -> SdtBlock<'_> {
    SdtBlock {
        counts: counts.view(),
        content,
    }
}

fn sdt_opts(id: &str, compression: SdtCompression) -> SdtWriteOptions {
    SdtWriteOptions {
        info_id: id.to_string(),
        compression,
    }
}

const SETUP_DATA: &str = "SPC Setup & Data File";

#[test]
fn sdt_zip_and_zlib_compressed_blocks_read() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(6, 9, 256, 4);
    for (k, comp) in [SdtCompression::Zip, SdtCompression::Zlib]
        .into_iter()
        .enumerate()
    {
        let p = dir.path().join(format!("z{k}.sdt"));
        write_sdt_with(&p, &[block(&c, 0x10)], 0.039, &sdt_opts(SETUP_DATA, comp)).unwrap();
        // Compression did something.
        assert!(std::fs::metadata(&p).unwrap().len() < (6 * 9 * 256 * 2) as u64);
        let r = read_recording(&p).unwrap();
        assert_eq!(r.counts, c, "{comp:?}");
        assert!(r.source.contains("zip-compressed"), "{}", r.source);
        assert!((r.bin_width_ns - 0.039).abs() < 1e-6);
    }
    // The zip archive is whole (other readers such as Python's zipfile go
    // through its central directory): the end record points at a central
    // directory entry for `data_block`.
    let b = std::fs::read(dir.path().join("z0.sdt")).unwrap();
    let (_, _, data) = sdt_offsets(&b);
    let zip = &b[data..];
    let eocd = zip.len() - 22;
    assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
    let cd_len = u32::from_le_bytes(zip[eocd + 12..eocd + 16].try_into().unwrap()) as usize;
    let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    assert_eq!(&zip[cd..cd + 4], b"PK\x01\x02");
    assert_eq!(cd_len, 46 + "data_block".len());
    assert_eq!(&zip[cd + 46..cd + 56], b"data_block");
    assert_eq!(cd + cd_len, eocd);
    // u32 counts too.
    let mut big = counts(2, 3, 16, 5);
    big[[1, 2, 3]] = 100_000;
    let p = dir.path().join("wide.sdt");
    write_sdt_with(
        &p,
        &[block(&big, 0x60)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::Zip),
    )
    .unwrap();
    assert_eq!(read_recording(&p).unwrap().counts, big);
}

/// Offsets in a one-block SDT written by `write_sdt_with`: (measurement
/// description, block header, data).
fn sdt_offsets(b: &[u8]) -> (usize, usize, usize) {
    let meas = i32::from_le_bytes(b[24..28].try_into().unwrap()) as usize;
    let block = i32::from_le_bytes(b[14..18].try_into().unwrap()) as usize;
    let data = i32::from_le_bytes(b[block + 2..block + 6].try_into().unwrap()) as usize;
    (meas, block, data)
}

/// Claim a 4 x 4 image (1024 bytes of u16 counts at 32 bins) where 4 x 5
/// are stored: shape and declared length agree, the data does not.
fn claim_4x4(b: &mut [u8]) {
    let (meas, block, _) = sdt_offsets(b);
    for o in [173, 177, 309, 313] {
        b[meas + o..meas + o + 4].copy_from_slice(&4i32.to_le_bytes());
    }
    b[block + 18..block + 22].copy_from_slice(&1024u32.to_le_bytes());
}

#[test]
fn corrupt_compressed_blocks_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let c = counts(4, 5, 32, 7); // 1280 bytes of u16
    let zip = dir.path().join("zip.sdt");
    write_sdt_with(
        &zip,
        &[block(&c, 0x60)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::Zip),
    )
    .unwrap();
    let zlib = dir.path().join("zlib.sdt");
    write_sdt_with(
        &zlib,
        &[block(&c, 0x60)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::Zlib),
    )
    .unwrap();
    let full_zip = std::fs::read(&zip).unwrap();
    let full_zlib = std::fs::read(&zlib).unwrap();

    // The zip entry's size disagrees with the block header.
    let p = dir.path().join("size1.sdt");
    let mut b = full_zip.clone();
    claim_4x4(&mut b);
    std::fs::write(&p, &b).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(
        e.contains("zip entry holds 1280 bytes") && e.contains("declares 1024"),
        "{e}"
    );
    // ... and when the zip header is made to agree, the data still holds more.
    let p = dir.path().join("size2.sdt");
    let (_, _, data) = sdt_offsets(&b);
    b[data + 22..data + 26].copy_from_slice(&1024u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("more than the 1024 bytes"), "{e}");
    // A zlib stream has no size of its own: inflating stops at the declared size.
    let p = dir.path().join("size3.sdt");
    let mut b = full_zlib.clone();
    claim_4x4(&mut b);
    std::fs::write(&p, &b).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("more than the 1024 bytes"), "{e}");
    // Declared larger than the data: "inflates to 1280 bytes, declares 1600".
    let p = dir.path().join("size4.sdt");
    let mut b = full_zlib.clone();
    let (meas, block, _) = sdt_offsets(&b);
    for o in [177, 313] {
        // scan_y, image_y: 5 rows of 5.
        b[meas + o..meas + o + 4].copy_from_slice(&5i32.to_le_bytes());
    }
    b[block + 18..block + 22].copy_from_slice(&1600u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(
        e.contains("inflates to 1280 bytes") && e.contains("declares 1600"),
        "{e}"
    );

    // Truncated inside the compressed data.
    for (k, full) in [&full_zip, &full_zlib].into_iter().enumerate() {
        let (_, _, data) = sdt_offsets(full);
        for cut in [data + 2, data + 20, data + 40, (data + full.len()) / 2] {
            let p = dir.path().join(format!("cut{k}_{cut}.sdt"));
            std::fs::write(&p, &full[..cut]).unwrap();
            let e = err_of(read_recording(&p), &p);
            assert!(
                e.contains("truncated") || e.contains("corrupt"),
                "cut {cut}: {e}"
            );
        }
    }
    // Flipped bytes in the compressed data: an error (inflate, size or
    // checksum), never a panic or wrong counts.
    let mut s = 99u64;
    for (k, full) in [&full_zip, &full_zlib].into_iter().enumerate() {
        let (_, _, data) = sdt_offsets(full);
        let start = data + if k == 0 { 40 } else { 2 };
        let end = if k == 0 { full.len() - 100 } else { full.len() };
        for i in 0..60 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = start + (s >> 33) as usize % (end - start);
            let mut b = full.clone();
            b[at] ^= 1 << ((s >> 20) % 8);
            let p = dir.path().join(format!("flip{k}_{i}.sdt"));
            std::fs::write(&p, &b).unwrap();
            match read_recording(&p) {
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains(&format!("flip{k}_{i}.sdt")), "{e}");
                }
                Ok(r) => assert_eq!(r.counts, c, "flip {k} {i} at {at}: wrong counts accepted"),
            }
        }
    }
    // Neither zip nor zlib.
    let p = dir.path().join("junk.sdt");
    let mut b = full_zlib.clone();
    let (_, _, data) = sdt_offsets(&b);
    b[data..data + 4].copy_from_slice(b"JUNK");
    std::fs::write(&p, &b).unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("neither a zip archive nor a zlib stream"), "{e}");
}

#[test]
fn sdt_fcs_info_with_an_image_block_reads() {
    let dir = tempfile::tempdir().unwrap();
    let fcs = Array3::from_shape_fn((1, 1, 64), |(_, _, k)| k as u32);
    let img = counts(5, 4, 64, 3);
    let p = dir.path().join("fcs.sdt");
    write_sdt_with(
        &p,
        &[block(&fcs, 0x20), block(&img, 0x60)],
        0.05,
        &sdt_opts("SPC FCS Data File", SdtCompression::Zip),
    )
    .unwrap();
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, img);
    let notes = r.notes.join(" | ");
    assert!(notes.contains("SPC FCS Data File"), "{notes}");
    assert!(notes.contains("2 data blocks"), "{notes}");
    assert!(notes.contains("0: not read (a FCS block"), "{notes}");
    assert!(
        notes.contains("1: image 5 x 4 x 64 u16, compressed [read]"),
        "{notes}"
    );
    // An FCS file of FCS blocks only: refused, saying what the blocks are.
    let p = dir.path().join("fcsonly.sdt");
    write_sdt_with(
        &p,
        &[block(&fcs, 0x20)],
        0.05,
        &sdt_opts("SPC FCS Data File", SdtCompression::None),
    )
    .unwrap();
    let e = err_of(read_recording(&p), &p);
    assert!(e.contains("cannot be read: a FCS block"), "{e}");
}

#[test]
fn sdt_several_blocks_are_listed_and_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let decay = counts(1, 3, 32, 1);
    let a = counts(4, 5, 32, 2);
    let b = counts(4, 5, 32, 3);
    let p = dir.path().join("multi.sdt");
    write_sdt_with(
        &p,
        &[block(&decay, 0x00), block(&a, 0x60), block(&b, 0x10)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::None),
    )
    .unwrap();
    // Default: the first image block.
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, a);
    let notes = r.notes.join(" | ");
    assert!(
        notes.contains("3 data blocks: 0: curves 1 x 3 x 32 u16; 1: image 4 x 5 x 32 u16 [read]; 2: image 4 x 5 x 32 u16; block 1 read (choose another with --block)"),
        "{notes}"
    );
    let with = |block| ReadOptions {
        block: Some(block),
        ..ReadOptions::default()
    };
    assert_eq!(read_recording_with(&p, &with(2)).unwrap().counts, b);
    let r = read_recording_with(&p, &with(0)).unwrap();
    assert_eq!(r.counts, decay);
    assert!(
        r.notes.iter().any(|n| n.contains("not an image")),
        "{:?}",
        r.notes
    );
    let e = err_of(read_recording_with(&p, &with(3)), &p);
    assert!(
        e.contains("data block 3 asked for, the file holds 3 (0..2)"),
        "{e}"
    );
    // Compressed, several blocks: the chain of next-block offsets is followed.
    let q = dir.path().join("multiz.sdt");
    write_sdt_with(
        &q,
        &[block(&decay, 0x00), block(&a, 0x60), block(&b, 0x10)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::Zip),
    )
    .unwrap();
    assert_eq!(read_recording(&q).unwrap().counts, a);
    assert_eq!(read_recording_with(&q, &with(2)).unwrap().counts, b);
    // A file of decay curves only: the first block.
    let q = dir.path().join("decays.sdt");
    write_sdt_with(
        &q,
        &[block(&decay, 0x00), block(&decay, 0x00)],
        0.1,
        &sdt_opts(SETUP_DATA, SdtCompression::None),
    )
    .unwrap();
    assert_eq!(read_recording(&q).unwrap().counts, decay);
    // A block count beyond what the file can hold is a corrupt header.
    let q = dir.path().join("nblocks.sdt");
    for (claim, says) in [
        (4_000_000_000u32, "more than the 1048576 accepted"),
        (100_000, "more than a file of"),
    ] {
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[18..20].copy_from_slice(&0x7FFFi16.to_le_bytes());
        bytes[34..38].copy_from_slice(&claim.to_le_bytes());
        std::fs::write(&q, &bytes).unwrap();
        let e = err_of(read_recording(&q), &q);
        assert!(e.contains(says), "{e}");
    }
    // A block chain pointing back (it would loop) is corrupt.
    let q = dir.path().join("loop.sdt");
    let mut bytes = std::fs::read(&p).unwrap();
    let first = i32::from_le_bytes(bytes[14..18].try_into().unwrap());
    bytes[first as usize + 6..first as usize + 10].copy_from_slice(&first.to_le_bytes());
    std::fs::write(&q, &bytes).unwrap();
    let e = err_of(read_recording(&q), &q);
    assert!(e.contains("corrupt block chain"), "{e}");
    // Many blocks: the first 16 are listed, and the one read.
    let small = counts(2, 2, 8, 4);
    let mut many: Vec<SdtBlock> = (0..19).map(|_| block(&decay, 0x00)).collect();
    many.push(block(&small, 0x60));
    let q = dir.path().join("many.sdt");
    write_sdt_with(&q, &many, 0.1, &sdt_opts(SETUP_DATA, SdtCompression::None)).unwrap();
    let r = read_recording(&q).unwrap();
    assert_eq!(r.counts, small);
    let notes = r.notes.join(" | ");
    assert!(
        notes.contains("15: curves") && !notes.contains("16: curves"),
        "{notes}"
    );
    assert!(
        notes.contains("19: image 2 x 2 x 8 u16 [read]; ... (3 not listed)"),
        "{notes}"
    );
}

#[test]
fn zero_bins_at_both_ends_are_left_out_of_the_valid_window() {
    let dir = tempfile::tempdir().unwrap();
    // An ADC range narrower than the time axis: bins 0..5 and 58..64 empty
    // in every pixel.
    let mut c = counts(4, 5, 64, 11);
    c.slice_mut(ndarray::s![.., .., ..5]).fill(0);
    c.slice_mut(ndarray::s![.., .., 58..]).fill(0);
    c[[0, 0, 5]] += 1;
    c[[3, 4, 57]] += 1;
    let p = dir.path().join("adc.sdt");
    write_sdt_with(
        &p,
        &[block(&c, 0x10)],
        0.039,
        &sdt_opts(SETUP_DATA, SdtCompression::Zip),
    )
    .unwrap();
    let r = read_recording(&p).unwrap();
    assert_eq!(r.counts, c, "counts are kept whole");
    assert_eq!(r.valid_bins, 5..58);
    assert_eq!(r.valid_counts().dim(), (4, 5, 53));
    assert_eq!(r.valid_counts()[[0, 0, 0]], c[[0, 0, 5]]);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("bins 5..58 of 64") && n.contains("5 bin(s) before and 6 after")),
        "{:?}",
        r.notes
    );
    // Through PTU and .npy the same.
    let q = dir.path().join("adc.ptu");
    write_ptu_t3_counts(&q, &PtuT3Spec::new(5, 4, 0.05, 3.2), c.view()).unwrap();
    assert_eq!(read_recording(&q).unwrap().valid_bins, 5..58);
    // A decay whose early bins are low but not zero summed over the image:
    // nothing left out (one photon in bin 0 of one pixel and in the last bin).
    let mut d = c.clone();
    d[[2, 1, 0]] = 1;
    d[[1, 3, 63]] = 1;
    let q = dir.path().join("low.sdt");
    write_sdt(&q, d.view(), 0.039).unwrap();
    let r = read_recording(&q).unwrap();
    assert_eq!(r.valid_bins, 0..64);
    assert!(
        !r.notes.iter().any(|n| n.contains("valid window")),
        "{:?}",
        r.notes
    );
}

/// dtime channel offset marking channel-1 photons in `write_ptu_t3_image`
/// input, moved to the channel field by `split_channels`.
const CH1: u16 = 1000;

/// Move the photons of a HydraHarp v2 T3 PTU whose dtime is `>= CH1` to
/// detector channel 1 (dtime - CH1).
fn split_channels(path: &Path) {
    patch(path, |b| {
        let end = tag_name_at(b, "Header_End") + 48;
        for rec in b[end..].chunks_exact_mut(4) {
            let r = u32::from_le_bytes(rec.try_into().unwrap());
            let dtime = (r >> 10) & 0x7FFF;
            if r >> 31 == 0 && dtime >= CH1 as u32 {
                let r = (r & !(0x7FFF << 10)) | ((dtime - CH1 as u32) << 10) | (1 << 25);
                rec.copy_from_slice(&r.to_le_bytes());
            }
        }
    });
}

/// A 3 x 4 image, `n` photons per pixel on each of two detector channels:
/// an exponential decay (tau 100 channels) starting at dtime 100 on channel
/// 0 and at `100 + shift` on channel 1. Returns the per-channel counts.
fn two_channel_ptu(path: &Path, shift: u16, n: usize) -> (Array3<u32>, Array3<u32>) {
    let spec = PtuT3Spec::new(4, 3, 0.01, 50.0);
    let mut photons = Vec::new();
    let mut ch = [
        Array3::<u32>::zeros((3, 4, 5000)),
        Array3::<u32>::zeros((3, 4, 5000)),
    ];
    for y in 0..3 {
        for x in 0..4 {
            let mut list = Vec::new();
            for j in 0..n {
                let u = (j as f64 + 0.5) / n as f64;
                let d = 100 + (-100.0 * (1.0 - u).ln()) as u16;
                list.push(d);
                ch[0][[y, x, d as usize]] += 1;
                list.push(CH1 + d + shift);
                ch[1][[y, x, (d + shift) as usize]] += 1;
            }
            photons.push(list);
        }
    }
    write_ptu_t3_image(path, &spec, &photons).unwrap();
    split_channels(path);
    let [a, b] = ch;
    (a, b)
}

#[test]
fn misaligned_detector_channels_use_one_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    // Channel 1 decays 0.5 ns later; channel 0 has more photons.
    let p = dir.path().join("misaligned.ptu");
    let (c0, c1) = two_channel_ptu(&p, 50, 300);
    let r = read_recording(&p).unwrap();
    let notes = r.notes.join(" | ");
    assert!(
        notes.contains("warning: the detector channels' decays are misaligned"),
        "{notes}"
    );
    assert!(notes.contains("0.50 ns from channel"), "{notes}");
    assert!(notes.contains("--channel"), "{notes}");
    // Equal photon counts: the lower channel number wins the tie.
    assert_eq!(r.counts, c0);
    // --channel chooses the other one.
    let one = ReadOptions {
        channel: Some(1),
        ..ReadOptions::default()
    };
    let r = read_recording_with(&p, &one).unwrap();
    assert_eq!(r.counts, c1);
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("detector channel 1 used as asked")));
    // A channel without photons is refused, listing those that have some.
    let five = ReadOptions {
        channel: Some(5),
        ..ReadOptions::default()
    };
    let e = err_of(read_recording_with(&p, &five), &p);
    assert!(
        e.contains("detector channel 5 holds no photons") && e.contains("0: 3600, 1: 3600"),
        "{e}"
    );

    // Aligned channels (the same decay): summed, and said.
    let q = dir.path().join("aligned.ptu");
    let (c0, c1) = two_channel_ptu(&q, 0, 300);
    let r = read_recording(&q).unwrap();
    assert_eq!(r.counts, &c0 + &c1);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("detector channels summed, their decay peaks aligned")),
        "{:?}",
        r.notes
    );
    // A shift of 0.05 ns (5 dtime channels, under 0.1 ns): still aligned.
    let q = dir.path().join("close.ptu");
    let (c0, c1) = two_channel_ptu(&q, 5, 300);
    assert_eq!(read_recording(&q).unwrap().counts, &c0 + &c1);
}
