//! Lifetime images: run an engine over every pixel of an image, mask the
//! pixels with too few photons (they get no lifetime, not an invented one),
//! and render what a microscopist looks at: the lifetime map (colour =
//! lifetime, brightness = intensity) with its colour bar, and the lifetime
//! histogram. Plots are drawn with plotters into a buffer and written as
//! PNG atomically.

use crate::engine::{EngineKind, Runner};
use crate::lifetime::phasor::{semicircle, Calibration, Phasor};
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
    /// The calibrated phasor of every pixel, or why there is none (no
    /// laser period known, no IRF to calibrate with, not asked for).
    pub phasor: std::result::Result<PhasorImage, String>,
}

/// Calibrated phasors of an image ([`crate::lifetime::phasor`]).
#[derive(Clone, Debug)]
pub struct PhasorImage {
    /// Per pixel, row-major; `None` where masked or nothing is left above
    /// the background.
    pub points: Vec<Option<Phasor>>,
    /// The laser period (ns) and where it came from.
    pub period_ns: f64,
    pub period_source: String,
    /// The IRF's phasor the pixels were divided by, and its source.
    pub calibration: Calibration,
}

impl PhasorImage {
    pub fn omega(&self) -> f64 {
        std::f64::consts::TAU / self.period_ns
    }

