//! Lifetime images: run an engine over every pixel of an image, mask the
//! pixels with too few photons (they get no lifetime, not an invented one),
//! and render what a microscopist looks at: the lifetime map (colour =
//! lifetime, brightness = intensity) with its colour bar, and the lifetime
//! histogram. Plots are drawn with plotters into a buffer and written as
//! PNG atomically.

use crate::engine::{Engine, EngineKind};
use crate::lifetime::range::RangeCheck;
use crate::lifetime::Lifetimes;
use anyhow::{bail, Context, Result};
use image::ImageEncoder;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayView2, Axis};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;
use std::sync::Once;

/// What the map's colour shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Amplitude-weighted mean lifetime a tau1 + (1 - a) tau2.
    TauMean,
    Tau1,
    Tau2,
    /// Amplitude fraction of tau1.
    Fraction,
}

impl Quantity {
    pub fn of(self, l: &Lifetimes) -> f64 {
        match self {
            Quantity::TauMean => l.tau_mean(),
            Quantity::Tau1 => l.tau1,
            Quantity::Tau2 => l.tau2,
            Quantity::Fraction => l.fraction,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Quantity::TauMean => "mean lifetime (ns)",
            Quantity::Tau1 => "tau1 (ns)",
            Quantity::Tau2 => "tau2 (ns)",
            Quantity::Fraction => "fraction of tau1",
        }
    }

    /// Colour range when none is given: the trained lifetime range.
    pub fn default_range(self) -> (f64, f64) {
        match self {
            Quantity::Fraction => (0.0, 1.0),
            _ => (0.0, 3.0),
        }
    }
}

/// Per-pixel results of an image; `None` where the pixel was masked.
#[derive(Clone, Debug)]
pub struct LifetimeImage {
    pub height: usize,
    pub width: usize,
    /// Photons per pixel (sum of its histogram), row-major.
    pub photons: Vec<f64>,
    pub lifetimes: Vec<Option<Lifetimes>>,
    /// Pixels whose decay is outside what the model was trained for
    /// ([`RangeCheck`]); their lifetimes are not to be trusted.
    pub out_of_range: Vec<bool>,
    pub min_photons: f64,
    /// What about the whole recording is outside the model's training
    /// (a wider IRF, a shorter window), in words; empty when nothing is.
    pub warnings: Vec<String>,
}

impl LifetimeImage {
    pub fn unmasked(&self) -> usize {
        self.lifetimes.iter().filter(|l| l.is_some()).count()
    }

    /// Unmasked pixels flagged out of range.
    pub fn flagged(&self) -> usize {
        self.out_of_range.iter().filter(|&&f| f).count()
    }
}

/// Run the engine (float network or fixed-point golden model) over the
/// pixels of an `h x w` image (`counts` is `[h * w, G]`, row-major) whose
/// photon count reaches `min_photons`; `range` flags those of them whose
/// decay is outside the model's training distribution.
pub fn compute(
    engine: &Engine,
    counts: ArrayView2<f32>,
    (height, width): (usize, usize),
    min_photons: f64,
    range: &RangeCheck,
    show_progress: bool,
) -> Result<LifetimeImage> {
    let (n, gates) = counts.dim();
    if n != height * width || n == 0 {
        bail!("image of {height} x {width} pixels does not match {n} histograms");
    }
    if gates != engine.gates() {
        bail!(
            "the image has {gates} gates per pixel, the model expects {}",
            engine.gates()
        );
    }
    if !(min_photons.is_finite() && min_photons >= 0.0) {
        bail!("minimum photon count {min_photons} must be finite and >= 0");
    }
    let photons: Vec<f64> = counts
        .axis_iter(Axis(0))
        .map(|r| r.iter().map(|&c| c as f64).sum())
        .collect();
    let keep: Vec<usize> = (0..n).filter(|&i| photons[i] >= min_photons).collect();
    if keep.is_empty() {
        let brightest = photons.iter().cloned().fold(0.0, f64::max);
        bail!(
            "no pixel has at least {min_photons} photons (the brightest has {brightest}); \
             lower --min-photons or check the input"
        );
    }
    let bar = if show_progress {
        ProgressBar::new(keep.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("lifetimes [{bar:30}] {pos}/{len} pixels ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut lifetimes = vec![None; n];
    let mut out_of_range = vec![false; n];
    for chunk in keep.chunks(4096) {
        let mut rows = counts.select(Axis(0), chunk);
        if engine.kind() == EngineKind::Fixed {
            // Rebinned recordings can hold fractional counts; the hardware
            // receives whole photons.
            rows.mapv_inplace(f32::round);
        }
        for (&i, l) in chunk.iter().zip(engine.lifetimes(rows.view())?) {
            lifetimes[i] = Some(l);
        }
        let flags: Vec<bool> = chunk
            .par_iter()
            .map(|&i| {
                let row = counts.row(i);
                match row.as_slice() {
                    Some(r) => range.out_of_range(r),
                    None => range.out_of_range(&row.to_vec()),
                }
            })
            .collect();
        for (&i, f) in chunk.iter().zip(flags) {
            out_of_range[i] = f;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(LifetimeImage {
        height,
        width,
        photons,
        lifetimes,
        out_of_range,
        min_photons,
        warnings: Vec::new(),
    })
}

/// Rendering choices.
#[derive(Clone, Debug)]
pub struct MapStyle {
    pub quantity: Quantity,
    /// Colour range; values outside are clamped to the ends of the bar.
    pub range: (f64, f64),
    pub title: String,
}

const FONT: &str = "sans-serif";

/// Longest text drawn on a plot (characters). Laying out text costs time
/// in its length, drawn or not: a model name of megabytes took minutes.
pub const MAX_LABEL_CHARS: usize = 120;

/// `text` cut to `max` characters, with "..." when cut.
pub fn short_label(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}...", &text[..at]),
    }
}

/// Plotters needs a font to draw text; the crate ships DejaVu Sans so
/// plots render the same on a machine without any fonts installed.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
        if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_err() {
            // Only reachable if the embedded file is corrupt: text is then
            // not drawn, the plot itself still is.
            eprintln!("warning: embedded font rejected, plots will have no text");
        }
    });
}

