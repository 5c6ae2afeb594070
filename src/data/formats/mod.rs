//! Recordings from FLIM instruments: PicoQuant PTU (T3 image mode) and PHU
//! (histogram mode), Becker & Hickl SDT, and the crate's own `.npy`/`.csv`
//! histograms, all turned into one [`Recording`]: per-pixel counts
//! `[height, width, bins]` with the bin width they were recorded at.
//!
//! Every reader validates the header before anything is sized by it, streams
//! records through a `BufReader`, and refuses histograms larger than
//! [`MAX_HISTOGRAM_ELEMENTS`]. Errors name the file and the problem. The
//! writers (used by the tests and the sample recording) go through
//! [`crate::data::write_atomically`]. See `docs/formats.md` for the layouts
//! followed and the subset supported.

use anyhow::{bail, Context, Result};
use ndarray::Array3;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

pub mod ptu;
pub mod sdt;

pub use ptu::{
    read_phu, read_ptu, write_phu, write_ptu_t3_counts, write_ptu_t3_image, PtuRecordType,
    PtuT3Spec,
};
pub use sdt::{read_sdt, write_sdt, write_sdt_with, SdtBlock, SdtCompression, SdtWriteOptions};

/// Largest histogram a reader builds: 2^28 counts (1 GiB of `u32`), e.g.
/// 1024 x 1024 pixels x 256 bins. Bigger recordings need dtime binning.
pub const MAX_HISTOGRAM_ELEMENTS: u64 = 1 << 28;

/// Largest image side (pixels) accepted from a header.
pub const MAX_IMAGE_SIDE: u64 = 1 << 16;

/// Largest number of time bins accepted from a header.
pub const MAX_BINS: u64 = 1 << 16;

/// A FLIM recording: per-pixel photon-count histograms.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// `[height, width, bins]`, bin k covering `[k, k + 1) * bin_width_ns`
    /// after the sync (laser) pulse.
    pub counts: Array3<u32>,
    /// Width of one time bin (ns).
    pub bin_width_ns: f64,
    /// Laser (sync) period in ns, if the file records it.
    pub period_ns: Option<f64>,
    /// What the data came from, e.g. `"PTU T3 image (HydraHarp2/MultiHarp)"`.
    pub source: String,
    /// Plain-words notes on what the reader did (frames summed, photons
    /// dropped, blocks ignored, ...).
    pub notes: Vec<String>,
    /// The bins the instrument recorded: `counts` is kept whole, but bins
    /// outside this range hold no photon in the whole image (a run of
    /// image-summed zeros at either end of the time axis, e.g. the ADC
    /// range of a B&H TAC window shorter than the laser period). Use
    /// [`Recording::valid_counts`] for the recorded window.
    pub valid_bins: Range<usize>,
}

impl Recording {
    pub fn height(&self) -> usize {
        self.counts.shape()[0]
    }
    pub fn width(&self) -> usize {
        self.counts.shape()[1]
    }
    pub fn bins(&self) -> usize {
        self.counts.shape()[2]
    }
    /// Total photons in the recording.
    pub fn photons(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }
    /// `counts` restricted to [`Recording::valid_bins`]; bin k of the view
    /// is bin `valid_bins.start + k` of the recording.
    pub fn valid_counts(&self) -> ndarray::ArrayView3<'_, u32> {
        self.counts
            .slice(ndarray::s![.., .., self.valid_bins.clone()])
    }
}

/// The bins between the first and last bin whose image-summed count is
/// non-zero (`0..bins` when the image is empty or no end bin is zero).
pub fn valid_bin_range(counts: ndarray::ArrayView3<u32>) -> Range<usize> {
    let bins = counts.shape()[2];
    let mut sum = vec![0u64; bins];
    for lane in counts.lanes(ndarray::Axis(2)) {
        for (s, &c) in sum.iter_mut().zip(lane.iter()) {
            *s += c as u64;
        }
    }
    match (
        sum.iter().position(|&s| s > 0),
        sum.iter().rposition(|&s| s > 0),
    ) {
        (Some(a), Some(b)) => a..b + 1,
        _ => 0..bins,
    }
}

/// Fill in `valid_bins` and say in the notes which end bins are empty.
pub(crate) fn finish(mut rec: Recording) -> Recording {
    let bins = rec.bins();
    let v = valid_bin_range(rec.counts.view());
    if v != (0..bins) {
        let bw = rec.bin_width_ns;
        rec.notes.push(format!(
            "bins {}..{} of {bins} hold photons ({:.2}..{:.2} ns); the {} bin(s) before and {} after are zero summed over the whole image (outside the ADC range?) and are not part of the valid window",
            v.start,
            v.end,
            v.start as f64 * bw,
            v.end as f64 * bw,
            v.start,
            bins - v.end
        ));
    }
    rec.valid_bins = v;
    rec
}

/// Options for [`read_recording_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    /// Bin width (ns) for `.npy`/`.csv` histograms, which do not carry one.
    pub bin_width_ns: Option<f64>,
    /// Sum this many consecutive dtime channels into one bin (PTU T3; 1 =
    /// keep the instrument's resolution).
    pub dtime_binning: usize,
    /// Only photons of this detector (routing) channel (PTU T3). `None`:
    /// all channels summed when their decays are aligned, else the channel
    /// with the most photons (said in the notes).
    pub channel: Option<u32>,
    /// Which data block of an SDT file (0-based; `None` = the first image
    /// block, else the first block of decay curves).
    pub block: Option<usize>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            bin_width_ns: None,
            dtime_binning: 1,
            channel: None,
            block: None,
        }
    }
}

