//! Becker & Hickl SDT files: decay, page and image blocks of "SPC Setup &
//! Data" files (and of FCS/flow files that hold them), plain or
//! zip-compressed.
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
//! `u16` (or `u32`) counts, or (block type bit 0x1000) by a zip archive
//! whose one entry holds them, reaching to `next_block_offs`. All
//! little-endian. The bin width is `tac_r / tac_g / adc_re`.

use super::{check_dims, LeReader, ReadOptions, Recording};
use crate::data::write_atomically;
use anyhow::{bail, Context, Result};
use ndarray::{Array3, ArrayView3};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

const FILE_HEADER_LEN: usize = 42;
const BLOCK_HEADER_LEN: usize = 22;
/// Measurement description block length written (through `MeasHISTInfo`).
const MEAS_DESC_LEN: usize = 359;
/// Shortest measurement description read (through `cycles`, byte 211).
const MIN_MEAS_DESC_LEN: usize = 211;
const HEADER_VALID: u16 = 0x5555;
const IDENT: &str = "*IDENTIFICATION";
/// Most data blocks followed (B&H count them in an i16 unless 0x7FFF).
const MAX_BLOCKS: i64 = 1 << 20;
/// Data blocks described one by one in the notes.
const MAX_BLOCKS_LISTED: usize = 16;

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

/// One data block's header, as found by following the block chain.
#[derive(Clone, Debug)]
struct Block {
    data_offs: i64,
    next_offs: i64,
    block_type: u16,
    meas: i64,
    /// Declared length in bytes (of the decompressed data when compressed).
    len: i64,
}

impl Block {
    fn compressed(&self) -> bool {
        self.block_type & 0x1000 != 0
    }
    /// Bytes per count, `None` for anything but `u16`/`u32` (e.g. `f64`).
    fn elem_size(&self) -> Option<usize> {
        match self.block_type & 0xF00 {
            0x000 => Some(2),
            0x100 => Some(4),
            _ => None,
        }
    }
    fn dtype(&self) -> &'static str {
        match self.block_type & 0xF00 {
            0x000 => "u16",
            0x100 => "u32",
            0x200 => "f64",
            _ => "unknown type",
        }
    }
    fn content(&self) -> &'static str {
        match self.block_type & 0xF0 {
            0x00 => "decay",
            0x10 => "page",
            0x20 => "FCS",
            0x30 => "FIDA",
            0x40 => "FILDA",
            0x50 => "MCS",
            0x60 => "image",
            0x70 => "MCSTA",
            0x80 => "image MCS",
            0x90 => "moments",
            0xA0 => "image intensity",
            0xB0 => "wide-field image",
            0xC0 => "image lifetime",
            _ => "unknown",
        }
    }
    /// Decay, page and image blocks hold histograms.
    fn holds_histograms(&self) -> bool {
        matches!(self.block_type & 0xF0, 0x00 | 0x10 | 0x60)
    }
}

/// What a block would be read as.
#[derive(Clone, Debug)]
struct Layout {
    d0: u64,
    d1: u64,
    adc: u64,
    image: bool,
    tac_r: f64,
    tac_g: f64,
}

/// The measurement-description fields read.
#[derive(Clone, Debug)]
struct MeasDesc {
    tac_r: f64,
    tac_g: f64,
    adc_re: i64,
    scan: (i64, i64),
    image: (i64, i64),
}

impl MeasDesc {
    fn parse(md: &[u8]) -> Self {
        MeasDesc {
            tac_r: f32_at(md, 64) as f64,
            tac_g: i16_at(md, 68) as f64,
            adc_re: i16_at(md, 82) as i64,
            scan: (i32_at(md, 173) as i64, i32_at(md, 177) as i64),
            image: if md.len() >= 317 {
                (i32_at(md, 309) as i64, i32_at(md, 313) as i64)
            } else {
                (0, 0)
            },
        }
    }