/// Draw into an RGB buffer of `w x h` and write it as PNG at `path`.
fn render_png<F>(path: &Path, (w, h): (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
{
    register_font();
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(root.clone())?;
        root.present().map_err(plot_err)?;
    }
    crate::output::write_with(path, |out| {
        image::codecs::png::PngEncoder::new(out)
            .write_image(&buf, w, h, image::ColorType::Rgb8)
            .context("encoding the PNG")
    })
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot failed: {e:?}")
}

fn colour(v: f64, (lo, hi): (f64, f64)) -> RGBColor {
    let c = ViridisRGB::get_color_normalized(v.clamp(lo, hi) as f32, lo as f32, hi as f32);
    RGBColor(c.0, c.1, c.2)
}

/// The lifetime map: colour = the quantity, brightness = photons (square
/// root, saturating at the 99th percentile), masked pixels dark grey,
/// out-of-range pixels light grey (no colour: their number is not to be
/// trusted); a colour bar with units beside it.
pub fn render_map(img: &LifetimeImage, style: &MapStyle, path: &Path) -> Result<()> {
    let (lo, hi) = style.range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        bail!("colour range {lo}..{hi} is not an increasing finite range");
    }
    let scale = (480 / img.height.max(img.width)).clamp(1, 16) as u32;
    let (mw, mh) = (img.width as u32 * scale, img.height as u32 * scale);
    let margin = 50;
    let bar_w = 130;
    let size = (mw + bar_w + 2 * margin, mh.max(200) + 2 * margin);
    let mut bright: Vec<f64> = img
        .photons
        .iter()
        .zip(&img.lifetimes)
        .filter(|(_, l)| l.is_some())
        .map(|(&p, _)| p)
        .collect();
    bright.sort_by(f64::total_cmp);
    let p99 = bright[((bright.len() - 1) as f64 * 0.99) as usize].max(1.0);
    render_png(path, size, |root| {
        root.draw(&Text::new(
            short_label(&style.title, MAX_LABEL_CHARS),
            (margin as i32, 15),
            (FONT, 18).into_font(),
        ))
        .map_err(plot_err)?;
        let map = root.margin(margin, margin, margin, margin + bar_w);
        for r in 0..img.height {
            for c in 0..img.width {
                let i = r * img.width + c;
                let rgb = match &img.lifetimes[i] {
                    None => RGBColor(40, 40, 40),
                    Some(_) if img.out_of_range[i] => RGBColor(200, 200, 200),
                    Some(l) => {
                        let b = (img.photons[i] / p99).clamp(0.0, 1.0).sqrt();
                        let RGBColor(cr, cg, cb) = colour(style.quantity.of(l), (lo, hi));
                        let s = |x: u8| (x as f64 * b).round() as u8;
                        RGBColor(s(cr), s(cg), s(cb))
                    }
                };
                let (x, y) = ((c as u32 * scale) as i32, (r as u32 * scale) as i32);
                map.draw(&Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    rgb.filled(),
                ))
                .map_err(plot_err)?;
            }
        }
        // Colour bar: a one-column chart whose y axis carries the units.
        let (_, bar_area) = root
            .margin(margin, margin, 0, 0)
            .split_horizontally(margin + mw + 20);
        let mut chart = ChartBuilder::on(&bar_area)
            .margin_right(20)
            .y_label_area_size(0)
            .right_y_label_area_size(80)
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_y_mesh()
            .disable_x_axis()
            .y_desc(style.quantity.label())
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        let steps = 200;
        chart
            .draw_series((0..steps).map(|k| {
                let v0 = lo + (hi - lo) * k as f64 / steps as f64;
                let v1 = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
                Rectangle::new([(0.0, v0), (1.0, v1)], colour(v0, (lo, hi)).filled())
            }))
            .map_err(plot_err)?;
        Ok(())
    })
}

