//! Files: raw counts (`.npy`), ground truth (`.csv`), histograms from a
//! user (`.npy` of any numeric dtype, 2-D or 3-D, or `.csv`), all writes
//! through [`crate::output`] (atomic, never over an input).
//!
//! `.npy` files are parsed here rather than by `ndarray-npy`'s reader,
//! which allocates the element count the header claims before reading: the
//! header's shape is checked against the file length first.

use super::Truth;
use anyhow::{bail, Context, Result};
use ndarray::{Array2, ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::WriteNpyExt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Longest `.npy` header accepted (bytes).
const MAX_NPY_HEADER: usize = 1 << 20;

/// Most values one histogram file may hold (2^27: 1 GiB as f64 while
/// reading, e.g. a 512 x 512 image of 512 gates); a larger request is an
/// error before it is allocated.
pub const MAX_INPUT_VALUES: u64 = 1 << 27;

/// Largest `.csv` histogram file read (bytes); larger data belongs in a
/// `.npy`. The read itself is bounded, so a device or a file that grows
/// while being read (`/dev/zero`) stops here too.
pub const MAX_CSV_BYTES: u64 = 256 << 20;

/// A reader that fails once more than `left` bytes have been read.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(std::io::Error::other(format!(
                "larger than {} MiB, the most a .csv histogram file may hold (use .npy)",
                MAX_CSV_BYTES >> 20
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

pub use crate::output::write_atomically;

/// Raw counts `[n, G]` as a little-endian `<u4` `.npy`.
pub fn write_counts_npy(path: &Path, counts: &Array2<u32>) -> Result<()> {
    crate::output::write_with(path, |w| Ok(counts.write_npy(w)?))
}

/// Any `f32` array as `.npy` (used for preprocessed inputs and targets).
pub fn write_f32_npy<D: ndarray::Dimension>(path: &Path, a: &ndarray::Array<f32, D>) -> Result<()> {
    crate::output::write_with(path, |w| Ok(a.write_npy(w)?))
}

/// Ground truth, one row per pixel, with a header row.
pub fn write_truth_csv(path: &Path, truth: &[Truth]) -> Result<()> {
    crate::output::write_with(path, |out| {
        let mut w = csv::Writer::from_writer(out);
        for t in truth {
            w.serialize(t)?;
        }
        w.flush()?;
        Ok(())
    })
}

pub fn read_truth_csv(path: &Path) -> Result<Vec<Truth>> {
    let name = path.display();
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("truth file {name}: cannot open"))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        let t: Truth =
            row.with_context(|| format!("truth file {name}: row {} is invalid", i + 1))?;
        out.push(t);
    }
    if out.is_empty() {
        bail!("truth file {name}: no rows");
    }
    Ok(out)
}

/// Histograms read from a user's file.
#[derive(Clone, Debug, PartialEq)]
pub struct Histograms {
    /// `[n, G]` counts (or intensities) per pixel.
    pub counts: Array2<f32>,
    /// `(h, w)` if the file was an image `[h, w, G]`; pixels are row-major.
    pub shape: Option<(usize, usize)>,
}

/// Read `.npy` (`[n, G]` or `[h, w, G]`, any integer or float dtype) or
/// `.csv` (one pixel per row, optional header row) histograms.
pub fn read_histograms(path: &Path) -> Result<Histograms> {
    let name = path.display();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (shape, values) = match ext.as_str() {
        "npy" => read_npy_f64(path)?,
        "csv" | "txt" => read_csv_f64(path)?,
        _ => bail!("histogram file {name}: unknown extension, expected .npy or .csv"),
    };
    histograms_from_values(
        &format!("histogram file {name}"),
        &shape,
        values.into_iter(),
    )
}

/// Histograms from `values` in row-major order of `shape` (`[n, G]` or
/// `[h, w, G]`), checked as [`read_histograms`] checks a file: every value
/// finite, non-negative and within f32. `what` names the data in errors.
pub fn histograms_from_values(
    what: &str,
    shape: &[usize],
    values: impl ExactSizeIterator<Item = f64>,
) -> Result<Histograms> {
    let (n, g, image) = match shape[..] {
        [n, g] => (n, g, None),
        [h, w, g] => (h * w, g, Some((h, w))),
        _ => bail!(
            "{what}: expected shape [pixels, gates] or [height, width, gates], found {shape:?}"
        ),
    };
    if n == 0 {
        bail!("{what}: zero pixels");
    }
    if g == 0 {
        bail!("{what}: zero gates");
    }
    let mut counts = Vec::with_capacity(values.len());
    for (i, v) in values.enumerate() {
        if !v.is_finite() {
            bail!(
                "{what}: value {v} at pixel {}, gate {} is not finite",
                i / g,
                i % g
            );
        }
        if v < 0.0 {
            bail!(
                "{what}: negative count {v} at pixel {}, gate {}",
                i / g,
                i % g
            );
        }
        let f = v as f32;
        if !f.is_finite() {
            bail!(
                "{what}: value {v} at pixel {}, gate {} overflows f32",
                i / g,
                i % g
            );
        }
        counts.push(f);
    }
    let counts = Array2::from_shape_vec((n, g), counts)
        .with_context(|| format!("{what}: inconsistent shape"))?;
    Ok(Histograms {
        counts,
        shape: image,
    })
}