    /// One line for the command's output.
    pub fn describe(&self) -> String {
        format!(
            "phasor at {:.3} MHz (laser period {:.3} ns, {}); IRF {} (its phasor G {:.4}, S {:.4})",
            1e3 / self.period_ns,
            self.period_ns,
            self.period_source,
            self.calibration.source,
            self.calibration.irf.g,
            self.calibration.irf.s
        )
    }
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
    engine: &Runner,
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
             lower --min-photons, bin neighbouring pixels (--binning N) or check the input"
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
        phasor: Err("not computed".to_string()),
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

/// Smallest font size (px) a title is shrunk to before it is shortened.
pub const MIN_TITLE_PX: u32 = 11;

/// Width in pixels of `text` drawn in the plots' font at `size_px`; `None`
/// if the font cannot lay it out.
pub fn text_width(text: &str, size_px: u32) -> Option<u32> {
    register_font();
    FontDesc::new(FontFamily::Name(FONT), size_px as f64, FontStyle::Normal)
        .box_size(text)
        .ok()
        .map(|(w, _)| w)
}

/// A title that fits in `max_width` pixels: `text` (at most
/// [`MAX_LABEL_CHARS`]) at `size_px`, or at a smaller size down to
/// [`MIN_TITLE_PX`], or at that size shortened with an ellipsis. Returns
/// the text and its font size. A character count cannot promise this: the
/// width depends on the letters and the image width on the data.
pub fn fit_title(text: &str, size_px: u32, max_width: u32) -> (String, u32) {
    let text = short_label(text, MAX_LABEL_CHARS);
    let fits = |t: &str, px: u32| text_width(t, px).is_some_and(|w| w <= max_width);
    let min = MIN_TITLE_PX.min(size_px);
    for px in (min..=size_px).rev() {
        if fits(&text, px) {
            return (text, px);
        }
    }
    // Longest prefix (in characters) that fits with the ellipsis.
    let cut = |n: usize| -> String {
        let at = text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
        format!("{}\u{2026}", text[..at].trim_end())
    };
    let (mut lo, mut hi) = (0usize, text.chars().count());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(&cut(mid), min) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (cut(lo), min)
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

/// Where the map's parts go in its PNG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// PNG pixels per image pixel.
    pub scale: u32,
    /// The PNG's width and height.
    pub size: (u32, u32),
    /// Margin around the map (and left of the title).
    pub margin: u32,
    /// Width of the colour bar and its labels.
    pub bar_w: u32,
}

impl MapLayout {
    pub fn of(height: usize, width: usize) -> MapLayout {
        let scale = (480 / height.max(width).max(1)).clamp(1, 16) as u32;
        let (mw, mh) = (width as u32 * scale, height as u32 * scale);
        let (margin, bar_w) = (50, 130);
        MapLayout {
            scale,
            size: (mw + bar_w + 2 * margin, mh.max(200) + 2 * margin),
            margin,
            bar_w,
        }
    }
}

/// Font size of the map's title (px), before shrinking to fit.
pub const MAP_TITLE_PX: u32 = 18;

/// The map's title as drawn (text and font size): within the PNG's width
/// less a margin at each side.
pub fn map_title(title: &str, height: usize, width: usize) -> (String, u32) {
    let l = MapLayout::of(height, width);
    fit_title(title, MAP_TITLE_PX, l.size.0 - 2 * l.margin)
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
    let MapLayout {
        scale,
        size,
        margin,
        bar_w,
    } = MapLayout::of(img.height, img.width);
    let (mw, _) = (img.width as u32 * scale, img.height as u32 * scale);
    let (title, title_px) = map_title(&style.title, img.height, img.width);
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
            title,
            (margin as i32, 15),
            (FONT, title_px).into_font(),
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

/// Size of the histogram PNG.
pub const HISTOGRAM_SIZE: (u32, u32) = (720, 440);
/// Size of the phasor plot PNG.
pub const PHASOR_SIZE: (u32, u32) = (640, 440);
/// Margin around the histogram's and the phasor plot's chart (px).
pub const PLOT_MARGIN: u32 = 15;

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
    let (w, h) = HISTOGRAM_SIZE;
    let (caption, caption_px) = fit_title(
        &format!(
            "{} ({} pixels >= {} photons, {} out of range left out; {} outside the axis)",
            style.title,
            img.unmasked(),
            img.min_photons,
            img.flagged(),
            outside
        ),
        15,
        w - 2 * PLOT_MARGIN,
    );
    render_png(path, (w, h), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, caption_px))
            .margin(PLOT_MARGIN)
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

/// The calibrated phasor of pixel `i`, if there is one.
fn phasor_at(img: &LifetimeImage, i: usize) -> Option<Phasor> {
    img.phasor.as_ref().ok().and_then(|p| p.points[i])
}

/// Per-pixel results as CSV: row, col, photons, tau1, tau2, fraction,
/// tau_mean, out_of_range (1: the decay is outside what the model was
/// trained for), g, s (the calibrated phasor); masked pixels have empty
/// lifetime, flag and phasor fields, and g, s are empty where there is no
/// phasor.
pub fn write_table(img: &LifetimeImage, path: &Path) -> Result<()> {
    crate::output::write_with(path, |w| {
        writeln!(
            w,
            "row,col,photons,tau1,tau2,fraction,tau_mean,out_of_range,g,s"
        )?;
        for (i, l) in img.lifetimes.iter().enumerate() {
            let (r, c) = (i / img.width, i % img.width);
            match l {
                Some(l) => {
                    write!(
                        w,
                        "{r},{c},{},{:.6},{:.6},{:.6},{:.6},{}",
                        img.photons[i],
                        l.tau1,
                        l.tau2,
                        l.fraction,
                        l.tau_mean(),
                        u8::from(img.out_of_range[i])
                    )?;
                    match phasor_at(img, i) {
                        Some(p) => writeln!(w, ",{:.6},{:.6}", p.g, p.s)?,
                        None => writeln!(w, ",,")?,
                    }
                }
                None => writeln!(w, "{r},{c},{},,,,,,,", img.photons[i])?,
            }
        }
        Ok(())
    })
}

/// The planes of the OME-TIFF, in order: name (with its unit), and value
/// per pixel (NaN where masked; photons for every pixel).
pub fn ome_planes(img: &LifetimeImage) -> Vec<(&'static str, Vec<f32>)> {
    let field = |f: &dyn Fn(usize, &crate::lifetime::Lifetimes) -> f64| -> Vec<f32> {
        img.lifetimes
            .iter()
            .enumerate()
            .map(|(i, l)| l.as_ref().map_or(f32::NAN, |l| f(i, l) as f32))
            .collect()
    };
    let phasor = |f: &dyn Fn(&Phasor) -> f64| -> Vec<f32> {
        (0..img.lifetimes.len())
            .map(|i| phasor_at(img, i).map_or(f32::NAN, |p| f(&p) as f32))
            .collect()
    };
    vec![
        ("tau_mean (ns)", field(&|_, l| l.tau_mean())),
        ("tau1 (ns)", field(&|_, l| l.tau1)),
        ("tau2 (ns)", field(&|_, l| l.tau2)),
        ("fraction of tau1", field(&|_, l| l.fraction)),
        (
            "photons",
            img.photons.iter().map(|&p| p as f32).collect::<Vec<_>>(),
        ),
        (
            "out_of_range (1 = flagged)",
            field(&|i, _| f64::from(u8::from(img.out_of_range[i]))),
        ),
        ("phasor G", phasor(&|p| p.g)),
        ("phasor S", phasor(&|p| p.s)),
    ]
}

/// Per-pixel results as an OME-TIFF: one float32 plane per
/// [`ome_planes`] entry, the OME-XML in the first page; `about` are the
/// key-value pairs of its MapAnnotation (units, the model, the phasor's
/// period and IRF).
pub fn write_ome_tiff(
    img: &LifetimeImage,
    image_name: &str,
    about: &[(String, String)],
    path: &Path,
) -> Result<()> {
    let planes = ome_planes(img);
    let bytes = crate::ome::ome_tiff(
        &planes
            .iter()
            .map(|(n, v)| (*n, v.as_slice()))
            .collect::<Vec<_>>(),
        (img.height, img.width),
        image_name,
        about,
    )?;
    crate::output::write_bytes(path, &bytes)
}

/// The phasor plot: a 2-D density of the unmasked pixels' calibrated
/// (G, S) (colour: log count per cell), the universal semicircle with
/// lifetimes marked on it, axes G and S. Without phasors (no laser
/// period or IRF) the plot says why.
pub fn render_phasor(img: &LifetimeImage, title: &str, path: &Path) -> Result<()> {
    let (gx, sy) = ((-0.1f64, 1.1f64), (-0.05f64, 0.65f64));
    let (nx, ny) = (240usize, 140usize);
    let mut cells = vec![0u32; nx * ny];
    let (mut inside, mut outside) = (0usize, 0usize);
    if let Ok(ph) = &img.phasor {
        for p in ph.points.iter().flatten() {
            let fx = (p.g - gx.0) / (gx.1 - gx.0);
            let fy = (p.s - sy.0) / (sy.1 - sy.0);
            if (0.0..1.0).contains(&fx) && (0.0..1.0).contains(&fy) {
                cells[(fy * ny as f64) as usize * nx + (fx * nx as f64) as usize] += 1;
                inside += 1;
            } else {
                outside += 1;
            }
        }
    }
    let caption = match &img.phasor {
        Ok(ph) => format!(
            "{title}: phasor at {:.2} MHz, {inside} pixels ({outside} off the axes); IRF {}",
            1e3 / ph.period_ns,
            ph.calibration.source
        ),
        Err(why) => format!("{title}: no phasor: {why}"),
    };
    let (w, h) = PHASOR_SIZE;
    let (caption, caption_px) = fit_title(&caption, 15, w - 2 * PLOT_MARGIN);
    let top = cells.iter().copied().max().unwrap_or(0).max(1) as f64;
    render_png(path, (w, h), |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, caption_px))
            .margin(PLOT_MARGIN)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(gx.0..gx.1, sy.0..sy.1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("G")
            .y_desc("S")
            .light_line_style(WHITE)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(plot_err)?;
        let (cw, ch) = ((gx.1 - gx.0) / nx as f64, (sy.1 - sy.0) / ny as f64);
        chart
            .draw_series(
                cells
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(k, &c)| {
                        let (x, y) = (gx.0 + (k % nx) as f64 * cw, sy.0 + (k / nx) as f64 * ch);
                        let v = (1.0 + c as f64).ln() / (1.0 + top).ln();
                        Rectangle::new([(x, y), (x + cw, y + ch)], colour(v, (0.0, 1.0)).filled())
                    }),
            )
            .map_err(plot_err)?;
        chart
            .draw_series(LineSeries::new(
                (0..=200).map(|k| {
                    let a = std::f64::consts::PI * k as f64 / 200.0;
                    (0.5 + 0.5 * a.cos(), 0.5 * a.sin())
                }),
                BLACK.stroke_width(1),
            ))
            .map_err(plot_err)?;
        if let Ok(ph) = &img.phasor {
            for tau in [0.5, 1.0, 2.0, 4.0, 8.0] {
                let p = semicircle(tau, ph.omega());
                chart
                    .draw_series(std::iter::once(Circle::new((p.g, p.s), 3, BLACK.filled())))
                    .map_err(plot_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{tau} ns"),
                        (p.g + 0.01, p.s + 0.02),
                        (FONT, 12).into_font(),
                    )))
                    .map_err(plot_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A very long model name on a 16 x 16 image: the title chosen fits
    /// the PNG's width less the margins (measured in the drawing font),
    /// shrunk and shortened with an ellipsis.
    #[test]
    fn titles_fit_inside_the_png() {
        let long = format!(
            "sample.ptu: mean lifetime (ns) ({}, fixed-point)",
            "W".repeat(400)
        );
        let l = MapLayout::of(16, 16);
        let (text, px) = map_title(&long, 16, 16);
        let width = text_width(&text, px).unwrap();
        assert!(
            width <= l.size.0 - 2 * l.margin,
            "{width} px in a {} px PNG",
            l.size.0
        );
        assert!(
            text.ends_with('\u{2026}') && px == MIN_TITLE_PX,
            "{text} {px}"
        );
        // A short title is kept whole at its size.
        let (short, px) = map_title("a.ptu: tau1 (ns)", 16, 16);
        assert_eq!((short.as_str(), px), ("a.ptu: tau1 (ns)", MAP_TITLE_PX));
        // A title a little too long is shrunk, not cut.
        let (text, px) = fit_title(&"m".repeat(40), 18, 400);
        assert!(!text.ends_with('\u{2026}') && px < 18, "{text} {px}");
        assert!(text_width(&text, px).unwrap() <= 400);
        // The histogram's and phasor plot's captions use the same helper.
        let (cap, px) = fit_title(&long, 15, PHASOR_SIZE.0 - 2 * PLOT_MARGIN);
        assert!(text_width(&cap, px).unwrap() <= PHASOR_SIZE.0 - 2 * PLOT_MARGIN);
    }
}
