//! PicoQuant PTU (TTTR, T3 records) and PHU (histogram) files.
//!
//! Layout followed (PicoQuant's published PTU/PHU demo readers and the
//! "PTU file format" notes shipped with them; cross-checked against the
//! description in Christoph Gohlke's `ptufile`): an 8-byte magic
//! (`PQTTTR\0\0` for PTU, `PQHISTO\0` for PHU), an 8-byte version string,
//! then tag records of 48 bytes (32-byte NUL-padded name, `i32` index,
//! `u32` type, 8-byte value; strings, arrays and blobs follow their record
//! with the byte length given in the value) up to `Header_End`; then the
//! data: 32-bit T3 records (PTU) or `u32` histograms at the offsets given by
//! `HistResDscr_DataOffset` (PHU). Everything little-endian.

use super::{check_dims, LeReader, ReadOptions, Recording};
use crate::data::write_atomically;
use anyhow::{bail, Context, Result};
use ndarray::{Array3, ArrayView2, ArrayView3};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

pub const PTU_MAGIC: &[u8; 8] = b"PQTTTR\0\0";
pub const PHU_MAGIC: &[u8; 8] = b"PQHISTO\0";

// Tag types.
const TY_EMPTY8: u32 = 0xFFFF_0008;
const TY_BOOL8: u32 = 0x0000_0008;
const TY_INT8: u32 = 0x1000_0008;
const TY_BITSET64: u32 = 0x1100_0008;
const TY_COLOR8: u32 = 0x1200_0008;
const TY_FLOAT8: u32 = 0x2000_0008;
const TY_TDATETIME: u32 = 0x2100_0008;
const TY_FLOAT8ARRAY: u32 = 0x2001_FFFF;
const TY_ANSISTRING: u32 = 0x4001_FFFF;
const TY_WIDESTRING: u32 = 0x4002_FFFF;
const TY_BINARYBLOB: u32 = 0xFFFF_FFFF;

/// Most tags a header may hold.
const MAX_TAGS: usize = 100_000;
/// Longest string/array/blob value read (longer ones are refused).
const MAX_TAG_BYTES: i64 = 1 << 24;
/// Most photons buffered for one scan line.
const MAX_LINE_PHOTONS: usize = 1 << 24;
/// Records decoded per read.
const RECORDS_PER_READ: usize = 1 << 14;

/// The T3 record formats read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtuRecordType {
    /// PicoHarp 300 T3 (`0x00010303`): 16-bit nsync, 12-bit dtime, 4-bit channel.
    PicoHarpT3,
    /// HydraHarp v1 T3 (`0x00010304`): 10-bit nsync, 15-bit dtime, 6-bit
    /// channel, special bit; each overflow record adds 1024 syncs.
    HydraHarpT3,
    /// HydraHarp v2 / TimeHarp 260 / MultiHarp / generic T3 (`0x01010304`,
    /// `0x00010305`, `0x00010306`, `0x00010307`): as v1, but an overflow
    /// record carries its count in the nsync field.
    HydraHarp2T3,
}

impl PtuRecordType {
    /// The `TTResultFormat_TTTRRecType` code written for this format.
    pub fn code(self) -> i64 {
        match self {
            PtuRecordType::PicoHarpT3 => 0x0001_0303,
            PtuRecordType::HydraHarpT3 => 0x0001_0304,
            PtuRecordType::HydraHarp2T3 => 0x0101_0304,
        }
    }

    fn from_code(code: i64) -> Option<(Self, &'static str)> {
        Some(match code {
            0x0001_0303 => (PtuRecordType::PicoHarpT3, "PicoHarp T3"),
            0x0001_0304 => (PtuRecordType::HydraHarpT3, "HydraHarp v1 T3"),
            0x0101_0304 => (PtuRecordType::HydraHarp2T3, "HydraHarp v2 T3"),
            0x0001_0305 => (PtuRecordType::HydraHarp2T3, "TimeHarp 260 N T3"),
            0x0001_0306 => (PtuRecordType::HydraHarp2T3, "TimeHarp 260 P T3"),
            0x0001_0307 => (PtuRecordType::HydraHarp2T3, "MultiHarp/generic T3"),
            _ => return None,
        })
    }

    /// Number of dtime channels the format can hold.
    pub fn dtime_channels(self) -> u64 {
        match self {
            PtuRecordType::PicoHarpT3 => 1 << 12,
            _ => 1 << 15,
        }
    }

    fn wrap(self) -> u64 {
        match self {
            PtuRecordType::PicoHarpT3 => 1 << 16,
            _ => 1 << 10,
        }
    }

    fn hw_type(self) -> &'static str {
        match self {
            PtuRecordType::PicoHarpT3 => "PicoHarp 300",
            PtuRecordType::HydraHarpT3 => "HydraHarp 400",
            PtuRecordType::HydraHarp2T3 => "HydraHarp 400",
        }
    }
}

// ---------------------------------------------------------------------------
// Header

#[derive(Clone, Debug, PartialEq)]
enum TagValue {
    Int(i64),
    Float(f64),
    Str(String),
    Other,
}

struct Header {
    tags: HashMap<(String, i32), TagValue>,
    data_start: u64,
    /// What reading the header tolerated (odd tag names).
    notes: Vec<String>,
}

enum TagName {
    /// Printable ASCII up to the first NUL.
    Clean(String),
    /// Printable ASCII once control bytes at either end are dropped (e.g.
    /// SymPhoTime 64's `"\x02HWInpChan_CFDLeveld"`).
    Trimmed(String),
    /// Non-printable or non-ASCII bytes inside the name: kept escaped,
    /// matches no tag the reader uses.
    Garbled(String),
    /// Nothing but NULs, control bytes or spaces.
    Empty,
}

