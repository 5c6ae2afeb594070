//! Becker & Hickl SDT files ("SPC Setup & Data File", uncompressed).
//!
//! Layout followed (B&H's `SPC_data_file_structure.h` as described in the
//! bh TCSPC Handbook, and Christoph Gohlke's `sdtfile`): a 42-byte file
//! header (revision, offsets and lengths of the info text, the setup, the
//! first data block and the measurement description blocks, block counts,
//! `header_valid` = 0x5555, checksum); an ASCII info section starting
//! `*IDENTIFICATION`; measurement description blocks (packed struct:
//! `tac_r` f32 at byte 64, `tac_g` i16 at 68, `adc_re` i16 at 82, `scan_x`/
//! `scan_y` i32 at 173/177, `image_x`/`image_y` i32 at 309/313); data
//! blocks, each a 22-byte header (`block_no` i16, `data_offs` i32,
//! `next_block_offs` i32, `block_type` u16, `meas_desc_block_no` i16,
//! `lblock_no` u32, `block_length` u32) followed by `block_length` bytes of
//! `u16` (or `u32`) counts. All little-endian. The bin width is
//! `tac_r / tac_g / adc_re`.

use super::{check_dims, LeReader, Recording};
use crate::data::write_atomically;
use anyhow::{bail, Context, Result};
use ndarray::{Array3, ArrayView3};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

const FILE_HEADER_LEN: usize = 42;
const BLOCK_HEADER_LEN: usize = 22;
/// Measurement description block length written (through `MeasHISTInfo`).
const MEAS_DESC_LEN: usize = 359;
/// Shortest measurement description read (through `cycles`, byte 211).
const MIN_MEAS_DESC_LEN: usize = 211;
const HEADER_VALID: u16 = 0x5555;
const IDENT: &str = "*IDENTIFICATION";