/// Read a recording, choosing the reader by extension (`.ptu`, `.phu`,
/// `.sdt`; `.npy`/`.csv` need a bin width, see [`read_recording_with`]).
pub fn read_recording(path: &Path) -> Result<Recording> {
    read_recording_with(path, &ReadOptions::default())
}

/// [`read_recording`] with options.
pub fn read_recording_with(path: &Path, opts: &ReadOptions) -> Result<Recording> {
    let name = path.display();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rec = match ext.as_str() {
        "ptu" => ptu::read_ptu(path, opts)?,
        "phu" => ptu::read_phu(path)?,
        "sdt" => sdt::read_sdt(path, opts)?,
        "npy" | "csv" | "txt" => read_array(path, opts)?,
        _ => bail!(
            "recording {name}: unknown extension '{ext}', expected .ptu, .phu, .sdt, .npy or .csv"
        ),
    };
    if rec.photons() == 0 {
        bail!("recording {name}: the image holds no photons (every histogram is zero)");
    }
    Ok(rec)
}

/// `.npy`/`.csv` through [`crate::data::read_histograms`]: `[h, w, G]`
/// stays an image, `[n, G]` becomes one row of `n` pixels.
fn read_array(path: &Path, opts: &ReadOptions) -> Result<Recording> {
    let name = path.display();
    let Some(bw) = opts.bin_width_ns else {
        bail!("recording {name}: .npy/.csv histograms carry no bin width; give one");
    };
    if !(bw.is_finite() && bw > 0.0 && bw <= 100.0) {
        bail!("recording {name}: bin width {bw} ns is not a positive finite width up to 100 ns");
    }
    let (counts, notes) = read_array_counts(path)?;
    let g = counts.shape()[2];
    Ok(finish(Recording {
        counts,
        bin_width_ns: bw,
        period_ns: None,
        source: format!(
            ".{} histograms",
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
            {
                "npy"
            } else {
                "csv"
            }
        ),
        notes,
        valid_bins: 0..g,
    }))
}

/// `.npy`/`.csv` histograms (see [`crate::data::read_histograms`]) as
/// whole counts `[h, w, G]`, `[n, G]` becoming one row of `n` pixels, and
/// notes on what was done; these files carry no bin width.
pub fn read_array_counts(path: &Path) -> Result<(Array3<u32>, Vec<String>)> {
    let name = path.display();
    let h = crate::data::read_histograms(path)?;
    let (n, g) = h.counts.dim();
    let (height, width) = h.shape.unwrap_or((1, n));
    let mut notes = Vec::new();
    let mut rounded = false;
    let mut counts = Vec::with_capacity(n * g);
    for &v in h.counts.iter() {
        if v > u32::MAX as f32 {
            bail!("recording {name}: value {v} does not fit a photon count");
        }
        let r = v.round();
        rounded |= r != v;
        counts.push(r as u32);
    }
    if rounded {
        notes.push("non-integer values rounded to whole counts".to_string());
    }
    if h.shape.is_none() {
        notes.push(format!(
            "[{n}, {g}] histograms read as one row of {n} pixels"
        ));
    }
    let counts = Array3::from_shape_vec((height, width, g), counts)
        .with_context(|| format!("recording {name}: inconsistent shape"))?;
    Ok((counts, notes))
}

/// Check `height x width x bins` against the limits before allocating.
pub(crate) fn check_dims(name: &str, height: u64, width: u64, bins: u64) -> Result<()> {
    if height == 0 || width == 0 || bins == 0 {
        bail!("{name}: image of {height} x {width} pixels x {bins} bins is empty");
    }
    if height > MAX_IMAGE_SIDE || width > MAX_IMAGE_SIDE {
        bail!(
            "{name}: header claims {width} x {height} pixels, more than the {MAX_IMAGE_SIDE} per side accepted"
        );
    }
    if bins > MAX_BINS {
        bail!("{name}: header claims {bins} time bins, more than the {MAX_BINS} accepted");
    }
    let total = height * width * bins;
    if total > MAX_HISTOGRAM_ELEMENTS {
        bail!(
            "{name}: {height} x {width} pixels x {bins} bins = {total} counts is more than the {MAX_HISTOGRAM_ELEMENTS} accepted (bin the time axis coarser)"
        );
    }
    Ok(())
}

/// Little-endian reads that name the file and what was being read.
pub(crate) struct LeReader<R: Read> {
    pub inner: R,
    pub name: String,
    pub pos: u64,
}

impl<R: Read> LeReader<R> {
    pub fn new(inner: R, name: String) -> Self {
        LeReader {
            inner,
            name,
            pos: 0,
        }
    }

    pub fn bytes(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                anyhow::anyhow!(
                    "{}: truncated: file ends inside {what} (at byte {})",
                    self.name,
                    self.pos
                )
            } else {
                anyhow::anyhow!("{}: cannot read {what}: {e}", self.name)
            }
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.bytes(&mut b, what)?;
        Ok(b)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    /// Skip `n` bytes (reading them; `n` is bounded by the caller).
    pub fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        let got = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .with_context(|| format!("{}: cannot read {what}", self.name))?;
        self.pos += got;
        if got < n {
            bail!(
                "{}: truncated: file ends inside {what} (at byte {})",
                self.name,
                self.pos
            );
        }
        Ok(())
    }
}