fn read_csv_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("histogram file {name}: cannot open"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("histogram file {name}: cannot open"))?;
    if meta.is_file() && meta.len() > MAX_CSV_BYTES {
        bail!(
            "histogram file {name}: {} MiB is larger than {} MiB, the most a .csv histogram file may hold (use .npy)",
            meta.len() >> 20,
            MAX_CSV_BYTES >> 20
        );
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(Bounded {
            inner: BufReader::new(file),
            left: MAX_CSV_BYTES,
        });
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0usize, None::<usize>);
    for (i, rec) in rdr.records().enumerate() {
        let rec =
            rec.with_context(|| format!("histogram file {name}: unreadable row {}", i + 1))?;
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let parsed: Result<Vec<f64>, _> = rec.iter().map(|f| f.parse::<f64>()).collect();
        let row = match parsed {
            Ok(r) => r,
            Err(_) if i == 0 => continue, // header row
            Err(e) => bail!(
                "histogram file {name}: row {} has a non-numeric field: {e}",
                i + 1
            ),
        };
        match cols {
            None => cols = Some(row.len()),
            Some(c) if c != row.len() => bail!(
                "histogram file {name}: row {} has {} columns, earlier rows {c}",
                i + 1,
                row.len()
            ),
            _ => {}
        }
        if (values.len() + row.len()) as u64 > MAX_INPUT_VALUES {
            bail!(
                "histogram file {name}: more than {MAX_INPUT_VALUES} values, the most one file may hold"
            );
        }
        values.extend(row);
        rows += 1;
    }
    let Some(cols) = cols else {
        bail!("histogram file {name}: empty (no data rows)");
    };
    Ok((vec![rows, cols], values))
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    U,
    I,
    F,
}

/// Read any numeric `.npy` into `f64` in logical (C) order, with its shape.
/// The header's shape is checked against the file length before anything
/// sized by it is allocated.
pub fn read_npy_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    let name = path.display();
    let file = File::open(path).with_context(|| format!("npy file {name}: cannot open"))?;
    let file_len = file
        .metadata()
        .with_context(|| format!("npy file {name}: cannot stat"))?
        .len();
    if file_len == 0 {
        bail!("npy file {name}: empty file");
    }
    let mut r = BufReader::new(file);
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .with_context(|| format!("npy file {name}: truncated before the header"))?;
    if &pre[..6] != b"\x93NUMPY" {
        bail!("npy file {name}: bad magic string, not a .npy file");
    }
    let (major, _minor) = (pre[6], pre[7]);
    let (hlen, hstart) = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .with_context(|| format!("npy file {name}: truncated header length"))?;
            (u16::from_le_bytes(b) as usize, 10usize)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .with_context(|| format!("npy file {name}: truncated header length"))?;
            (u32::from_le_bytes(b) as usize, 12usize)
        }
        v => bail!("npy file {name}: unsupported format version {v}"),
    };
    if hlen > MAX_NPY_HEADER || (hstart + hlen) as u64 > file_len {
        bail!("npy file {name}: header length {hlen} is beyond the file ({file_len} bytes)");
    }
    let mut hbuf = vec![0u8; hlen];
    r.read_exact(&mut hbuf)
        .with_context(|| format!("npy file {name}: truncated header"))?;
    let header = String::from_utf8(hbuf)
        .map_err(|_| anyhow::anyhow!("npy file {name}: header is not text"))?;
    let (little, kind, size, fortran, shape) =
        parse_npy_header(&header).with_context(|| format!("npy file {name}: bad header"))?;
    let count = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .with_context(|| format!("npy file {name}: shape {shape:?} overflows"))?;
    let data_len = count
        .checked_mul(size as u64)
        .with_context(|| format!("npy file {name}: shape {shape:?} overflows"))?;
    let avail = file_len - (hstart + hlen) as u64;
    if data_len > avail {
        bail!(
            "npy file {name}: truncated: header claims shape {shape:?} ({data_len} bytes), file holds {avail}"
        );
    }
    if data_len < avail {
        bail!(
            "npy file {name}: {} bytes of trailing data after shape {shape:?}",
            avail - data_len
        );
    }
    if count > MAX_INPUT_VALUES {
        bail!(
            "npy file {name}: shape {shape:?} holds {count} values, more than the {MAX_INPUT_VALUES} one file may hold"
        );
    }
    // `count` now fits in the file and the budget, so allocating it is safe.
    let count = count as usize;
    let mut values = Vec::with_capacity(count);
    let mut buf = vec![0u8; size * 8192];
    let mut left = count;
    while left > 0 {
        let take = left.min(8192);
        let chunk = &mut buf[..take * size];
        r.read_exact(chunk)
            .with_context(|| format!("npy file {name}: truncated data"))?;
        for e in chunk.chunks_exact(size) {
            values.push(decode(e, kind, little));
        }
        left -= take;
    }
    if fortran && shape.len() > 1 {
        let a = ArrayD::from_shape_vec(IxDyn(&shape).f(), values)
            .with_context(|| format!("npy file {name}: inconsistent shape"))?;
        values = a.iter().copied().collect();
    }
    Ok((shape, values))
}