    /// How a block of `n` counts is shaped, or why it cannot be read.
    fn layout(&self, n: u64, picture: bool) -> std::result::Result<Layout, String> {
        let adc_re = self.adc_re;
        if !(1..=super::MAX_BINS as i64).contains(&adc_re) {
            return Err(format!("ADC resolution {adc_re} is not a usable bin count"));
        }
        let (tac_r, tac_g) = (self.tac_r, self.tac_g);
        if !(tac_r.is_finite() && tac_r > 0.0 && tac_r < 1e-3 && tac_g >= 1.0) {
            return Err(format!(
                "TAC range {tac_r} s / gain {tac_g} give no usable time axis"
            ));
        }
        let adc = adc_re as u64;
        let matches = |(a, b): (i64, i64)| {
            a > 0
                && b > 0
                && (a as u64)
                    .checked_mul(b as u64)
                    .and_then(|p| p.checked_mul(adc))
                    == Some(n)
        };
        // Rows are y: `[scan_y, scan_x, adc_re]`, as `sdtfile` shapes them.
        let (d0, d1, image) = if matches(self.scan) {
            (self.scan.1 as u64, self.scan.0 as u64, picture && n > adc)
        } else if matches(self.image) {
            (self.image.1 as u64, self.image.0 as u64, picture && n > adc)
        } else if n.is_multiple_of(adc) && n > 0 {
            (1, n / adc, false)
        } else {
            return Err(format!(
                "{n} counts do not match {} x {} (scan) or {} x {} (image) pixels x {adc_re} bins",
                self.scan.0, self.scan.1, self.image.0, self.image.1
            ));
        };
        Ok(Layout {
            d0,
            d1,
            adc,
            image,
            tac_r,
            tac_g,
        })
    }
}

/// The `ID` line of the info section, e.g. `SPC Setup & Data File` (B&H
/// wrap it in 0x04 bytes, dropped here).
fn info_id(info: &str) -> Option<&str> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "ID").then(|| v.trim_matches(|c: char| c.is_whitespace() || c.is_control()))
    })
}