/// A tag's name from its 32-byte field, as other readers take it (`ptufile`
/// keeps the bytes before the NUL padding and ignores what is not ASCII):
/// the bytes up to the first NUL, control bytes and spaces at either end
/// dropped.
fn tag_name(ident: &[u8; 32]) -> TagName {
    let end = ident.iter().position(|&b| b == 0).unwrap_or(32);
    let raw = &ident[..end];
    let junk = |b: &u8| b.is_ascii_control() || *b == b' ';
    let a = raw.iter().position(|b| !junk(b)).unwrap_or(raw.len());
    let z = raw.iter().rposition(|b| !junk(b)).map_or(a, |z| z + 1);
    let core = &raw[a..z];
    if core.is_empty() {
        TagName::Empty
    } else if core.iter().all(u8::is_ascii_graphic) {
        let n = String::from_utf8_lossy(core).into_owned();
        if core.len() == raw.len() {
            TagName::Clean(n)
        } else {
            TagName::Trimmed(n)
        }
    } else {
        TagName::Garbled(escaped(core))
    }
}

/// Bytes as a quoted string, non-printable ones as `\xNN`.
fn escaped(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let mut s = String::from("\"");
    for &c in &b[..end] {
        if c.is_ascii_graphic() || c == b' ' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02X}"));
        }
    }
    s.push('"');
    s
}

impl Header {
    fn get(&self, name: &str, idx: i32) -> Option<&TagValue> {
        self.tags.get(&(name.to_string(), idx)).or_else(|| {
            if idx == -1 {
                self.tags.get(&(name.to_string(), 0))
            } else {
                None
            }
        })
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.int_at(name, -1)
    }