fn decode(e: &[u8], kind: Kind, little: bool) -> f64 {
    macro_rules! num {
        ($t:ty) => {{
            let b = e.try_into().expect("element size checked");
            if little {
                <$t>::from_le_bytes(b) as f64
            } else {
                <$t>::from_be_bytes(b) as f64
            }
        }};
    }
    match (kind, e.len()) {
        (Kind::U, 1) => e[0] as f64,
        (Kind::I, 1) => e[0] as i8 as f64,
        (Kind::U, 2) => num!(u16),
        (Kind::U, 4) => num!(u32),
        (Kind::U, 8) => num!(u64),
        (Kind::I, 2) => num!(i16),
        (Kind::I, 4) => num!(i32),
        (Kind::I, 8) => num!(i64),
        (Kind::F, 4) => num!(f32),
        (Kind::F, 8) => num!(f64),
        _ => f64::NAN, // excluded by parse_npy_header
    }
}

type NpyHeader = (bool, Kind, usize, bool, Vec<usize>);

fn parse_npy_header(h: &str) -> Result<NpyHeader> {
    let value_after = |key: &str| -> Result<&str> {
        let i = h
            .find(&format!("'{key}'"))
            .or_else(|| h.find(&format!("\"{key}\"")))
            .with_context(|| format!("no '{key}' entry"))?;
        let rest = &h[i + key.len() + 2..];
        let c = rest
            .find(':')
            .with_context(|| format!("no value for '{key}'"))?;
        Ok(rest[c + 1..].trim_start())
    };
    let d = value_after("descr")?;
    let q = d.chars().next().filter(|c| *c == '\'' || *c == '"');
    let q =
        q.context("'descr' is not a simple dtype string (structured arrays are not supported)")?;
    let end = d[1..].find(q).context("unterminated 'descr'")?;
    let descr = &d[1..1 + end];
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let little = match order {
        '>' => false,
        '<' | '|' => true,
        _ => cfg!(target_endian = "little"),
    };
    let kind = match rest.chars().next() {
        Some('u') => Kind::U,
        Some('i') => Kind::I,
        Some('f') => Kind::F,
        _ => bail!("unsupported dtype '{descr}' (need an integer or float dtype)"),
    };
    let size: usize = rest[1..]
        .parse()
        .with_context(|| format!("unsupported dtype '{descr}'"))?;
    let ok = matches!(
        (kind, size),
        (Kind::U | Kind::I, 1 | 2 | 4 | 8) | (Kind::F, 4 | 8)
    );
    if !ok {
        bail!("unsupported dtype '{descr}' (need u1..u8, i1..i8, f4 or f8)");
    }
    let f = value_after("fortran_order")?;
    let fortran = if f.starts_with("True") {
        true
    } else if f.starts_with("False") {
        false
    } else {
        bail!("'fortran_order' is neither True nor False");
    };
    let s = value_after("shape")?;
    if !s.starts_with('(') {
        bail!("'shape' is not a tuple");
    }
    let close = s.find(')').context("unterminated 'shape'")?;
    let mut shape = Vec::new();
    for part in s[1..close].split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        let p = p.trim_end_matches('L');
        shape.push(
            p.parse::<usize>()
                .with_context(|| format!("'shape' entry '{p}' is not a size"))?,
        );
    }
    if shape.len() > 8 {
        bail!("'shape' has {} dimensions", shape.len());
    }
    Ok((little, kind, size, fortran, shape))
}