/// Read one data block of an SDT file as a `[scan_y, scan_x, adc_re]`
/// image (rows are y, as `sdtfile` shapes it; see `docs/formats.md`), or as
/// one row of decay curves when it is not an image.
///
/// All data blocks are listed in the notes. `opts.block` chooses one;
/// by default the first image block is read, else the first block of
/// decay curves. Zip-compressed blocks (what B&H software writes by
/// default; a zlib stream is accepted too) are inflated with at most the
/// block's declared length. Files whose info section says FIFO/FCS or
/// flow are read the same way: what counts is the blocks they hold.
pub fn read_sdt(path: &Path, opts: &ReadOptions) -> Result<Recording> {
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
    let within = |off: i64, len: i64| {
        off >= 0
            && len >= 0
            && (off as u64)
                .checked_add(len as u64)
                .is_some_and(|e| e <= file_len)
    };
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
    let id = info_id(&info).unwrap_or("").to_string();
    if id.contains("FCS") || id.contains("Flow") {
        notes.push(format!(
            "info says \"{id}\" (FIFO/FCS or flow mode); its histogram blocks are read like a Setup & Data file's"
        ));
    }
    if n_blocks < 1 {
        bail!("{name}: no data blocks");
    }
    if n_blocks > MAX_BLOCKS {
        bail!("{name}: header claims {n_blocks} data blocks, more than the {MAX_BLOCKS} accepted (corrupt header?)");
    }
    // Each block header takes 22 bytes of the file.
    if n_blocks as u64 > file_len / BLOCK_HEADER_LEN as u64 {
        bail!("{name}: header claims {n_blocks} data blocks, more than a file of {file_len} bytes can hold (corrupt header)");
    }
    if n_meas < 1 || meas_len < MIN_MEAS_DESC_LEN as i64 {
        bail!("{name}: {n_meas} measurement description blocks of {meas_len} bytes (need at least one of {MIN_MEAS_DESC_LEN})");
    }
    if !within(meas_offs, n_meas * meas_len) {
        bail!("{name}: truncated: {n_meas} measurement descriptions of {meas_len} bytes at byte {meas_offs} lie beyond the file ({file_len} bytes)");
    }

    // Follow the block chain.
    let rev15 = revision & 0xF >= 15;
    let mut blocks = Vec::new();
    let mut off = data_offs;
    for i in 0..n_blocks {
        if !within(off, BLOCK_HEADER_LEN as i64) {
            bail!("{name}: truncated: header of data block {i} at byte {off} lies beyond the file ({file_len} bytes)");
        }
        seek(&mut r, off as u64, "a data block header")?;
        let bh: [u8; BLOCK_HEADER_LEN] = r.array("a data block header")?;
        let (d, next) = if rev15 {
            // Revision 15: offset extension bytes in place of block_no.
            (
                ((bh[0] as i64) << 32) | u32_at(&bh, 2) as i64,
                ((bh[1] as i64) << 32) | u32_at(&bh, 6) as i64,
            )
        } else {
            (i32_at(&bh, 2) as i64, i32_at(&bh, 6) as i64)
        };
        let b = Block {
            data_offs: d,
            next_offs: next,
            block_type: u16_at(&bh, 10),
            meas: i16_at(&bh, 12) as i64,
            len: u32_at(&bh, 18) as i64,
        };
        // B&H write the blocks one after the other; a chain that does not
        // move forward is corrupt (and would loop).
        if i + 1 < n_blocks && b.next_offs <= off {
            bail!("{name}: data block {i} at byte {off} says the next one is at byte {} (corrupt block chain)", b.next_offs);
        }
        off = b.next_offs;
        blocks.push(b);
    }

    // Measurement descriptions (bounded: they lie within the file).
    let mut descs = Vec::new();
    seek(&mut r, meas_offs as u64, "the measurement descriptions")?;
    for _ in 0..n_meas {
        let mut md = vec![0u8; meas_len.min(1 << 12) as usize];
        r.bytes(&mut md, "a measurement description")?;
        r.skip(
            (meas_len as u64).saturating_sub(md.len() as u64),
            "a measurement description",
        )?;
        descs.push(MeasDesc::parse(&md));
    }

    // What each block is, and whether it can be read.
    let assess = |b: &Block| -> std::result::Result<Layout, String> {
        if !b.holds_histograms() {
            return Err(format!(
                "a {} block, not decay/page/image histograms",
                b.content()
            ));
        }
        let Some(size) = b.elem_size() else {
            return Err(format!("{} counts are not supported", b.dtype()));
        };
        if !(0..n_meas).contains(&b.meas) {
            return Err(format!(
                "refers to measurement description {} of {n_meas}",
                b.meas
            ));
        }
        if b.compressed() {
            if !within(b.data_offs, 1) {
                return Err(format!(
                    "truncated: compressed data at byte {} lies beyond the file ({file_len} bytes)",
                    b.data_offs
                ));
            }
        } else if !within(b.data_offs, b.len) {
            return Err(format!(
                "truncated: {} bytes at byte {} lie beyond the file ({file_len} bytes)",
                b.len, b.data_offs
            ));
        }
        if b.len % size as i64 != 0 {
            return Err(format!(
                "length {} bytes is not a whole number of {} counts",
                b.len,
                b.dtype()
            ));
        }
        let picture = b.block_type & 0xF0 != 0x00;
        descs[b.meas as usize].layout((b.len / size as i64) as u64, picture)
    };
    let layouts: Vec<_> = blocks.iter().map(assess).collect();
    let chosen = match opts.block {
        Some(i) => {
            if i >= blocks.len() {
                bail!(
                    "{name}: data block {i} asked for, the file holds {} (0..{})",
                    blocks.len(),
                    blocks.len() - 1
                );
            }
            if let Err(e) = &layouts[i] {
                bail!("{name}: data block {i} cannot be read: {e}");
            }
            i
        }
        None => match layouts
            .iter()
            .position(|l| l.as_ref().is_ok_and(|l| l.image))
            .or_else(|| layouts.iter().position(|l| l.is_ok()))
        {
            Some(i) => i,
            None if blocks.len() == 1 => {
                let e = layouts[0].as_ref().unwrap_err();
                bail!("{name}: the data block cannot be read: {e}");
            }
            None => bail!(
                "{name}: none of the {} data blocks can be read: {}",
                blocks.len(),
                layouts
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("block {i}: {}", l.as_ref().unwrap_err()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        },
    };
    if blocks.len() > 1 {
        let list = blocks
            .iter()
            .zip(&layouts)
            .enumerate()
            .map(|(i, (b, l))| {
                let what = match l {
                    Ok(l) => format!(
                        "{} {} x {} x {} {}{}",
                        if l.image { "image" } else { "curves" },
                        l.d0,
                        l.d1,
                        l.adc,
                        b.dtype(),
                        if b.compressed() { ", compressed" } else { "" }
                    ),
                    Err(e) => format!("not read ({e})"),
                };
                format!("{i}: {what}{}", if i == chosen { " [read]" } else { "" })
            })
            .collect::<Vec<_>>();
        let shown = if list.len() > MAX_BLOCKS_LISTED {
            // The chosen block is always among those shown.
            let mut keep: Vec<_> = list[..MAX_BLOCKS_LISTED].to_vec();
            if chosen >= MAX_BLOCKS_LISTED {
                keep.push(list[chosen].clone());
            }
            format!(
                "{}; ... ({} not listed)",
                keep.join("; "),
                list.len() - keep.len()
            )
        } else {
            list.join("; ")
        };
        let list = shown;
        notes.push(format!(
            "{} data blocks: {list}; block {chosen} read{}",
            blocks.len(),
            if opts.block.is_some() {
                " as asked"
            } else {
                " (choose another with --block)"
            }
        ));
    }
    let b = &blocks[chosen];
    let l = layouts[chosen].clone().expect("chosen block is readable");
    let size = b.elem_size().expect("chosen block has u16/u32 counts");
    check_dims(&name, l.d0, l.d1, l.adc)?;
    if !l.image {
        notes.push(format!(
            "block is not an image: {} decay curves read as {} x {} pixels",
            l.d0 * l.d1,
            l.d0,
            l.d1
        ));
    }
    // n = d0 * d1 * adc <= MAX_HISTOGRAM_ELEMENTS (check_dims): the block's
    // declared length is bounded before anything is sized by it.
    let n = l.d0 * l.d1 * l.adc;
    let what = format!("data block {chosen}");
    let values = if b.compressed() {
        // The compressed bytes run to the next block (or the file's end).
        let end = if b.next_offs > b.data_offs && (b.next_offs as u64) <= file_len {
            b.next_offs
        } else {
            file_len as i64
        };
        if !within(b.data_offs, 0) || b.data_offs >= end {
            bail!("{name}: truncated: compressed {what} at byte {} lies beyond the file ({file_len} bytes)", b.data_offs);
        }
        seek(&mut r, b.data_offs as u64, &what)?;
        let stored = (&mut r.inner).take((end - b.data_offs) as u64);
        inflate_block(stored, &name, &what, b.len as u64, size)?
    } else {
        if !within(b.data_offs, b.len) {
            bail!(
                "{name}: truncated: {what} of {} bytes at byte {}, file holds {file_len}",
                b.len,
                b.data_offs
            );
        }
        seek(&mut r, b.data_offs as u64, &what)?;
        let mut values = Vec::with_capacity(n as usize);
        let mut chunk = vec![0u8; 1 << 16];
        let mut left = b.len as usize;
        while left > 0 {
            let take = left.min(chunk.len());
            let c = &mut chunk[..take];
            r.bytes(c, &what)?;
            push_counts(&mut values, c, size);
            left -= take;
        }
        values
    };
    let counts = Array3::from_shape_vec((l.d0 as usize, l.d1 as usize, l.adc as usize), values)
        .with_context(|| format!("{name}: inconsistent shape"))?;
    let module = (revision as u16 & 0xFF0) >> 4;
    Ok(super::finish(Recording {
        counts,
        bin_width_ns: l.tac_r / l.tac_g / l.adc as f64 * 1e9,
        period_ns: None,
        source: format!(
            "SDT {} block {chosen}{} (module code 0x{module:02X}, revision {})",
            b.content(),
            if b.compressed() {
                ", zip-compressed"
            } else {
                ""
            },
            revision & 0xF
        ),
        notes,
        valid_bins: 0..l.adc as usize,
    }))
}

/// Append little-endian `u16`/`u32` counts (`bytes.len()` a multiple of `size`).
fn push_counts(values: &mut Vec<u32>, bytes: &[u8], size: usize) {
    if size == 2 {
        values.extend(
            bytes
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u32),
        );
    } else {
        values.extend(
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
}

const ZIP_LOCAL: u32 = 0x0403_4B50;

/// Inflate a compressed data block: a zip archive whose first entry holds
/// the counts (B&H's layout; stored or deflated, CRC-32 checked when the
/// local header carries it) or a bare zlib stream. At most `declared + 1`
/// bytes are ever inflated, and anything but exactly `declared` bytes is an
/// error.
fn inflate_block<R: Read>(
    mut stored: R,
    name: &str,
    what: &str,
    declared: u64,
    size: usize,
) -> Result<Vec<u32>> {
    let mut head = [0u8; 4];
    stored.read_exact(&mut head).map_err(|_| {
        anyhow::anyhow!("{name}: truncated: compressed {what} ends in its first bytes")
    })?;
    let zlib_header = head[0] & 0x0F == 8 && u16::from_be_bytes([head[0], head[1]]) % 31 == 0;
    let mut crc_expected = None;
    let src = std::io::Cursor::new(head).chain(stored);
    let dec: Box<dyn Read> = if u32::from_le_bytes(head) == ZIP_LOCAL {
        let mut src = src;
        let mut lh = [0u8; 30];
        src.read_exact(&mut lh).map_err(|_| {
            anyhow::anyhow!("{name}: truncated: compressed {what} ends inside its zip header")
        })?;
        let flags = u16_at(&lh, 6);
        let method = u16_at(&lh, 8);
        let crc = u32_at(&lh, 14);
        let csize = u32_at(&lh, 18);
        let usize_ = u32_at(&lh, 22);
        let extra = u16_at(&lh, 26) as u64 + u16_at(&lh, 28) as u64;
        if flags & 1 != 0 {
            bail!("{name}: compressed {what} is encrypted");
        }
        let sizes_known = flags & 8 == 0;
        if sizes_known {
            if usize_ as u64 != declared {
                bail!("{name}: compressed {what}: the zip entry holds {usize_} bytes, the block header declares {declared}");
            }
            crc_expected = Some(crc);
        }
        let skipped = std::io::copy(&mut (&mut src).take(extra), &mut std::io::sink())
            .with_context(|| format!("{name}: cannot read {what}"))?;
        if skipped < extra {
            bail!("{name}: truncated: compressed {what} ends inside its zip header");
        }
        match method {
            8 if sizes_known => Box::new(flate2::read::DeflateDecoder::new(src.take(csize as u64))),
            8 => Box::new(flate2::read::DeflateDecoder::new(src)),
            0 if sizes_known => Box::new(src.take(csize as u64)),
            0 => bail!("{name}: compressed {what}: a stored zip entry without sizes cannot be delimited"),
            m => bail!("{name}: compressed {what}: zip method {m} is not supported (stored or deflate only)"),
        }
    } else if zlib_header {
        Box::new(flate2::read::ZlibDecoder::new(src))
    } else {
        bail!("{name}: compressed {what} is neither a zip archive nor a zlib stream (starts {head:02X?})");
    };
    let mut dec = dec.take(declared + 1);
    let mut crc = flate2::Crc::new();
    let mut values = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        // Fill the chunk (a multiple of 4 bytes) unless the stream ends.
        let mut got = 0;
        while got < chunk.len() {
            match dec.read(&mut chunk[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => bail!("{name}: corrupt or truncated compressed {what}: {e}"),
            }
        }
        if got == 0 {
            break;
        }
        total += got as u64;
        if total > declared {
            bail!("{name}: compressed {what} inflates to more than the {declared} bytes its header declares");
        }
        crc.update(&chunk[..got]);
        let whole = got - got % size;
        push_counts(&mut values, &chunk[..whole], size);
        if whole < got {
            // Only the stream's last read can end mid-count.
            if total == declared {
                bail!(
                    "{name}: compressed {what}: {declared} bytes is not a whole number of counts"
                );
            }
            bail!("{name}: corrupt or truncated compressed {what}: it inflates to {total} bytes, the header declares {declared}");
        }
    }
    if total != declared {
        bail!("{name}: corrupt or truncated compressed {what}: it inflates to {total} bytes, the header declares {declared}");
    }
    if let Some(c) = crc_expected {
        if crc.sum() != c {
            bail!("{name}: compressed {what}: CRC-32 0x{:08X} of the inflated data, the zip header says 0x{c:08X}", crc.sum());
        }
    }
    Ok(values)
}

/// How [`write_sdt_with`] stores each data block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SdtCompression {
    /// Plain counts.
    #[default]
    None,
    /// A zip archive with one deflated entry (`data_block`), as B&H
    /// software writes by default; the block type gets bit 0x1000.
    Zip,
    /// A bare zlib stream; the block type gets bit 0x1000.
    Zlib,
}

/// One data block for [`write_sdt_with`].
#[derive(Clone, Debug)]
pub struct SdtBlock<'a> {
    /// `[d0, d1, bins]`; written with a measurement description of its own
    /// (`scan_y` = `image_y` = d0 rows, `scan_x` = `image_x` = d1 columns).
    pub counts: ArrayView3<'a, u32>,
    /// Block content code (bits 4..7 of the block type): 0x00 decay, 0x10
    /// page, 0x60 image, 0x20 FCS, ...
    pub content: u16,
}

/// File-wide choices for [`write_sdt_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct SdtWriteOptions {
    /// The info section's `ID` line, e.g. `SPC Setup & Data File` or `SPC
    /// FCS Data File`.
    pub info_id: String,
    pub compression: SdtCompression,
}