/// Histogram of the quantity over the unmasked pixels.
pub fn render_histogram(img: &LifetimeImage, style: &MapStyle, path: &Path) -> Result<()> {
    let (lo, hi) = style.range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        bail!("histogram range {lo}..{hi} is not an increasing finite range");
    }
    let bins = 60usize;
    let mut counts = vec![0usize; bins];
    let mut outside = 0usize;
    let trusted = img
        .lifetimes
        .iter()
        .zip(&img.out_of_range)
        .filter_map(|(l, &flag)| l.as_ref().filter(|_| !flag));
    for l in trusted {
        let v = style.quantity.of(l);
        if v >= lo && v < hi {
            counts[((v - lo) / (hi - lo) * bins as f64) as usize] += 1;
        } else {
            outside += 1;
        }
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    render_png(path, (720, 440), |root| {
        let caption = format!(
            "{} ({} pixels >= {} photons, {} out of range left out; {} outside the axis)",
            short_label(&style.title, MAX_LABEL_CHARS),
            img.unmasked(),
            img.min_photons,
            img.flagged(),
            outside
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 15))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0usize..top + top / 10 + 1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(style.quantity.label())
            .y_desc("pixels")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        let w = (hi - lo) / bins as f64;
        chart
            .draw_series(counts.iter().enumerate().map(|(k, &c)| {
                let x0 = lo + k as f64 * w;
                Rectangle::new(
                    [(x0, 0), (x0 + w, c)],
                    colour(x0 + w / 2.0, (lo, hi)).filled(),
                )
            }))
            .map_err(plot_err)?;
        Ok(())
    })
}

/// Per-pixel results as CSV: row, col, photons, tau1, tau2, fraction,
/// tau_mean, out_of_range (1: the decay is outside what the model was
/// trained for); masked pixels have empty lifetime and flag fields.
pub fn write_table(img: &LifetimeImage, path: &Path) -> Result<()> {
    crate::output::write_with(path, |w| {
        writeln!(
            w,
            "row,col,photons,tau1,tau2,fraction,tau_mean,out_of_range"
        )?;
        for (i, l) in img.lifetimes.iter().enumerate() {
            let (r, c) = (i / img.width, i % img.width);
            match l {
                Some(l) => writeln!(
                    w,
                    "{r},{c},{},{:.6},{:.6},{:.6},{:.6},{}",
                    img.photons[i],
                    l.tau1,
                    l.tau2,
                    l.fraction,
                    l.tau_mean(),
                    u8::from(img.out_of_range[i])
                )?,
                None => writeln!(w, "{r},{c},{},,,,,", img.photons[i])?,
            }
        }
        Ok(())
    })
}

/// Per-pixel results as `.npy` float64 `[h, w, 5]` (tau1, tau2, fraction,
/// tau_mean, out_of_range 1.0 / 0.0), NaN where masked.
pub fn write_npy(img: &LifetimeImage, path: &Path) -> Result<()> {
    let mut a = ndarray::Array3::<f64>::from_elem((img.height, img.width, 5), f64::NAN);
    for (i, l) in img.lifetimes.iter().enumerate() {
        if let Some(l) = l {
            let (r, c) = (i / img.width, i % img.width);
            let flag = if img.out_of_range[i] { 1.0 } else { 0.0 };
            for (k, v) in [l.tau1, l.tau2, l.fraction, l.tau_mean(), flag]
                .into_iter()
                .enumerate()
            {
                a[[r, c, k]] = v;
            }
        }
    }
    crate::output::write_with(path, |w| {
        use ndarray_npy::WriteNpyExt;
        Ok(a.write_npy(w)?)
    })
}