    fn int_at(&self, name: &str, idx: i32) -> Option<i64> {
        match self.get(name, idx)? {
            TagValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    fn float(&self, name: &str) -> Option<f64> {
        self.float_at(name, -1)
    }

    fn float_at(&self, name: &str, idx: i32) -> Option<f64> {
        match self.get(name, idx)? {
            TagValue::Float(v) => Some(*v),
            TagValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    fn string(&self, name: &str) -> Option<&str> {
        match self.get(name, -1)? {
            TagValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn open(path: &Path, kind: &str) -> Result<(LeReader<BufReader<File>>, u64)> {
    let name = format!("{kind} file {}", path.display());
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let len = file
        .metadata()
        .with_context(|| format!("{name}: cannot stat"))?
        .len();
    if len == 0 {
        bail!("{name}: empty file");
    }
    Ok((
        LeReader::new(BufReader::with_capacity(1 << 16, file), name),
        len,
    ))
}

fn read_header(
    r: &mut LeReader<BufReader<File>>,
    file_len: u64,
    magic: &[u8; 8],
    what: &str,
) -> Result<Header> {
    let m: [u8; 8] = r.array("the magic string")?;
    if &m != magic {
        bail!(
            "{}: bad magic {:?}, not a PicoQuant {what} file (expected {:?})",
            r.name,
            String::from_utf8_lossy(&m).trim_end_matches('\0'),
            String::from_utf8_lossy(magic).trim_end_matches('\0'),
        );
    }
    let _version: [u8; 8] = r.array("the version string")?;
    let mut tags = HashMap::new();
    let mut notes = Vec::new();
    for k in 0.. {
        if k >= MAX_TAGS {
            bail!(
                "{}: more than {MAX_TAGS} header tags, no Header_End",
                r.name
            );
        }
        let ident: [u8; 32] = r.array("a header tag")?;
        let idx = r.i32("a header tag")?;
        let ty = r.u32("a header tag")?;
        let raw: [u8; 8] = r.array("a header tag")?;
        let tname = match tag_name(&ident) {
            TagName::Clean(n) => n,
            TagName::Trimmed(n) => {
                let note = format!(
                    "header tag {} read as {n} (control bytes around the name dropped)",
                    escaped(&ident)
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
                n
            }
            TagName::Garbled(n) => {
                notes.push(format!(
                    "header tag {k} has a garbled name {n}: kept, not used"
                ));
                n
            }
            TagName::Empty => bail!(
                "{}: header tag {k} (at byte {}) has an empty name (corrupt header)",
                r.name,
                r.pos - 48
            ),
        };
        let value = match ty {
            TY_EMPTY8 => TagValue::Other,
            TY_BOOL8 | TY_INT8 | TY_BITSET64 | TY_COLOR8 => TagValue::Int(i64::from_le_bytes(raw)),
            TY_FLOAT8 | TY_TDATETIME => TagValue::Float(f64::from_le_bytes(raw)),
            TY_FLOAT8ARRAY | TY_ANSISTRING | TY_WIDESTRING | TY_BINARYBLOB => {
                let n = i64::from_le_bytes(raw);
                let left = file_len.saturating_sub(r.pos);
                if !(0..=MAX_TAG_BYTES).contains(&n) || n as u64 > left {
                    bail!(
                        "{}: tag {tname} claims {n} bytes of data ({left} bytes left in the file)",
                        r.name
                    );
                }
                if ty == TY_ANSISTRING {
                    let mut b = vec![0u8; n as usize];
                    r.bytes(&mut b, &format!("tag {tname}"))?;
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    TagValue::Str(String::from_utf8_lossy(&b[..end]).into_owned())
                } else {
                    r.skip(n as u64, &format!("tag {tname}"))?;
                    TagValue::Other
                }
            }
            other => bail!(
                "{}: header tag {tname} has unknown type 0x{other:08X} (corrupt header)",
                r.name
            ),
        };
        if tname == "Header_End" {
            break;
        }
        tags.insert((tname, idx), value);
    }
    Ok(Header {
        tags,
        data_start: r.pos,
        notes,
    })
}

// ---------------------------------------------------------------------------
// T3 records

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Overflow(u64),
    Marker(u32),
    Photon { channel: u32, dtime: u32 },
    Ignored,
}

#[inline]
fn decode(rt: PtuRecordType, r: u32) -> (Event, u64) {
    match rt {
        PtuRecordType::PicoHarpT3 => {
            let nsync = (r & 0xFFFF) as u64;
            let dtime = (r >> 16) & 0xFFF;
            let chan = r >> 28;
            if chan == 15 {
                let markers = dtime & 0xF;
                if markers == 0 {
                    (Event::Overflow(1 << 16), 0)
                } else {
                    (Event::Marker(markers), nsync)
                }
            } else {
                (
                    Event::Photon {
                        channel: chan,
                        dtime,
                    },
                    nsync,
                )
            }
        }
        PtuRecordType::HydraHarpT3 | PtuRecordType::HydraHarp2T3 => {
            let nsync = (r & 0x3FF) as u64;
            let dtime = (r >> 10) & 0x7FFF;
            let chan = (r >> 25) & 0x3F;
            if r >> 31 == 1 {
                if chan == 63 {
                    let n = if rt == PtuRecordType::HydraHarpT3 || nsync == 0 {
                        1
                    } else {
                        nsync
                    };
                    (Event::Overflow(n * 1024), 0)
                } else if (1..=15).contains(&chan) {
                    (Event::Marker(chan), nsync)
                } else {
                    (Event::Ignored, nsync)
                }
            } else {
                (
                    Event::Photon {
                        channel: chan,
                        dtime,
                    },
                    nsync,
                )
            }
        }
    }
}

/// Detector channel numbers a record can carry (6 bits on HydraHarp).
const MAX_DETECTOR_CHANNELS: usize = 64;

/// Call `f` with every raw record of the stream in order, reading
/// [`RECORDS_PER_READ`] records at a time.
fn for_each_record(
    r: &mut LeReader<BufReader<File>>,
    n_records: u64,
    mut f: impl FnMut(u32) -> Result<()>,
) -> Result<()> {
    let mut chunk = vec![0u8; RECORDS_PER_READ * 4];
    let mut done = 0u64;
    while done < n_records {
        let take = (n_records - done).min(RECORDS_PER_READ as u64) as usize;
        let bytes = &mut chunk[..take * 4];
        r.bytes(bytes, "the records")?;
        for rec in bytes.chunks_exact(4) {
            f(u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]))?;
        }
        done += take as u64;
    }
    Ok(())
}

/// Each detector channel's photons summed over the whole file, per dtime
/// channel (`channels` of them; photons beyond are not counted). Reads the
/// records from the current position; the caller seeks back.
fn survey_channels(
    r: &mut LeReader<BufReader<File>>,
    rt: PtuRecordType,
    n_records: u64,
    channels: u64,
) -> Result<Vec<(u32, Vec<u64>)>> {
    // At most 64 channels x 32768 dtime channels (the record's limits).
    let mut hist: Vec<Option<Vec<u64>>> = vec![None; MAX_DETECTOR_CHANNELS];
    for_each_record(r, n_records, |raw| {
        if let (Event::Photon { channel, dtime }, _) = decode(rt, raw) {
            if (dtime as u64) < channels && (channel as usize) < MAX_DETECTOR_CHANNELS {
                let h = hist[channel as usize].get_or_insert_with(|| vec![0; channels as usize]);
                h[dtime as usize] += 1;
            }
        }
        Ok(())
    })?;
    Ok(hist
        .into_iter()
        .enumerate()
        .filter_map(|(c, h)| h.map(|h| (c as u32, h)))
        .collect())
}

/// Where a summed decay peaks (ns from the sync, bin centres): the middle
/// of the run of bins around the maximum of the box-smoothed decay (window
/// ~0.2 ns, at least 3 bins) that lie within two Poisson standard
/// deviations of that maximum; the run's ends are returned too. A flat or
/// noisy top gives a wide run, so peaks are only called misaligned when
/// the runs are disjoint.
fn decay_peak(hist: &[u64], res_ns: f64) -> (f64, f64, f64) {
    let n = hist.len();
    let w = ((0.2 / res_ns).round() as usize).max(3) | 1;
    let half = w / 2;
    let s: Vec<f64> = (0..n)
        .map(|k| {
            let (a, b) = (k.saturating_sub(half), (k + half + 1).min(n));
            hist[a..b].iter().sum::<u64>() as f64 / (b - a) as f64
        })
        .collect();
    let k = (0..n)
        .max_by(|&a, &b| s[a].total_cmp(&s[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let thr = s[k] - 2.0 * (s[k] / w as f64).sqrt();
    let (mut a, mut b) = (k, k);
    while a > 0 && s[a - 1] >= thr {
        a -= 1;
    }
    while b + 1 < n && s[b + 1] >= thr {
        b += 1;
    }
    let t = |i: f64| (i + 0.5) * res_ns;
    (t((a + b) as f64 / 2.0), t(a as f64), t(b as f64))
}

/// Which detector channel to keep (`None` = all). A requested channel must
/// hold photons. Otherwise, with photons on several channels, the decay
/// peaks of the channels holding at least 1 % of the photons (and 100) are
/// compared with the one holding the most: more than one dtime channel and
/// 0.1 ns apart (and beyond each other's peak run, see [`decay_peak`]) is
/// misaligned, and then only the channel with the most photons is kept.
fn choose_channel(
    name: &str,
    per_channel: &[(u32, Vec<u64>)],
    requested: Option<u32>,
    res_ns: f64,
    notes: &mut Vec<String>,
) -> Result<Option<u32>> {
    let counts: Vec<(u32, u64, &[u64])> = per_channel
        .iter()
        .map(|(c, h)| (*c, h.iter().sum::<u64>(), h.as_slice()))
        .filter(|&(_, n, _)| n > 0)
        .collect();
    let listing = counts
        .iter()
        .map(|(c, n, _)| format!("{c}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(c) = requested {
        if !counts.iter().any(|&(k, _, _)| k == c) {
            bail!(
                "{name}: detector channel {c} holds no photons (photons per channel: {})",
                if listing.is_empty() { "none" } else { &listing }
            );
        }
        if counts.len() > 1 {
            notes.push(format!(
                "detector channel {c} used as asked (photons per channel: {listing})"
            ));
        }
        return Ok(Some(c));
    }
    if counts.len() < 2 {
        return Ok(None);
    }
    let total: u64 = counts.iter().map(|c| c.1).sum();
    let &(top, _, top_hist) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .expect("two channels");
    let (p0, lo0, hi0) = decay_peak(top_hist, res_ns);
    let tol = res_ns.max(0.1);
    let mut peaks = Vec::new();
    let mut worst: Option<(u32, f64)> = None;
    for &(c, n, h) in &counts {
        if n < 100 || n * 100 < total {
            continue;
        }
        let (p, lo, hi) = decay_peak(h, res_ns);
        peaks.push(format!("{p:.2} ns (channel {c})"));
        let d = (p - p0).abs();
        let disjoint = hi < lo0 || lo > hi0;
        if c != top && d > tol && disjoint && worst.is_none_or(|w| d > w.1) {
            worst = Some((c, d));
        }
    }
    let peaks = peaks.join(", ");
    Ok(match worst {
        Some((c, d)) => {
            notes.push(format!(
                "warning: the detector channels' decays are misaligned: peaks at {peaks}, channel {c} {d:.2} ns from channel {top} (more than {tol:.2} ns); only channel {top}, the one with the most photons, used (photons per channel: {listing}; choose another with --channel)"
            ));
            Some(top)
        }
        None => {
            notes.push(format!(
                "detector channels summed, their decay peaks aligned within {tol:.2} ns: peaks at {peaks} (photons per channel: {listing})"
            ));
            None
        }
    })
}

/// Read a PTU T3 file into per-pixel micro-time histograms.
///
/// With `ImgHdr_PixX`/`PixY` and line markers: photons between a line
/// start and the next line stop are placed at pixel
/// `floor((t - start) * PixX / (stop - start))` of the current line (times
/// in syncs), lines are counted from each frame marker, bidirectional scans
/// (`ImgHdr_BiDirect`) reverse every other line, and all frames are summed.
/// Without image tags every photon goes to one pixel (`[1, 1, bins]`).
pub fn read_ptu(path: &Path, opts: &ReadOptions) -> Result<Recording> {
    let (mut r, file_len) = open(path, "ptu")?;
    let h = read_header(&mut r, file_len, PTU_MAGIC, "PTU")?;
    let name = r.name.clone();
    if let Some(mode) = h.int("Measurement_Mode") {
        match mode {
            3 => {}
            2 => bail!("{name}: T2 measurement (no micro-times): FLIM needs T3 records"),
            0 => bail!("{name}: histogram-mode PTU is not supported (use a .phu export)"),
            m => bail!("{name}: unsupported Measurement_Mode {m} (need 3 = T3)"),
        }
    }
    let code = h
        .int("TTResultFormat_TTTRRecType")
        .with_context(|| format!("{name}: no TTResultFormat_TTTRRecType tag"))?;
    let Some((rt, rt_name)) = PtuRecordType::from_code(code) else {
        let t2 = matches!(code & 0xFF00, 0x0200);
        bail!(
            "{name}: unsupported record type 0x{code:08X}{} (supported: PicoHarp T3, HydraHarp v1/v2 T3, TimeHarp 260 T3, MultiHarp T3)",
            if t2 { ", a T2 format without micro-times" } else { "" }
        );
    };
    if let Some(bits) = h.int("TTResultFormat_BitsPerRecord") {
        if bits != 32 {
            bail!("{name}: {bits} bits per record, expected 32");
        }
    }
    let res_s = h
        .float("MeasDesc_Resolution")
        .with_context(|| format!("{name}: no MeasDesc_Resolution tag (dtime bin width)"))?;
    if !(res_s.is_finite() && res_s > 0.0 && res_s < 1e-6) {
        bail!("{name}: MeasDesc_Resolution {res_s} s is not a plausible dtime bin width");
    }
    let period_s = match h.float("MeasDesc_GlobalResolution") {
        None => None,
        Some(p) if p.is_finite() && p > 0.0 && p < 1.0 => Some(p),
        Some(p) => bail!("{name}: MeasDesc_GlobalResolution {p} s is not a plausible sync period"),
    };
    let mut notes = h.notes.clone();
    let hw_channels = rt.dtime_channels();
    let channels = match period_s {
        Some(p) => ((p / res_s) * (1.0 - 1e-9))
            .ceil()
            .clamp(1.0, hw_channels as f64) as u64,
        None => {
            notes.push(format!(
                "no sync period in the header: kept all {hw_channels} dtime channels"
            ));
            hw_channels
        }
    };
    let binning = opts.dtime_binning.max(1) as u64;
    if binning > channels {
        bail!("{name}: dtime binning {binning} is more than the {channels} channels recorded");
    }
    let bins = channels.div_ceil(binning);

    let img = (
        h.int("ImgHdr_PixX"),
        h.int("ImgHdr_PixY"),
        h.int("ImgHdr_LineStart"),
        h.int("ImgHdr_LineStop"),
    );
    let image = match img {
        (Some(px), Some(py), Some(ls), Some(le)) => {
            for (t, v) in [("ImgHdr_PixX", px), ("ImgHdr_PixY", py)] {
                if v <= 0 || v as u64 > super::MAX_IMAGE_SIDE {
                    bail!(
                        "{name}: {t} = {v} is not a plausible image size (1..={})",
                        super::MAX_IMAGE_SIDE
                    );
                }
            }
            let mask = |t: &str, v: i64| -> Result<u32> {
                if !(1..=15).contains(&v) {
                    bail!("{name}: {t} = {v} is not a marker number 1..=15");
                }
                Ok(1 << (v - 1))
            };
            let frame = match h.int("ImgHdr_Frame") {
                Some(f) => mask("ImgHdr_Frame", f)?,
                None => 0,
            };
            Some((
                px as u64,
                py as u64,
                mask("ImgHdr_LineStart", ls)?,
                mask("ImgHdr_LineStop", le)?,
                frame,
            ))
        }
        (None, None, None, None) => {
            notes.push("no image tags: all photons summed into one pixel".to_string());
            None
        }
        _ => bail!(
            "{name}: incomplete image header (need ImgHdr_PixX, ImgHdr_PixY, ImgHdr_LineStart and ImgHdr_LineStop)"
        ),
    };
    let (width, height) = image.map(|i| (i.0, i.1)).unwrap_or((1, 1));
    check_dims(&name, height, width, bins)?;
    let bidirectional = h.int("ImgHdr_BiDirect").unwrap_or(0) != 0;
    if bidirectional {
        notes.push("bidirectional scan: odd lines reversed".to_string());
    }

    let left = file_len - h.data_start;
    let n_records = match h.int("TTResult_NumberOfRecords") {
        Some(n) if n >= 0 => {
            let n = n as u64;
            if n.saturating_mul(4) > left {
                bail!(
                    "{name}: truncated: header claims {n} records ({} bytes), {left} bytes follow the header",
                    n.saturating_mul(4)
                );
            }
            if n * 4 < left {
                notes.push(format!(
                    "{} bytes after the last record ignored",
                    left - n * 4
                ));
            }
            n
        }
        Some(n) => bail!("{name}: TTResult_NumberOfRecords = {n} is negative"),
        None => {
            if left % 4 != 0 {
                bail!(
                    "{name}: truncated: {left} bytes of records is not a whole number of records"
                );
            }
            notes.push("no TTResult_NumberOfRecords tag: records read to the end".to_string());
            left / 4
        }
    };

    // First pass: each detector channel's summed decay, to choose channels.
    let per_channel = survey_channels(&mut r, rt, n_records, channels)?;
    let keep = choose_channel(&name, &per_channel, opts.channel, res_s * 1e9, &mut notes)?;
    r.inner
        .seek(SeekFrom::Start(h.data_start))
        .with_context(|| format!("{name}: cannot seek back to the records"))?;
    r.pos = h.data_start;

    // Sizes checked above: allocation is bounded by MAX_HISTOGRAM_ELEMENTS.
    let (hh, ww, bb) = (height as usize, width as usize, bins as usize);
    let mut counts = Array3::<u32>::zeros((hh, ww, bb));
    let flat = counts.as_slice_mut().expect("fresh array is contiguous");
    let mut ovf: u64 = 0;
    let mut line = 0u64;
    let mut in_line = false;
    let mut start = 0u64;
    let mut buf: Vec<(u64, u32)> = Vec::new();
    let (mut frames, mut lines_beyond, mut dropped_range, mut dropped_outside) =
        (0u64, 0u64, 0u64, 0u64);
    let mut photons = 0u64;
    let bin_of = |dtime: u32| (dtime as u64 / binning) as usize;
    for_each_record(&mut r, n_records, |raw| {
        let (ev, nsync) = decode(rt, raw);
        let t = ovf + nsync;
        match ev {
            Event::Overflow(n) => ovf += n,
            Event::Ignored => {}
            Event::Marker(m) => {
                let Some((px, py, ls, le, fm)) = image else {
                    return Ok(());
                };
                if m & le != 0 && in_line {
                    let dur = t.saturating_sub(start);
                    if line < py && dur > 0 {
                        let row = line as usize;
                        let rev = bidirectional && line % 2 == 1;
                        for &(rel, dt) in &buf {
                            let x = (rel as u128 * px as u128 / dur as u128) as u64;
                            if x >= px {
                                dropped_outside += 1;
                                continue;
                            }
                            let x = if rev { px - 1 - x } else { x } as usize;
                            let c = &mut flat[(row * ww + x) * bb + bin_of(dt)];
                            *c = c.saturating_add(1);
                            photons += 1;
                        }
                    } else {
                        if line >= py {
                            lines_beyond += 1;
                        }
                        dropped_outside += buf.len() as u64;
                    }
                    buf.clear();
                    line += 1;
                    in_line = false;
                }
                if fm != 0 && m & fm != 0 {
                    if line > 0 {
                        frames += 1;
                    }
                    line = 0;
                    dropped_outside += buf.len() as u64;
                    buf.clear();
                    in_line = false;
                }
                if m & ls != 0 {
                    dropped_outside += buf.len() as u64;
                    buf.clear();
                    in_line = true;
                    start = t;
                }
            }
            Event::Photon { channel, dtime } => {
                if keep.is_some_and(|c| c != channel) {
                    return Ok(());
                }
                if dtime as u64 >= channels {
                    dropped_range += 1;
                    return Ok(());
                }
                if image.is_none() {
                    let c = &mut flat[bin_of(dtime)];
                    *c = c.saturating_add(1);
                    photons += 1;
                } else if in_line {
                    if buf.len() >= MAX_LINE_PHOTONS {
                        bail!(
                                "{name}: more than {MAX_LINE_PHOTONS} photons in one scan line (corrupt markers?)"
                            );
                    }
                    buf.push((t.saturating_sub(start), dtime));
                } else {
                    dropped_outside += 1;
                }
            }
        }
        Ok(())
    })?;
    if image.is_some() {
        if line > 0 {
            frames += 1;
        }
        dropped_outside += buf.len() as u64;
        notes.push(format!("{frames} frame(s) summed"));
    }
    if dropped_outside > 0 {
        notes.push(format!(
            "{dropped_outside} photons outside scan lines or the image dropped"
        ));
    }
    if lines_beyond > 0 {
        notes.push(format!("{lines_beyond} lines beyond ImgHdr_PixY ignored"));
    }
    if dropped_range > 0 {
        notes.push(format!(
            "{dropped_range} photons with dtime beyond the sync period dropped"
        ));
    }
    if binning > 1 {
        notes.push(format!("dtime channels binned by {binning}"));
    }
    if photons == 0 {
        bail!("{name}: no photons in the image ({n_records} records)");
    }
    Ok(super::finish(Recording {
        counts,
        bin_width_ns: res_s * 1e9 * binning as f64,
        period_ns: period_s.map(|p| p * 1e9),
        source: format!(
            "PTU {} ({rt_name}{})",
            if image.is_some() {
                "T3 image"
            } else {
                "T3 point"
            },
            h.string("HW_Type")
                .map(|s| format!(", {s}"))
                .unwrap_or_default()
        ),
        notes,
        valid_bins: 0..bins as usize,
    }))
}

/// Read a PHU histogram file: each curve becomes one pixel of a
/// `[1, curves, bins]` recording. All curves must share bin count and
/// resolution.
pub fn read_phu(path: &Path) -> Result<Recording> {
    let (mut r, file_len) = open(path, "phu")?;
    let h = read_header(&mut r, file_len, PHU_MAGIC, "PHU")?;
    let name = r.name.clone();
    let n = h
        .int("HistoResult_NumberOfCurves")
        .with_context(|| format!("{name}: no HistoResult_NumberOfCurves tag"))?;
    if !(1..=super::MAX_IMAGE_SIDE as i64).contains(&n) {
        bail!("{name}: HistoResult_NumberOfCurves = {n} is not plausible");
    }
    let mut curves = Vec::new();
    for i in 0..n as i32 {
        let off = h.int_at("HistResDscr_DataOffset", i);
        let bins = h.int_at("HistResDscr_HistogramBins", i);
        let res = h.float_at("HistResDscr_MDescResolution", i);
        let (Some(off), Some(bins), Some(res)) = (off, bins, res) else {
            bail!("{name}: curve {i} lacks HistResDscr_DataOffset, _HistogramBins or _MDescResolution");
        };
        if bins <= 0 || bins as u64 > super::MAX_BINS {
            bail!("{name}: curve {i} claims {bins} bins");
        }
        if !(res.is_finite() && res > 0.0 && res < 1e-6) {
            bail!("{name}: curve {i} resolution {res} s is not plausible");
        }
        if off < h.data_start as i64 || (off as u64).saturating_add(bins as u64 * 4) > file_len {
            bail!(
                "{name}: truncated: curve {i} ({bins} bins at byte {off}) lies beyond the file ({file_len} bytes)"
            );
        }
        curves.push((off as u64, bins as u64, res));
    }
    let (bins, res) = (curves[0].1, curves[0].2);
    if curves
        .iter()
        .any(|c| c.1 != bins || (c.2 - res).abs() > 1e-9 * res)
    {
        bail!("{name}: curves differ in bin count or resolution");
    }
    check_dims(&name, 1, n as u64, bins)?;
    let mut counts = Array3::<u32>::zeros((1, n as usize, bins as usize));
    let mut raw = vec![0u8; bins as usize * 4];
    for (i, &(off, _, _)) in curves.iter().enumerate() {
        r.inner
            .seek(SeekFrom::Start(off))
            .with_context(|| format!("{name}: cannot seek to curve {i}"))?;
        r.pos = off;
        r.bytes(&mut raw, &format!("curve {i}"))?;
        for (c, b) in counts
            .slice_mut(ndarray::s![0, i, ..])
            .iter_mut()
            .zip(raw.chunks_exact(4))
        {
            *c = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    let period_ns = h
        .int_at("HistResDscr_SyncRate", 0)
        .filter(|&s| s > 0)
        .map(|s| 1e9 / s as f64);
    let mut notes = h.notes.clone();
    notes.push(format!("{n} curve(s) read as one row of pixels"));
    Ok(super::finish(Recording {
        counts,
        bin_width_ns: res * 1e9,
        period_ns,
        source: "PHU histograms".to_string(),
        notes,
        valid_bins: 0..bins as usize,
    }))
}

// ---------------------------------------------------------------------------
// Writers

#[derive(Default)]
struct TagWriter {
    buf: Vec<u8>,
}

impl TagWriter {
    fn head(&mut self, name: &str, idx: i32, ty: u32) {
        let mut ident = [0u8; 32];
        ident[..name.len()].copy_from_slice(name.as_bytes());
        self.buf.extend_from_slice(&ident);
        self.buf.extend_from_slice(&idx.to_le_bytes());
        self.buf.extend_from_slice(&ty.to_le_bytes());
    }
    fn int(&mut self, name: &str, idx: i32, v: i64) {
        self.head(name, idx, TY_INT8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, name: &str, v: bool) {
        self.head(name, -1, TY_BOOL8);
        self.buf.extend_from_slice(&(v as i64).to_le_bytes());
    }
    fn float(&mut self, name: &str, idx: i32, v: f64) {
        self.head(name, idx, TY_FLOAT8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn string(&mut self, name: &str, s: &str) {
        // NUL-terminated, padded to a multiple of 8 bytes.
        let len = (s.len() + 1).div_ceil(8) * 8;
        self.head(name, -1, TY_ANSISTRING);
        self.buf.extend_from_slice(&(len as i64).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.resize(self.buf.len() + len - s.len(), 0);
    }
    fn end(&mut self) {
        self.head("Header_End", -1, TY_EMPTY8);
        self.buf.extend_from_slice(&[0u8; 8]);
    }
}

fn preamble(magic: &[u8; 8]) -> TagWriter {
    let mut w = TagWriter::default();
    w.buf.extend_from_slice(magic);
    w.buf.extend_from_slice(b"1.0.00\0\0");
    w
}

/// What a T3 image PTU is written with.
#[derive(Clone, Debug, PartialEq)]
pub struct PtuT3Spec {
    pub record_type: PtuRecordType,
    pub width: usize,
    pub height: usize,
    /// dtime channel width (ns), `MeasDesc_Resolution`.
    pub resolution_ns: f64,
    /// Sync (laser) period (ns), `MeasDesc_GlobalResolution`.
    pub period_ns: f64,
    /// Pixel dwell time in sync periods.
    pub pixel_syncs: u32,
    /// Syncs between a line stop and the next line start (flyback).
    pub flyback_syncs: u32,
}

impl PtuT3Spec {
    /// HydraHarp v2 T3, 16 syncs per pixel, 100 syncs of flyback.
    pub fn new(width: usize, height: usize, resolution_ns: f64, period_ns: f64) -> Self {
        PtuT3Spec {
            record_type: PtuRecordType::HydraHarp2T3,
            width,
            height,
            resolution_ns,
            period_ns,
            pixel_syncs: 16,
            flyback_syncs: 100,
        }
    }

    /// dtime channels within one sync period.
    pub fn channels(&self) -> u64 {
        ((self.period_ns / self.resolution_ns) * (1.0 - 1e-9))
            .ceil()
            .clamp(1.0, self.record_type.dtime_channels() as f64) as u64
    }
}

struct RecordSink {
    rt: PtuRecordType,
    ovf: u64,
    out: Vec<u32>,
}

impl RecordSink {
    fn at(&mut self, t: u64) -> u32 {
        let wrap = self.rt.wrap();
        while t - self.ovf >= wrap {
            match self.rt {
                PtuRecordType::PicoHarpT3 => {
                    self.out.push(0xF << 28);
                    self.ovf += wrap;
                }
                PtuRecordType::HydraHarpT3 => {
                    self.out.push(0xFE00_0000);
                    self.ovf += wrap;
                }
                PtuRecordType::HydraHarp2T3 => {
                    let n = ((t - self.ovf) / wrap).min(1023);
                    self.out.push(0xFE00_0000 | n as u32);
                    self.ovf += n * wrap;
                }
            }
        }
        (t - self.ovf) as u32
    }
    fn marker(&mut self, t: u64, mask: u32) {
        let n = self.at(t);
        self.out.push(match self.rt {
            PtuRecordType::PicoHarpT3 => (0xF << 28) | (mask << 16) | n,
            _ => 0x8000_0000 | (mask << 25) | n,
        });
    }
    fn photon(&mut self, t: u64, dtime: u32) {
        let n = self.at(t);
        self.out.push(match self.rt {
            PtuRecordType::PicoHarpT3 => (1 << 28) | (dtime << 16) | n,
            _ => (dtime << 10) | n,
        });
    }
}

/// Write a T3 image PTU from per-pixel photon micro-times (dtime channel
/// numbers). `photons` holds `frames * height * width` lists, frame by
/// frame, rows top to bottom, pixels left to right. Each line is framed by
/// a line-start (marker 1) and line-stop (marker 2) record, each frame
/// ends with a frame marker (marker 3); a pixel's photons are spread
/// evenly over its dwell time.
pub fn write_ptu_t3_image(path: &Path, spec: &PtuT3Spec, photons: &[Vec<u16>]) -> Result<()> {
    let name = format!("ptu file {}", path.display());
    let px = spec.width * spec.height;
    if px == 0 || photons.is_empty() || !photons.len().is_multiple_of(px) {
        bail!(
            "{name}: {} photon lists for a {} x {} image",
            photons.len(),
            spec.width,
            spec.height
        );
    }
    if !(spec.resolution_ns > 0.0 && spec.period_ns >= spec.resolution_ns && spec.period_ns < 1e9) {
        bail!(
            "{name}: resolution {} ns / period {} ns are not usable",
            spec.resolution_ns,
            spec.period_ns
        );
    }
    if spec.pixel_syncs == 0 {
        bail!("{name}: pixel dwell of 0 syncs");
    }
    let channels = spec.channels();
    let frames = photons.len() / px;
    let mut sink = RecordSink {
        rt: spec.record_type,
        ovf: 0,
        out: Vec::new(),
    };
    let p = spec.pixel_syncs as u64;
    let mut t = spec.flyback_syncs as u64;
    for f in 0..frames {
        for y in 0..spec.height {
            sink.marker(t, 1);
            for x in 0..spec.width {
                let list = &photons[(f * spec.height + y) * spec.width + x];
                let k = list.len() as u64;
                for (j, &dt) in list.iter().enumerate() {
                    if dt as u64 >= channels {
                        bail!("{name}: dtime {dt} is beyond the {channels} channels of one period");
                    }
                    sink.photon(t + x as u64 * p + j as u64 * p / k, dt as u32);
                }
            }
            t += spec.width as u64 * p;
            sink.marker(t, 2);
            t += spec.flyback_syncs as u64;
        }
        sink.marker(t, 4);
        t += spec.flyback_syncs as u64;
    }
    let rt = spec.record_type;
    let mut w = preamble(PTU_MAGIC);
    w.string("File_Comment", "T3 image written by flimgru");
    w.string("CreatorSW_Name", "flimgru");
    w.string("HW_Type", rt.hw_type());
    w.int("Measurement_Mode", -1, 3);
    w.int("Measurement_SubMode", -1, 3);
    w.int("MeasDesc_BinningFactor", -1, 1);
    w.float("MeasDesc_Resolution", -1, spec.resolution_ns * 1e-9);
    w.float("MeasDesc_GlobalResolution", -1, spec.period_ns * 1e-9);
    w.int(
        "TTResult_SyncRate",
        -1,
        (1e9 / spec.period_ns).round() as i64,
    );
    w.int("TTResult_NumberOfRecords", -1, sink.out.len() as i64);
    w.int("TTResultFormat_TTTRRecType", -1, rt.code());
    w.int("TTResultFormat_BitsPerRecord", -1, 32);
    w.int("ImgHdr_Dimensions", -1, 3);
    w.int("ImgHdr_Ident", -1, 3);
    w.int("ImgHdr_PixX", -1, spec.width as i64);
    w.int("ImgHdr_PixY", -1, spec.height as i64);
    w.int("ImgHdr_LineStart", -1, 1);
    w.int("ImgHdr_LineStop", -1, 2);
    w.int("ImgHdr_Frame", -1, 3);
    w.bool("ImgHdr_BiDirect", false);
    w.int("ImgHdr_SinCorrection", -1, 0);
    w.end();
    write_atomically(path, |tmp| {
        let f = File::create(tmp).with_context(|| format!("{name}: cannot create"))?;
        let mut bw = BufWriter::new(f);
        bw.write_all(&w.buf)
            .with_context(|| format!("{name}: cannot write"))?;
        for rec in &sink.out {
            bw.write_all(&rec.to_le_bytes())
                .with_context(|| format!("{name}: cannot write"))?;
        }
        bw.flush()
            .with_context(|| format!("{name}: cannot write"))?;
        Ok(())
    })
}

/// Write histograms `[height, width, channels]` as a one-frame T3 image
/// PTU: each count becomes a photon whose dtime is its channel number.
pub fn write_ptu_t3_counts(path: &Path, spec: &PtuT3Spec, counts: ArrayView3<u32>) -> Result<()> {
    let (h, w, c) = counts.dim();
    if (h, w) != (spec.height, spec.width) {
        bail!(
            "ptu file {}: counts of {h} x {w} pixels for a {} x {} spec",
            path.display(),
            spec.height,
            spec.width
        );
    }
    if c as u64 > spec.channels() || c > u16::MAX as usize + 1 {
        bail!(
            "ptu file {}: {c} channels do not fit the {} of one sync period",
            path.display(),
            spec.channels()
        );
    }
    let mut photons = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let mut list = Vec::new();
            for (k, &n) in counts.slice(ndarray::s![y, x, ..]).iter().enumerate() {
                list.extend(std::iter::repeat_n(k as u16, n as usize));
            }
            photons.push(list);
        }
    }
    write_ptu_t3_image(path, spec, &photons)
}

/// Write histograms `[curves, bins]` as a PHU file (one curve per row).
pub fn write_phu(path: &Path, curves: ArrayView2<u32>, resolution_ns: f64) -> Result<()> {
    let name = format!("phu file {}", path.display());
    let (n, bins) = curves.dim();
    if n == 0 || bins == 0 {
        bail!("{name}: nothing to write");
    }
    let build = |data_start: u64| {
        let mut w = preamble(PHU_MAGIC);
        w.string("CreatorSW_Name", "flimgru");
        w.int("Measurement_Mode", -1, 0);
        w.int("HistoResult_NumberOfCurves", -1, n as i64);
        for i in 0..n {
            w.int(
                "HistResDscr_DataOffset",
                i as i32,
                (data_start + (i * bins * 4) as u64) as i64,
            );
            w.int("HistResDscr_HistogramBins", i as i32, bins as i64);
            w.float(
                "HistResDscr_MDescResolution",
                i as i32,
                resolution_ns * 1e-9,
            );
        }
        w.end();
        w.buf
    };
    let len = build(0).len() as u64;
    let header = build(len);
    write_atomically(path, |tmp| {
        let f = File::create(tmp).with_context(|| format!("{name}: cannot create"))?;
        let mut bw = BufWriter::new(f);
        bw.write_all(&header)
            .with_context(|| format!("{name}: cannot write"))?;
        for &c in curves.iter() {
            bw.write_all(&c.to_le_bytes())
                .with_context(|| format!("{name}: cannot write"))?;
        }
        bw.flush()
            .with_context(|| format!("{name}: cannot write"))?;
        Ok(())
    })
}