impl Default for SdtWriteOptions {
    fn default() -> Self {
        SdtWriteOptions {
            info_id: "SPC Setup & Data File".to_string(),
            compression: SdtCompression::None,
        }
    }
}

/// Write counts `[d0, d1, bins]` as an SDT "Setup & Data" file with one
/// uncompressed image block; see [`write_sdt_with`].
pub fn write_sdt(path: &Path, counts: ArrayView3<u32>, bin_width_ns: f64) -> Result<()> {
    write_sdt_with(
        path,
        &[SdtBlock {
            counts,
            content: 0x60,
        }],
        bin_width_ns,
        &SdtWriteOptions::default(),
    )
}

/// Zip archive (local header, deflated data, central directory) holding
/// `data` as one entry named `data_block`.
fn zip_one(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    let deflated = enc.finish()?;
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let entry = b"data_block";
    let common = |v: &mut Vec<u8>| {
        v.extend_from_slice(&20u16.to_le_bytes()); // version needed
        v.extend_from_slice(&0u16.to_le_bytes()); // flags
        v.extend_from_slice(&8u16.to_le_bytes()); // deflate
        v.extend_from_slice(&0u16.to_le_bytes()); // time
        v.extend_from_slice(&0x2821u16.to_le_bytes()); // date 2000-01-01
        v.extend_from_slice(&crc.sum().to_le_bytes());
        v.extend_from_slice(&(deflated.len() as u32).to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(&(entry.len() as u16).to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    let mut z = Vec::with_capacity(deflated.len() + 128);
    z.extend_from_slice(&ZIP_LOCAL.to_le_bytes());
    common(&mut z);
    z.extend_from_slice(entry);
    z.extend_from_slice(&deflated);
    let cd_offs = z.len();
    z.extend_from_slice(&0x0201_4B50u32.to_le_bytes());
    z.extend_from_slice(&20u16.to_le_bytes()); // version made by
    common(&mut z);
    z.extend_from_slice(&[0u8; 10]); // comment len, disk, internal and external attributes
    z.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    z.extend_from_slice(entry);
    let cd_len = z.len() - cd_offs;
    z.extend_from_slice(&0x0605_4B50u32.to_le_bytes());
    z.extend_from_slice(&[0u8; 4]);
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&1u16.to_le_bytes());
    z.extend_from_slice(&(cd_len as u32).to_le_bytes());
    z.extend_from_slice(&(cd_offs as u32).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    Ok(z)
}

/// Write an SDT file with several data blocks, each `u16` counts if they
/// all fit, else `u32`, each with its own measurement description (SPC-150,
/// revision 12, TAC gain 1, TAC range `bins * bin_width_ns`), optionally
/// compressed; the info section's ID as given.
pub fn write_sdt_with(
    path: &Path,
    blocks: &[SdtBlock],
    bin_width_ns: f64,
    opts: &SdtWriteOptions,
) -> Result<()> {
    let name = format!("sdt file {}", path.display());
    if blocks.is_empty() || blocks.len() > i16::MAX as usize - 1 {
        bail!("{name}: cannot write {} data blocks", blocks.len());
    }
    if !(bin_width_ns.is_finite() && bin_width_ns > 0.0) {
        bail!("{name}: bin width {bin_width_ns} ns");
    }
    // B&H wrap the ID in 0x04 bytes (and `sdtfile` expects them).
    let info = format!("*IDENTIFICATION\r\n  ID        : \x04{}\x04\r\n  Title     : flimgru\r\n  Version   : 1  781 M\r\n  Revision  : 12 bits ADC\r\n  Author    : flimgru\r\n*END\r\n\r\n", opts.info_id);
    let setup = "*SETUP\r\n*END\r\n\r\n";
    let info_offs = FILE_HEADER_LEN;
    let setup_offs = info_offs + info.len();
    let meas_offs = setup_offs + setup.len();
    let first_block = meas_offs + MEAS_DESC_LEN * blocks.len();

    let mut descs = Vec::new();
    let mut stored = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let (d0, d1, bins) = b.counts.dim();
        if d0 == 0 || d1 == 0 || bins == 0 || bins > i16::MAX as usize {
            bail!("{name}: block {i}: cannot write {d0} x {d1} pixels x {bins} bins");
        }
        let wide = b.counts.iter().any(|&c| c > u16::MAX as u32);
        let mut raw = Vec::with_capacity(d0 * d1 * bins * if wide { 4 } else { 2 });
        for &c in b.counts.iter() {
            if wide {
                raw.extend_from_slice(&c.to_le_bytes());
            } else {
                raw.extend_from_slice(&(c as u16).to_le_bytes());
            }
        }
        if raw.len() > u32::MAX as usize {
            bail!("{name}: data block of {} bytes is too large", raw.len());
        }
        let io = |e: std::io::Error| anyhow::anyhow!("{name}: cannot compress block {i}: {e}");
        let data = match opts.compression {
            SdtCompression::None => raw.clone(),
            SdtCompression::Zip => zip_one(&raw).map_err(io)?,
            SdtCompression::Zlib => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&raw).map_err(io)?;
                enc.finish().map_err(io)?
            }
        };
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
        put(&mut md, 173, &(d1 as i32).to_le_bytes());
        put(&mut md, 177, &(d0 as i32).to_le_bytes());
        put(&mut md, 309, &(d1 as i32).to_le_bytes());
        put(&mut md, 313, &(d0 as i32).to_le_bytes());
        descs.push(md);
        let ty = (b.content & 0xF0)
            | 1 // MEAS_DATA
            | if wide { 0x100 } else { 0 }
            | if opts.compression == SdtCompression::None { 0 } else { 0x1000 };
        stored.push((ty, raw.len(), data));
    }
    let mut body = Vec::new();
    let mut off = first_block;
    for (i, (ty, raw_len, data)) in stored.iter().enumerate() {
        let data_offs = off + BLOCK_HEADER_LEN;
        let next = data_offs + data.len();
        if next > i32::MAX as usize {
            bail!("{name}: file of more than {} bytes", i32::MAX);
        }
        body.extend_from_slice(&(i as i16 + 1).to_le_bytes());
        body.extend_from_slice(&(data_offs as i32).to_le_bytes());
        body.extend_from_slice(&(next as i32).to_le_bytes());
        body.extend_from_slice(&ty.to_le_bytes());
        body.extend_from_slice(&(i as i16).to_le_bytes());
        body.extend_from_slice(&(i as u32).to_le_bytes());
        body.extend_from_slice(&(*raw_len as u32).to_le_bytes());
        body.extend_from_slice(data);
        off = next;
    }

    let mut h = Vec::with_capacity(FILE_HEADER_LEN);
    h.extend_from_slice(&((0x28i16 << 4) | 12).to_le_bytes()); // SPC-150, revision 12
    h.extend_from_slice(&(info_offs as i32).to_le_bytes());
    h.extend_from_slice(&(info.len() as i16).to_le_bytes());
    h.extend_from_slice(&(setup_offs as i32).to_le_bytes());
    h.extend_from_slice(&(setup.len() as i16).to_le_bytes());
    h.extend_from_slice(&(first_block as i32).to_le_bytes());
    h.extend_from_slice(&(blocks.len() as i16).to_le_bytes());
    h.extend_from_slice(&(stored[0].2.len() as i32).to_le_bytes());
    h.extend_from_slice(&(meas_offs as i32).to_le_bytes());
    h.extend_from_slice(&(blocks.len() as i16).to_le_bytes());
    h.extend_from_slice(&(MEAS_DESC_LEN as i16).to_le_bytes());
    h.extend_from_slice(&HEADER_VALID.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    // Checksum: the header's 16-bit words sum to 0x55AA.
    let sum = h.chunks_exact(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    h.extend_from_slice(&0x55AAu16.wrapping_sub(sum).to_le_bytes());

    write_atomically(path, |tmp| {
        let f = File::create(tmp).with_context(|| format!("{name}: cannot create"))?;
        let mut w = BufWriter::new(f);
        let io = |e: std::io::Error| anyhow::anyhow!("{name}: cannot write: {e}");
        w.write_all(&h).map_err(io)?;
        w.write_all(info.as_bytes()).map_err(io)?;
        w.write_all(setup.as_bytes()).map_err(io)?;
        for md in &descs {
            w.write_all(md).map_err(io)?;
        }
        w.write_all(&body).map_err(io)?;
        w.flush().map_err(io)?;
        Ok(())
    })
}