fn i16_at(b: &[u8], o: usize) -> i16 {
    i16::from_le_bytes([b[o], b[o + 1]])
}
fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn i32_at(b: &[u8], o: usize) -> i32 {
    i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn f32_at(b: &[u8], o: usize) -> f32 {
    f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn seek(r: &mut LeReader<BufReader<File>>, off: u64, what: &str) -> Result<()> {
    r.inner
        .seek(SeekFrom::Start(off))
        .with_context(|| format!("{}: cannot seek to {what}", r.name))?;
    r.pos = off;
    Ok(())
}

/// Read the first data block of an SDT file as a `[scan_x, scan_y,
/// adc_re]` image (the axis order `sdtfile` uses; see `docs/formats.md`).
pub fn read_sdt(path: &Path) -> Result<Recording> {
    let name = format!("sdt file {}", path.display());
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let file_len = file
        .metadata()
        .with_context(|| format!("{name}: cannot stat"))?
        .len();
    if file_len == 0 {
        bail!("{name}: empty file");
    }
    let mut r = LeReader::new(BufReader::with_capacity(1 << 16, file), name.clone());
    let hdr: [u8; FILE_HEADER_LEN] = r.array("the file header")?;
    let revision = i16_at(&hdr, 0);
    let info_offs = i32_at(&hdr, 2) as i64;
    let info_len = i16_at(&hdr, 6) as i64;
    let data_offs = i32_at(&hdr, 14) as i64;
    let mut n_blocks = i16_at(&hdr, 18) as i64;
    let meas_offs = i32_at(&hdr, 24) as i64;
    let n_meas = i16_at(&hdr, 28) as i64;
    let meas_len = i16_at(&hdr, 30) as i64;
    let valid = u16_at(&hdr, 32);
    if n_blocks == 0x7FFF {
        n_blocks = u32_at(&hdr, 34) as i64;
    }
    let within = |off: i64, len: i64| off >= 0 && len >= 0 && (off + len) as u64 <= file_len;
    // The info text is the closest SDT has to a magic string.
    if !(within(info_offs, info_len) && info_len >= IDENT.len() as i64) {
        bail!("{name}: not a Becker & Hickl SDT file (no info section where the header points; file truncated or not SDT)");
    }
    seek(&mut r, info_offs as u64, "the info section")?;
    let mut info = vec![0u8; info_len.min(1 << 16) as usize];
    r.bytes(&mut info, "the info section")?;
    let info = String::from_utf8_lossy(&info).into_owned();
    if !info.trim_start().starts_with(IDENT) {
        bail!("{name}: not a Becker & Hickl SDT file (info section does not start with {IDENT})");
    }
    let mut notes = Vec::new();
    if valid != HEADER_VALID {
        notes.push(format!(
            "file header marked 0x{valid:04X}, not valid (0x5555)"
        ));
    }
    if info.contains("FCS Data") || info.contains("Flow Data") {
        bail!("{name}: FIFO/FCS or flow SDT files are not supported (need a Setup & Data file)");
    }
    if n_blocks < 1 {
        bail!("{name}: no data blocks");
    }
    if n_meas < 1 || meas_len < MIN_MEAS_DESC_LEN as i64 {
        bail!("{name}: {n_meas} measurement description blocks of {meas_len} bytes (need at least one of {MIN_MEAS_DESC_LEN})");
    }
    // First data block header.
    if !within(data_offs, BLOCK_HEADER_LEN as i64) {
        bail!("{name}: truncated: data block header at byte {data_offs} lies beyond the file ({file_len} bytes)");
    }
    seek(&mut r, data_offs as u64, "the data block header")?;
    let bh: [u8; BLOCK_HEADER_LEN] = r.array("the data block header")?;
    let (b_data, b_type, b_meas, b_len) = if revision & 0xF >= 15 {
        // Revision 15: two extension bytes in place of block_no.
        let ext = bh[0] as i64;
        (
            ((ext << 32) | u32_at(&bh, 2) as i64),
            u16_at(&bh, 10),
            i16_at(&bh, 12) as i64,
            u32_at(&bh, 18) as i64,
        )
    } else {
        (
            i32_at(&bh, 2) as i64,
            u16_at(&bh, 10),
            i16_at(&bh, 12) as i64,
            u32_at(&bh, 18) as i64,
        )
    };
    if b_type & 0x1000 != 0 {
        bail!("{name}: compressed data blocks are not supported");
    }
    let size = match b_type & 0xF00 {
        0x000 => 2usize,
        0x100 => 4,
        t => bail!("{name}: data block type 0x{t:03X} (not u16/u32 counts) is not supported"),
    };
    let content = b_type & 0xF0;
    if !matches!(content, 0x00 | 0x10 | 0x60) {
        bail!("{name}: data block content 0x{content:02X} is not a decay/page/image block");
    }
    if !(0..n_meas).contains(&b_meas) {
        bail!("{name}: data block refers to measurement description {b_meas} of {n_meas}");
    }
    if !within(b_data, b_len) {
        bail!("{name}: truncated: data block of {b_len} bytes at byte {b_data}, file holds {file_len}");
    }
    // Measurement description of the block.
    let m_off = meas_offs + b_meas * meas_len;
    if !within(m_off, meas_len) {
        bail!("{name}: truncated: measurement description at byte {m_off} lies beyond the file");
    }
    seek(&mut r, m_off as u64, "the measurement description")?;
    let mut md = vec![0u8; meas_len.min(1 << 16) as usize];
    r.bytes(&mut md, "the measurement description")?;
    let tac_r = f32_at(&md, 64) as f64;
    let tac_g = i16_at(&md, 68) as f64;
    let adc_re = i16_at(&md, 82) as i64;
    let (scan_x, scan_y) = (i32_at(&md, 173) as i64, i32_at(&md, 177) as i64);
    let (image_x, image_y) = if md.len() >= 317 {
        (i32_at(&md, 309) as i64, i32_at(&md, 313) as i64)
    } else {
        (0, 0)
    };
    if !(1..=super::MAX_BINS as i64).contains(&adc_re) {
        bail!("{name}: ADC resolution {adc_re} is not a usable bin count");
    }
    if !(tac_r.is_finite() && tac_r > 0.0 && tac_r < 1e-3 && tac_g >= 1.0) {
        bail!("{name}: TAC range {tac_r} s / gain {tac_g} give no usable time axis");
    }
    let n = (b_len / size as i64) as u64;
    if b_len % size as i64 != 0 {
        bail!("{name}: data block length {b_len} is not a whole number of counts");
    }
    let adc = adc_re as u64;
    let matches = |a: i64, b: i64| {
        a > 0
            && b > 0
            && (a as u64)
                .checked_mul(b as u64)
                .and_then(|p| p.checked_mul(adc))
                == Some(n)
    };
    let (d0, d1) = if matches(image_x, image_y) {
        (image_x as u64, image_y as u64)
    } else if matches(scan_x, scan_y) {
        (scan_x as u64, scan_y as u64)
    } else if n.is_multiple_of(adc) && n > 0 {
        notes.push(format!(
            "block is not an image: {} decay curves read as one row",
            n / adc
        ));
        (1, n / adc)
    } else {
        bail!("{name}: data block of {n} counts does not match {image_x} x {image_y} or {scan_x} x {scan_y} pixels x {adc_re} bins");
    };
    check_dims(&name, d0, d1, adc)?;
    if n_blocks > 1 {
        notes.push(format!("first of {n_blocks} data blocks read"));
    }
    seek(&mut r, b_data as u64, "the data block")?;
    // Size checked: n = d0 * d1 * adc <= MAX_HISTOGRAM_ELEMENTS and fits the file.
    let mut values = Vec::with_capacity(n as usize);
    let mut chunk = vec![0u8; 1 << 16];
    let mut left = b_len as usize;
    while left > 0 {
        let take = left.min(chunk.len());
        let c = &mut chunk[..take];
        r.bytes(c, "the data block")?;
        if size == 2 {
            values.extend(
                c.chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
            );
        } else {
            values.extend(
                c.chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        left -= take;
    }
    let counts = Array3::from_shape_vec((d0 as usize, d1 as usize, adc as usize), values)
        .with_context(|| format!("{name}: inconsistent shape"))?;
    let module = (revision as u16 & 0xFF0) >> 4;
    Ok(Recording {
        counts,
        bin_width_ns: tac_r / tac_g / adc_re as f64 * 1e9,
        period_ns: None,
        source: format!(
            "SDT image block (module code 0x{module:02X}, revision {})",
            revision & 0xF
        ),
        notes,
    })
}

/// Write counts `[d0, d1, bins]` as an SDT "Setup & Data" file with one
/// image block (`u16` counts if they all fit, else `u32`), `scan_x` =
/// `image_x` = d0, `scan_y` = `image_y` = d1, TAC gain 1 and TAC range
/// `bins * bin_width_ns`.
pub fn write_sdt(path: &Path, counts: ArrayView3<u32>, bin_width_ns: f64) -> Result<()> {
    let name = format!("sdt file {}", path.display());
    let (d0, d1, bins) = counts.dim();
    if d0 == 0 || d1 == 0 || bins == 0 || bins > i16::MAX as usize {
        bail!("{name}: cannot write {d0} x {d1} pixels x {bins} bins");
    }
    if !(bin_width_ns.is_finite() && bin_width_ns > 0.0) {
        bail!("{name}: bin width {bin_width_ns} ns");
    }
    let wide = counts.iter().any(|&c| c > u16::MAX as u32);
    let size = if wide { 4 } else { 2 };
    let data_len = d0 * d1 * bins * size;
    if data_len > u32::MAX as usize {
        bail!("{name}: data block of {data_len} bytes is too large");
    }
    let info = "*IDENTIFICATION\r\n  ID        : SPC Setup & Data File\r\n  Title     : flimgru\r\n  Version   : 1  781 M\r\n  Revision  : 12 bits ADC\r\n  Author    : flimgru\r\n*END\r\n\r\n";
    let setup = "*SETUP\r\n*END\r\n\r\n";
    let info_offs = FILE_HEADER_LEN;
    let setup_offs = info_offs + info.len();
    let meas_offs = setup_offs + setup.len();
    let block_offs = meas_offs + MEAS_DESC_LEN;
    let data_offs = block_offs + BLOCK_HEADER_LEN;

    let mut h = Vec::with_capacity(FILE_HEADER_LEN);
    h.extend_from_slice(&((0x28i16 << 4) | 12).to_le_bytes()); // SPC-150, revision 12
    h.extend_from_slice(&(info_offs as i32).to_le_bytes());
    h.extend_from_slice(&(info.len() as i16).to_le_bytes());
    h.extend_from_slice(&(setup_offs as i32).to_le_bytes());
    h.extend_from_slice(&(setup.len() as i16).to_le_bytes());
    h.extend_from_slice(&(block_offs as i32).to_le_bytes());
    h.extend_from_slice(&1i16.to_le_bytes());
    h.extend_from_slice(&(data_len as i32).to_le_bytes());
    h.extend_from_slice(&(meas_offs as i32).to_le_bytes());
    h.extend_from_slice(&1i16.to_le_bytes());
    h.extend_from_slice(&(MEAS_DESC_LEN as i16).to_le_bytes());
    h.extend_from_slice(&HEADER_VALID.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    // Checksum: the header's 16-bit words sum to 0x55AA.
    let sum = h.chunks_exact(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    h.extend_from_slice(&0x55AAu16.wrapping_sub(sum).to_le_bytes());

    let mut md = vec![0u8; MEAS_DESC_LEN];
    let put = |md: &mut Vec<u8>, o: usize, b: &[u8]| md[o..o + b.len()].copy_from_slice(b);
    put(&mut md, 0, b"00:00:00\0");
    put(&mut md, 9, b"01-01-2000\0");
    put(
        &mut md,
        64,
        &((bins as f64 * bin_width_ns * 1e-9) as f32).to_le_bytes(),
    );
    put(&mut md, 68, &1i16.to_le_bytes());
    put(&mut md, 82, &(bins as i16).to_le_bytes());
    put(&mut md, 117, b"SPC-150\0");
    put(&mut md, 173, &(d0 as i32).to_le_bytes());
    put(&mut md, 177, &(d1 as i32).to_le_bytes());
    put(&mut md, 309, &(d0 as i32).to_le_bytes());
    put(&mut md, 313, &(d1 as i32).to_le_bytes());

    let mut bh = Vec::with_capacity(BLOCK_HEADER_LEN);
    bh.extend_from_slice(&1i16.to_le_bytes());
    bh.extend_from_slice(&(data_offs as i32).to_le_bytes());
    bh.extend_from_slice(&((data_offs + data_len) as i32).to_le_bytes());
    // IMG_BLOCK | MEAS_DATA, u16 or u32 counts.
    bh.extend_from_slice(&(0x61u16 | if wide { 0x100 } else { 0 }).to_le_bytes());
    bh.extend_from_slice(&0i16.to_le_bytes());
    bh.extend_from_slice(&0u32.to_le_bytes());
    bh.extend_from_slice(&(data_len as u32).to_le_bytes());

    write_atomically(path, |tmp| {
        let f = File::create(tmp).with_context(|| format!("{name}: cannot create"))?;
        let mut w = BufWriter::new(f);
        let io = |e: std::io::Error| anyhow::anyhow!("{name}: cannot write: {e}");
        w.write_all(&h).map_err(io)?;
        w.write_all(info.as_bytes()).map_err(io)?;
        w.write_all(setup.as_bytes()).map_err(io)?;
        w.write_all(&md).map_err(io)?;
        w.write_all(&bh).map_err(io)?;
        for &c in counts.iter() {
            if wide {
                w.write_all(&c.to_le_bytes()).map_err(io)?;
            } else {
                w.write_all(&(c as u16).to_le_bytes()).map_err(io)?;
            }
        }
        w.flush().map_err(io)?;
        Ok(())
    })
}
