//! The `flimgru` subcommands as library calls (the binary only parses
//! arguments), so tests run exactly what users run.

use crate::data::io::{read_histograms, write_counts_npy, write_truth_csv};
use crate::data::simulate::{simulate_with_progress, SimSpec};
use crate::data::Dataset;
use crate::data::{preprocess_batch, targets};
use crate::eval::{evaluate, EvalConfig, Evaluation};
use crate::lifetime::results::{write_lifetimes, ResultFormat};
use crate::model::{train, Seq2Seq, Seq2SeqConfig, TrainConfig, TrainData};
use crate::model_file::{ModelFile, MODEL_FORMAT, MODEL_VERSION};
use crate::output::Plan;
use crate::rtl::{CircuitSpec, Layout};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// The measured IRF a data spec reads, as an input of `files`.
fn spec_inputs(spec: &SimSpec, files: &mut Plan) {
    if let Some(f) = spec.irf.measured.as_ref().and_then(|m| m.file()) {
        files.input("the measured IRF", f);
    }
}

/// `flimgru simulate`: histograms `.npy` (u32 `[n, G]`), truth CSV and the
/// spec as JSON into `out_dir`. `files` holds the command's inputs.
pub fn simulate_to_dir(
    spec: &SimSpec,
    pixels: usize,
    seed: u64,
    out_dir: &Path,
    files: &mut Plan,
) -> Result<()> {
    if pixels == 0 {
        bail!("--pixels must be at least 1");
    }
    crate::data::simulate::check_pixel_budget("--pixels", pixels, spec.grid.gates, 4)?;
    spec_inputs(spec, files);
    files.output_dir("--out", out_dir)?;
    for name in ["histograms.npy", "truth.csv", "spec.json"] {
        files.output("--out", &out_dir.join(name))?;
    }
    let data = simulate_with_bar(spec, pixels, seed, true)?;
    write_counts_npy(&out_dir.join("histograms.npy"), &data.counts)?;
    write_truth_csv(&out_dir.join("truth.csv"), &data.truth)?;
    let json = serde_json::to_string_pretty(&SpecFile { seed, pixels, spec })?;
    crate::output::write_bytes(&out_dir.join("spec.json"), json.as_bytes())
}

/// Simulate with a progress bar on stderr (drawn only on a terminal).
fn simulate_with_bar(spec: &SimSpec, pixels: usize, seed: u64, show: bool) -> Result<Dataset> {
    let bar = if show {
        ProgressBar::new(pixels as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("simulating [{bar:30}] {pos}/{len} pixels ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let data = simulate_with_progress(spec, pixels, seed, &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    data
}

/// `flimgru simulate --image`: a synthetic FLIM image of cells as
/// `sample.ptu`, `sample.npy` and `sample.truth.csv` in `out_dir`.
pub fn simulate_image_to_dir(
    spec: &SimSpec,
    height: usize,
    width: usize,
    seed: u64,
    out_dir: &Path,
    files: &mut Plan,
) -> Result<crate::data::image::ImageFiles> {
    use crate::data::image::{simulate_image, write_image_sample, ImageFiles};
    spec_inputs(spec, files);
    files.output_dir("--out", out_dir)?;
    let names = ImageFiles::in_dir(out_dir, "sample");
    for p in [&names.ptu, &names.npy, &names.truth] {
        files.output("--out", p)?;
    }
    let sample = simulate_image(spec, height, width, seed)?;
    write_image_sample(&sample, out_dir, "sample", seed)
}

#[derive(serde::Serialize)]
struct SpecFile<'a> {
    seed: u64,
    pixels: usize,
    spec: &'a SimSpec,
}

/// Everything `flimgru train` needs (also its `--config` file format).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainJob {
    pub name: String,
    pub network: Seq2SeqConfig,
    pub training: TrainConfig,
    pub data: SimSpec,
    /// Pixels simulated for training and validation.
    pub pixels: usize,
    pub data_seed: u64,
    /// The command line, recorded in the model file.
    #[serde(default, skip_serializing)]
    pub command: String,
}

impl TrainJob {
    /// Read a `--config` file.
    pub fn load(path: &Path) -> Result<TrainJob> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read training config {}", path.display()))?;
        let job: TrainJob = serde_json::from_str(&text)
            .with_context(|| format!("training config {} is malformed", path.display()))?;
        job.validate()
            .with_context(|| format!("training config {}", path.display()))?;
        Ok(job)
    }

    pub fn validate(&self) -> Result<()> {
        self.network.validate()?;
        self.training.validate()?;
        self.data.validate()?;
        if self.pixels < 2 {
            bail!("training needs at least 2 pixels, got {}", self.pixels);
        }
        // Counts, their f32 copy, the network inputs and the [n, G, 3] targets.
        crate::data::simulate::check_pixel_budget(
            "pixels (--pixels)",
            self.pixels,
            self.data.grid.gates,
            4 + 4 + 4 + 12,
        )?;
        Ok(())
    }
}

/// `flimgru train`: simulate the training set, train, return the model file.
pub fn train_model(job: &TrainJob, show_progress: bool) -> Result<ModelFile> {
    job.validate()?;
    let data = simulate_with_bar(&job.data, job.pixels, job.data_seed, show_progress)?;
    let inputs = preprocess_batch(
        data.counts.mapv(|c| c as f32).view(),
        data.grid.baseline_gates,
    );
    let target = targets(&data.grid, &data.truth);
    drop(data);
    let mut rng = ChaCha8Rng::seed_from_u64(job.training.seed);
    let mut weights = Seq2Seq::<f32>::init(&job.network, &mut rng);
    eprintln!(
        "training {} ({} parameters) on {} pixels, {} gates",
        job.network.describe(),
        weights.parameter_count(),
        job.pixels,
        job.data.grid.gates
    );
    let history = train(
        &mut weights,
        &TrainData {
            inputs: inputs.view(),
            targets: target.view(),
        },
        &job.training,
        show_progress,
    )?;
    Ok(ModelFile {
        format: MODEL_FORMAT.to_string(),
        version: MODEL_VERSION,
        name: job.name.clone(),
        command: job.command.clone(),
        data: job.data.clone(),
        data_seed: job.data_seed,
        data_pixels: job.pixels,
        training: job.training.clone(),
        history,
        metrics: None,
        weights,
        quantized: None,
        stream: Vec::new(),
        rounding: None,
    })
}

/// `flimgru eval`: evaluate and write `<out>.md` and `<out>.json`. `files`
/// holds the command's inputs (the model).
pub fn evaluate_to_files(
    model: &ModelFile,
    config: &EvalConfig,
    out: &Path,
    files: &mut Plan,
) -> Result<Evaluation> {
    files.output("--out", &with_suffix(out, "md"))?;
    files.output("--out", &with_suffix(out, "json"))?;
    let ev = evaluate(model, config)?;
    let md = ev.to_markdown();
    let json = serde_json::to_string_pretty(&ev)?;
    crate::output::write_bytes(&with_suffix(out, "md"), md.as_bytes())?;
    crate::output::write_bytes(&with_suffix(out, "json"), json.as_bytes())?;
    Ok(ev)
}

/// `flimgru compress`: run the study, write `report` (.md) and its .json
/// twin, ship the student.
pub fn compress(
    job: &crate::compress::CompressJob,
    config: Option<&Path>,
    command: &str,
    dir: &Path,
    ship: &Path,
    report: &Path,
) -> Result<crate::compress::Study> {
    if report.extension().and_then(|e| e.to_str()) != Some("md") {
        bail!("report {} must end in .md", report.display());
    }
    let mut files = Plan::new();
    if let Some(c) = config {
        files.input("--config", c);
    }
    // Before any work: the teacher readable, the pixel counts within the
    // memory budget (errors name the job's file).
    let job_file = || match config {
        Some(c) => format!("compression config {}", c.display()),
        None => "the built-in compression job".to_string(),
    };
    let teacher =
        ModelFile::load(&job.teacher).with_context(|| format!("the teacher of {}", job_file()))?;
    job.check_memory(teacher.gates()).with_context(job_file)?;
    drop(teacher);
    files.input("the teacher (job field \"teacher\")", &job.teacher);
    files.output_dir("--dir", dir)?;
    files.output("--ship", ship)?;
    files.output("--report", report)?;
    files.output("--report", &with_suffix(&report.with_extension(""), "json"))?;
    let study = crate::compress::run(job, command, dir, ship)?;
    let md = study.to_markdown();
    let json = serde_json::to_string_pretty(&study)?;
    crate::output::write_bytes(report, md.as_bytes())?;
    crate::output::write_bytes(
        &with_suffix(&report.with_extension(""), "json"),
        json.as_bytes(),
    )?;
    Ok(study)
}

/// `flimgru infer`: lifetimes of every pixel of `input` by the chosen
/// engine (default: fixed for a quantised model, float otherwise), written
/// to `output` in input order. Returns the pixel count.
pub fn infer(
    model: &ModelFile,
    engine: Option<crate::engine::EngineKind>,
    input: &Path,
    output: &Path,
    files: &mut Plan,
) -> Result<usize> {
    let engine = crate::engine::Runner::new(model, engine)?;
    let format = ResultFormat::from_path(output)?;
    files.input("--input", input).output("--output", output)?;
    let hist = read_histograms(input)?;
    let gates = hist.counts.ncols();
    if gates != model.gates() {
        bail!(
            "{} has {gates} gates per pixel, the model {} expects {}",
            input.display(),
            model.name,
            model.gates()
        );
    }
    let lifetimes = engine
        .lifetimes(hist.counts.view())
        .with_context(|| format!("inferring {}", input.display()))?;
    write_lifetimes(output, format, &lifetimes, hist.shape)?;
    Ok(lifetimes.len())
}

/// What a command line chose of a build (`flimgru sim`, `export`,
/// `synth`); None: the command's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct CircuitChoice {
    /// Not a choice but a check: the model's weight width Ww must be this
    /// (the circuit's widths are the model's).
    pub bits: Option<u32>,
    /// Pixel lanes P.
    pub lanes: Option<usize>,
    /// Multipliers per lane M.
    pub macs: Option<usize>,
    /// The multiplier form.
    pub dsp: Option<crate::rtl::Dsp>,
}

impl CircuitChoice {
    /// The build of a quantised model file: the choices over the
    /// command's defaults (`default`, given the quantised model), checked
    /// by [`CircuitSpec::new`].
    pub fn spec(
        &self,
        model: &ModelFile,
        default: impl FnOnce(&crate::fixed::QuantModel) -> (Layout, crate::rtl::Dsp),
    ) -> Result<CircuitSpec> {
        let q = model.student()?;
        let fmt = q.format();
        if let Some(bits) = self.bits.filter(|&b| b != fmt.bits || !fmt.is_uniform()) {
            bail!(
                "--bits {bits}: model {} is {} (weights Ww = {} bits, activations Wa = {} bits); the circuit's widths are the model's, so leave --bits out (or re-quantise the model)",
                model.name,
                fmt.name(),
                fmt.bits,
                fmt.act_bits
            );
        }
        let (layout, dsp) = default(q);
        let layout = Layout {
            lanes: self.lanes.unwrap_or(layout.lanes),
            macs: self.macs.unwrap_or(layout.macs),
        };
        CircuitSpec::new(q.clone(), model.data.grid, layout, self.dsp.unwrap_or(dsp))
    }

    /// [`CircuitChoice::spec`] with the defaults of `flimgru sim` and
    /// `flimgru export`: one lane, M = 3H (one full gate column per cycle),
    /// inferred multipliers.
    pub fn spec_or_full(&self, model: &ModelFile) -> Result<CircuitSpec> {
        self.spec(model, |q| {
            let layout = Layout {
                lanes: 1,
                macs: 3 * q.hidden,
            };
            (layout, crate::rtl::Dsp::Inferred)
        })
    }
}

/// `flimgru export`: the engine's Verilog into `out_dir`; returns its path.
pub fn export_verilog(
    model: &ModelFile,
    choice: &CircuitChoice,
    out_dir: &Path,
    files: &mut Plan,
) -> Result<PathBuf> {
    let spec = choice.spec_or_full(model)?;
    files.output_dir("--out", out_dir)?;
    files.output("--out", &out_dir.join(spec.file_name()))?;
    crate::export::write_verilog(&spec, &model.name, out_dir)
}

/// The choices of `flimgru synth` beyond board and model (None: the
/// board's default).
pub struct SynthOptions {
    /// The build; its layout and multiplier form default to the board's.
    pub circuit: CircuitChoice,
    pub clock_mhz: Option<f64>,
    pub baud: Option<u32>,
    /// nextpnr placement seeds (one run each; the report is the best's).
    pub seeds: Vec<u64>,
    /// Seeds placed at once.
    pub jobs: usize,
    /// Stop a seed's place-and-route after this many minutes.
    pub pnr_limit_minutes: Option<f64>,
    pub router2: bool,
    pub density: Option<f64>,
    /// Pin the lanes' multipliers to DSP rows (ECP5).
    pub floorplan: bool,
    pub out: Option<PathBuf>,
    pub command: String,
}

/// `flimgru synth`: the board top through yosys and nextpnr; the report is
/// also written as out/report.{json,md}.
pub fn synth(
    model: &ModelFile,
    board: crate::boards::Board,
    o: SynthOptions,
    files: &mut Plan,
) -> Result<crate::synth::SynthReport> {
    if let Some(d) = o.density {
        if !(d > 0.0 && d <= 1.0) {
            bail!("--density {d}: the placement density limit must be in (0, 1]");
        }
    }
    let pnr_limit = match o.pnr_limit_minutes {
        None => None,
        Some(m) if m.is_finite() && m > 0.0 && m <= 7.0 * 24.0 * 60.0 => {
            Some(std::time::Duration::from_secs_f64(m * 60.0))
        }
        Some(m) => {
            bail!("--pnr-limit-minutes {m}: the limit must be a number of minutes in (0, 10080]")
        }
    };
    let spec = o
        .circuit
        .spec(model, |_| (board.default_layout(), board.dsp()))?;
    let mut board_config = board.default_config();
    if let Some(f) = o.clock_mhz {
        board_config.clock_mhz = f;
    }
    if let Some(b) = o.baud {
        board_config.baud = b;
    }
    let out_dir = o.out.unwrap_or_else(|| {
        let form = if spec.dsp() == board.dsp() {
            String::new()
        } else {
            format!("-{}", spec.dsp().name())
        };
        PathBuf::from(format!(
            "out/synth/{board}-{}{form}",
            spec.name().replace('_', "-")
        ))
    });
    files.output_dir("--out", &out_dir)?;
    files.output("--out", &out_dir.join("report.json"))?;
    files.output("--out", &out_dir.join("report.md"))?;
    crate::synth::run(&crate::synth::SynthJob {
        board,
        spec: &spec,
        model_name: &model.name,
        board_config,
        seeds: o.seeds,
        jobs: o.jobs,
        pnr_limit,
        place: true,
        router2: o.router2,
        density: o.density,
        floorplan: o.floorplan,
        out_dir,
        command: o.command,
    })
}

/// `flimgru sim`: the rust-hdl circuit of a quantised model on the
/// histograms of `input`, results written exactly as `infer --engine fixed`
/// writes them (same writer), optionally the VCD. Returns the pixel count.
pub fn simulate_circuit(
    model: &ModelFile,
    choice: &CircuitChoice,
    input: &Path,
    output: &Path,
    vcd: Option<&Path>,
    files: &mut Plan,
) -> Result<usize> {
    let format = ResultFormat::from_path(output)?;
    let spec = choice.spec_or_full(model)?;
    files.input("--input", input).output("--output", output)?;
    if let Some(v) = vcd {
        if let Some(dir) = v.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--vcd {}: cannot create its directory", v.display()))?;
        }
        files.output("--vcd", v)?;
    }
    let hist = read_histograms(input)?;
    if hist.counts.ncols() != model.gates() {
        bail!(
            "{} has {} gates per pixel, the model {} expects {}",
            input.display(),
            hist.counts.ncols(),
            model.name,
            model.gates()
        );
    }
    let runner = crate::engine::Runner::Circuit(Box::new(spec), vcd.map(Path::to_path_buf));
    let lifetimes = runner
        .lifetimes(hist.counts.view())
        .with_context(|| format!("running {} through the circuit", input.display()))?;
    write_lifetimes(output, format, &lifetimes, hist.shape)?;
    Ok(lifetimes.len())
}

/// `path` with `.ext` appended (not replacing an extension: `a.eval` ->
/// `a.eval.md`, so a report never overwrites its model `a.json`).
pub fn with_suffix(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Default location of a model's evaluation report: beside the model.
pub fn default_report_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    model.with_file_name(format!("{stem}.eval"))
}

/// What `flimgru map` wrote.
#[derive(Clone, Debug)]
pub struct MapOutputs {
    pub map: PathBuf,
    pub histogram: PathBuf,
    pub phasor: PathBuf,
    pub table: PathBuf,
    pub values: PathBuf,
    pub ome: PathBuf,
    pub pixels: usize,
    pub unmasked: usize,
    /// Unmasked pixels flagged out of range.
    pub out_of_range: usize,
}

/// Where `flimgru map` reads its histograms from.
#[derive(Clone, Debug, Default)]
pub struct MapInput {
    /// Recording options (PTU binning and channel; the bin width of
    /// `.npy`/`.csv` input, which triggers grid matching).
    pub read: crate::data::formats::ReadOptions,
    /// `--period`: the laser period (ns) for the phasor where the
    /// recording has none.
    pub period_ns: Option<f64>,
    /// `--irf`: a measured IRF for the phasor's calibration (its times
    /// the recording's), and `--irf-spacing` for a `.npy` one.
    pub irf: Option<PathBuf>,
    pub irf_spacing_ns: Option<f64>,
    /// `--binning`: sum each pixel with its neighbours within this radius
    /// (`data::binning`); `None`: only an image too dim to map is binned,
    /// by the smallest radius that makes it mappable.
    pub binning: Option<usize>,
}

/// An image's histograms in memory and the time axis they were recorded on.
#[derive(Clone, Debug)]
pub struct ImageCounts {
    /// `[h * w, bins]`, pixels row-major.
    pub counts: Array2<f32>,
    /// `(h, w)`.
    pub shape: (usize, usize),
    /// Width of one bin (ns); `None`: the bins are the model's gates.
    pub bin_width_ns: Option<f64>,
    /// Laser period (ns), if known (grid matching wraps a whole period).
    pub period_ns: Option<f64>,
}

/// Spatial binning of `map`'s image (`--binning`): the radius given, or
/// for a recording whose brightest pixel is below `min_photons` the
/// smallest radius that lets at least 1 % of its pixels reach it (said on
/// stderr), as SPCImage users bin dim recordings.
fn bin_image(
    mut image: ImageCounts,
    binning: Option<usize>,
    min_photons: f64,
    input: &Path,
) -> Result<ImageCounts> {
    use crate::data::binning::{auto_radius, bin_square, MAX_AUTO_RADIUS};
    let r = match binning {
        Some(r) => r,
        None => match auto_radius(image.counts.view(), image.shape, min_photons)? {
            Some((0, _)) | None => 0,
            Some((r, n)) => {
                let side = 2 * r + 1;
                eprintln!(
                    "map: {}: no pixel has {min_photons} photons; binned {r} (each pixel the sum of the {side} x {side} square around it, as SPCImage's binning {r}): {n} pixels reach {min_photons} (--binning 0 maps it unbinned; at most {MAX_AUTO_RADIUS} is chosen by itself)",
                    input.display()
                );
                r
            }
        },
    };
    if r > 0 {
        image.counts = bin_square(image.counts.view(), image.shape, r)
            .with_context(|| format!("--binning {r}"))?;
    }
    Ok(image)
}

/// An image's histograms as `flimgru map` reads them: an `[h, w, G]`
/// `.npy`/`.csv` on the model's gates as it is, any other input through
/// the recording readers (notes printed on stderr).
fn read_image(model: &ModelFile, input: &Path, how: &MapInput) -> Result<ImageCounts> {
    use crate::data::formats::read_recording_with;
    let ext = input.extension().and_then(|e| e.to_str()).unwrap_or("");
    let plain = matches!(ext, "npy" | "csv") && how.read.bin_width_ns.is_none();
    if plain {
        // Already gates of the model's grid.
        let hist = read_histograms(input)?;
        let Some(shape) = hist.shape else {
            bail!(
                "{} holds {} histograms without an image shape; a map needs an [h, w, G] .npy",
                input.display(),
                hist.counts.nrows()
            );
        };
        if hist.counts.ncols() != model.gates() {
            bail!(
                "{} has {} gates per pixel, the model expects {}; give --bin-width to map it onto the model's grid",
                input.display(),
                hist.counts.ncols(),
                model.gates()
            );
        }
        return Ok(ImageCounts {
            counts: hist.counts,
            shape,
            bin_width_ns: None,
            period_ns: None,
        });
    }
    let rec = read_recording_with(input, &how.read)?;
    for note in &rec.notes {
        eprintln!("{}: {note}", input.display());
    }
    let (h, w, bins) = rec.counts.dim();
    let flat = rec
        .counts
        .view()
        .into_shape_with_order((h * w, bins))
        .expect("recording counts are contiguous")
        .mapv(|c| c as f32);
    Ok(ImageCounts {
        counts: flat,
        shape: (h, w),
        bin_width_ns: Some(rec.bin_width_ns),
        period_ns: rec.period_ns,
    })
}

/// `flimgru map`'s computation without its files: the lifetime image of
/// `image` by `engine` (made from `model`), pixels with fewer than
/// `min_photons` masked, pixels outside the model's training range
/// flagged by `trained` (`RangeCheck::for_spec(&model.data)`, passed in so
/// a caller can reuse it). The fixed engine takes whole non-negative counts
/// (fractional ones are an error). Bins of a known width are first matched
/// to the model's gate grid (rebinned and aligned, the report returned;
/// the fixed engine rounds the rebinned counts); otherwise they must be
/// the model's gates and go to the engine as they are.
pub fn lifetime_image(
    model: &ModelFile,
    engine: &crate::engine::Runner,
    trained: &crate::lifetime::range::RangeCheck,
    image: &ImageCounts,
    min_photons: f64,
    show_progress: bool,
) -> Result<(
    crate::map::LifetimeImage,
    Option<crate::data::grid_match::MatchReport>,
)> {
    lifetime_image_with(
        model,
        engine,
        trained,
        image,
        min_photons,
        None,
        show_progress,
    )
}

/// What the phasor of `flimgru map` is calibrated with beyond what the
/// recording and the model say.
#[derive(Clone, Debug, Default)]
pub struct PhasorOptions {
    /// `--period`: the laser period (ns) where the recording has none.
    pub period_ns: Option<f64>,
    /// `--irf`: a measured IRF whose times are the recording's, and how
    /// to name it.
    pub irf: Option<(crate::data::irf::MeasuredIrf, String)>,
}

/// [`lifetime_image`], and with `phasor` the image's calibrated phasors
/// in `LifetimeImage::phasor` (or the reason there are none).
#[allow(clippy::too_many_arguments)]
pub fn lifetime_image_with(
    model: &ModelFile,
    engine: &crate::engine::Runner,
    trained: &crate::lifetime::range::RangeCheck,
    image: &ImageCounts,
    min_photons: f64,
    phasor: Option<&PhasorOptions>,
    show_progress: bool,
) -> Result<(
    crate::map::LifetimeImage,
    Option<crate::data::grid_match::MatchReport>,
)> {
    use crate::data::grid_match::{match_to_grid_with, reference_anchor_ns, Anchor, MatchOptions};
    if engine.kind() == crate::engine::EngineKind::Fixed {
        // Counts as given go to the hardware as they are (as in `infer`);
        // only counts rebinned by grid matching are rounded.
        crate::engine::integer_counts(image.counts.view())?;
    }
    let (counts, report) = match image.bin_width_ns {
        None => {
            let bins = image.counts.ncols();
            if bins != model.gates() {
                bail!(
                    "the histograms have {bins} bins, the model expects {} gates; give their bin width to match them to the model's grid",
                    model.gates()
                );
            }
            (std::borrow::Cow::Borrowed(&image.counts), None)
        }
        Some(bin_width_ns) => {
            // A model trained on one measured IRF (an instrument's) sees
            // the rise at one place whatever the lifetime: align the
            // rising edge there. A model trained on random IRFs is aligned
            // by the decay's peak.
            let anchor = if model.data.irf.measured.is_some() {
                Anchor::RisingEdge
            } else {
                Anchor::Peak
            };
            let target = reference_anchor_ns(&model.data, anchor)?;
            let opts = MatchOptions {
                period_ns: image.period_ns,
                anchor,
                ..MatchOptions::default()
            };
            let (counts, report) = match_to_grid_with(
                image.counts.view(),
                bin_width_ns,
                &model.data.grid,
                target,
                &opts,
            )
            .with_context(|| {
                format!(
                    "matching the bins to the gate grid of model {} ({} gates of {} ns); a model for this recording's instrument is three commands away: `flimgru instrument RECORDING -o inst.json` (--irf FILE for a measured IRF, --period NS where the file lacks the laser period), `flimgru build --instrument inst.json --out models/myscope` (2-5 minutes on 2 cores), then `--model models/myscope/student-w8a12.json`",
                    crate::map::short_label(&model.name, 48),
                    model.data.grid.gates,
                    model.data.grid.dt_ns
                )
            })?;
            (std::borrow::Cow::Owned(counts), Some(report))
        }
    };
    let mut img = crate::map::compute(
        engine,
        counts.view(),
        image.shape,
        min_photons,
        trained,
        show_progress,
    )?;
    if let Some(r) = &report {
        img.warnings = recording_warnings(model, counts.view(), r)?;
    }
    let Some(phasor) = phasor else {
        return Ok((img, report));
    };
    img.phasor = phasor_image(model, counts.view(), image, report.as_ref(), &img, phasor)?;
    if let Ok(p) = &img.phasor {
        let grid = crate::lifetime::phasor::PhasorGrid::new(&model.data.grid, p.period_ns)?;
        img.warnings.extend(grid.short_window());
    }
    Ok((img, report))
}

/// The laser period of the phasor (ns) and where it came from: `--period`
/// (which must agree with a period the recording records), the
/// recording's, the model's training period for histograms already on its
/// gates; else none (the reason as `Err`).
fn phasor_period(
    model: &ModelFile,
    image: &ImageCounts,
    given: Option<f64>,
) -> Result<std::result::Result<(f64, String), String>> {
    use crate::lifetime::phasor::check_period;
    Ok(match (given, image.period_ns) {
        (Some(p), recorded) => {
            check_period("--period", p)?;
            if let Some(r) = recorded {
                if (r - p).abs() > 1e-6 * p {
                    bail!("--period {p} ns: the recording records a laser period of {r} ns");
                }
            }
            Ok((p, "--period".to_string()))
        }
        (None, Some(r)) => {
            check_period("the recording's laser period", r)?;
            Ok((r, "recorded in the file".to_string()))
        }
        (None, None) if image.bin_width_ns.is_none() => Ok((
            model.data.period_ns,
            "the model's training period: the histograms are on its gates".to_string(),
        )),
        (None, None) => Err(
            "the recording holds no laser period; give --period NS (e.g. 12.5 for 80 MHz)"
                .to_string(),
        ),
    })
}

/// The calibrated phasor of every unmasked pixel of `counts` (the image
/// on the model's gates, as the engine saw it). The IRF, in order:
/// `--irf` (its times taken as the recording's, moved as the matching
/// moved the data), the model's measured IRF (on its gates' axis), else
/// estimated from the image's summed decay's rising edge
/// ([`rising_edge_estimate`](crate::data::instrument::rising_edge_estimate)).
/// Errors for what the user gave (`--period`, `--irf`); `Ok(Err(why))`
/// when no phasor can be had otherwise.
fn phasor_image(
    model: &ModelFile,
    counts: ndarray::ArrayView2<f32>,
    image: &ImageCounts,
    report: Option<&crate::data::grid_match::MatchReport>,
    img: &crate::map::LifetimeImage,
    opts: &PhasorOptions,
) -> Result<std::result::Result<crate::map::PhasorImage, String>> {
    use crate::lifetime::phasor::{curve_phasor, Calibration, PhasorGrid};
    let (period_ns, period_source) = match phasor_period(model, image, opts.period_ns)? {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let grid = PhasorGrid::new(&model.data.grid, period_ns)?;
    let w = grid.omega();
    let calibration = if let Some((curve, name)) = &opts.irf {
        let shift = report.map_or(0.0, |r| r.shift_ns);
        Calibration::new(
            curve_phasor(curve, shift, w),
            &format!("measured, --irf {name}"),
        )?
    } else if let Some(m) = &model.data.irf.measured {
        let source = format!(
            "the model's measured IRF (model {})",
            crate::map::short_label(&model.name, 48)
        );
        let curve = match &m.samples {
            Some(samples) => samples.curve(&source)?,
            None => crate::data::irf::load_measured(&m.path, m.spacing_ns)
                .with_context(|| source.clone())?,
        };
        let shift = 0.5 * (m.shift_ns.0 + m.shift_ns.1);
        Calibration::new(curve_phasor(&curve, shift, w), &source)?
    } else {
        let mut decay = vec![0f64; counts.ncols()];
        for (row, l) in counts.rows().into_iter().zip(&img.lifetimes) {
            if l.is_some() {
                decay.iter_mut().zip(row).for_each(|(d, &c)| *d += c as f64);
            }
        }
        let estimate = crate::data::instrument::rising_edge_estimate(&decay, model.data.grid.dt_ns)
            .and_then(|(samples, tau)| {
                let source = format!("estimated from the image's rising edge (tail {tau:.3} ns)");
                let curve = samples.curve(&source)?;
                Calibration::new(curve_phasor(&curve, 0.0, w), &source)
            });
        match estimate {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(format!(
                    "no IRF to calibrate with: {e:#}; give a measured one (--irf FILE)"
                )))
            }
        }
    };
    let points = counts
        .rows()
        .into_iter()
        .zip(&img.lifetimes)
        .map(|(row, l)| {
            l.as_ref()?;
            let raw = match row.as_slice() {
                Some(r) => grid.raw(r),
                None => grid.raw(&row.to_vec()),
            }?;
            Some(calibration.apply(&raw))
        })
        .collect();
    Ok(Ok(crate::map::PhasorImage {
        points,
        period_ns,
        period_source,
        calibration,
    }))
}

/// Rise time of a recording's decay over the training data's slowest at
/// which the IRF counts as wider than the model was trained for.
pub const WIDER_IRF_RATIO: f64 = 1.25;

/// What about a whole recording (matched onto the model's grid as
/// `counts`, by `report`) is outside what the model was trained for: an
/// IRF wider than the training data's (the 10-90 % rise of the summed
/// decay more than [`WIDER_IRF_RATIO`] times the training data's slowest,
/// [`reference_rise_time_ns`](crate::data::grid_match::reference_rise_time_ns)), and a
/// window shorter than the model's (gates padded by the matching).
pub fn recording_warnings(
    model: &ModelFile,
    counts: ndarray::ArrayView2<f32>,
    report: &crate::data::grid_match::MatchReport,
) -> Result<Vec<String>> {
    use crate::data::grid_match::{reference_rise_time_ns, rise_time_ns};
    let mut w = Vec::new();
    let dt = model.data.grid.dt_ns;
    let reference = reference_rise_time_ns(&model.data)?;
    if let Ok(rise) = rise_time_ns(counts, dt, dt) {
        if rise > WIDER_IRF_RATIO * reference {
            w.push(format!(
                "the decay rises over {rise:.3} ns (10-90 %), the model's training data over at most {reference:.3} ns: a wider IRF than the model was trained for, so its lifetimes are biased; build a model for this instrument (flimgru instrument, flimgru build)"
            ));
        }
    }
    let padded = report.padded_start + report.padded_end;
    if padded > 0 {
        w.push(format!(
            "the recording's window is {padded} gate(s) ({:.3} ns) shorter than the model's: they were padded with the nearest recorded rate; long lifetimes read from the padded end are less certain",
            padded as f64 * dt
        ));
    }
    Ok(w)
}

/// `flimgru map`: lifetime map PNG at `out`, and beside it
/// `<stem>-histogram.png`, `<stem>-phasor.png`, `<stem>.csv`,
/// `<stem>.npy` and `<stem>.ome.tif`.
#[allow(clippy::too_many_arguments)]
pub fn map_image(
    model: &ModelFile,
    engine: Option<crate::engine::EngineKind>,
    input: &Path,
    how: &MapInput,
    out: &Path,
    quantity: crate::map::Quantity,
    min_photons: f64,
    range: Option<(f64, f64)>,
    show_progress: bool,
    files: &mut Plan,
) -> Result<MapOutputs> {
    use crate::map::{
        render_histogram, render_map, render_phasor, write_npy, write_ome_tiff, write_table,
        MapStyle,
    };
    if out.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!("map output {} must end in .png", out.display());
    }
    if how.read.dtime_binning == 0 {
        bail!("--dtime-binning 0: the number of micro-time channels summed per bin must be at least 1");
    }
    if let Some(p) = how.period_ns {
        crate::lifetime::phasor::check_period("--period", p)?;
    }
    let stem = out.with_extension("");
    let beside = |suffix: &str| {
        stem.with_file_name(format!(
            "{}{suffix}",
            stem.file_name().unwrap_or_default().to_string_lossy()
        ))
    };
    let (histogram, phasor_plot) = (beside("-histogram.png"), beside("-phasor.png"));
    let (table, values, ome) = (
        with_suffix(&stem, "csv"),
        with_suffix(&stem, "npy"),
        with_suffix(&stem, "ome.tif"),
    );
    files.input("the input", input);
    if let Some(f) = &how.irf {
        files.input("--irf", f);
    }
    for p in [out, &histogram, &phasor_plot, &table, &values, &ome] {
        files.output("--out", p)?;
    }
    // An instrument description (flimgru instrument) gives its IRF, and
    // its laser period where --period does not.
    let mut period_ns = how.period_ns;
    let irf = how
        .irf
        .as_ref()
        .map(|p| -> Result<_> {
            let what = format!("--irf {}", p.display());
            let curve = if p.extension().is_some_and(|e| e == "json") {
                let inst = crate::data::instrument::Instrument::load(p).context(what.clone())?;
                period_ns = period_ns.or(inst.period_ns);
                inst.irf.curve(&what)?
            } else {
                crate::data::irf::load_measured(p, how.irf_spacing_ns).context(what)?
            };
            Ok((curve, p.display().to_string()))
        })
        .transpose()?;
    let phasor = PhasorOptions { period_ns, irf };
    let image = bin_image(
        read_image(model, input, how)?,
        how.binning,
        min_photons,
        input,
    )?;
    let engine = crate::engine::Runner::new(model, engine)?;
    let trained = crate::lifetime::range::RangeCheck::for_spec(&model.data)?;
    let (img, report) = lifetime_image_with(
        model,
        &engine,
        &trained,
        &image,
        min_photons,
        Some(&phasor),
        show_progress,
    )
    .with_context(|| format!("mapping {}", input.display()))?;
    if let Some(report) = report {
        eprintln!("{}: {report}", input.display());
    }
    match &img.phasor {
        Ok(p) => eprintln!("{}: {}", input.display(), p.describe()),
        Err(why) => eprintln!(
            "warning: {}: no phasor (g, s left empty): {why}",
            input.display()
        ),
    }
    for w in &img.warnings {
        eprintln!("warning: {}: {w}", input.display());
    }
    if img.flagged() > 0 {
        eprintln!(
            "warning: {}: {} of {} pixels are out of range: their decays are longer (or their background higher) than any the model {} was trained on (lifetimes up to {} ns); they are flagged in the out_of_range column, drawn light grey and left out of the histogram",
            input.display(),
            img.flagged(),
            img.unmasked(),
            crate::map::short_label(&model.name, 48),
            trained.tau_max_ns
        );
    }
    let name = input
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let style = MapStyle {
        quantity,
        range: range.unwrap_or(quantity.default_range()),
        title: format!(
            "{name}: {} ({}, {})",
            quantity.label(),
            crate::map::short_label(&model.name, 48),
            match engine.kind() {
                crate::engine::EngineKind::Float => "float",
                crate::engine::EngineKind::Fixed => "fixed-point",
            }
        ),
    };
    let outputs = MapOutputs {
        map: out.to_path_buf(),
        histogram,
        phasor: phasor_plot,
        table,
        values,
        ome,
        pixels: img.lifetimes.len(),
        unmasked: img.unmasked(),
        out_of_range: img.flagged(),
    };
    let mut about = vec![
        ("source".to_string(), name.clone()),
        ("model".to_string(), model.name.clone()),
        (
            "engine".to_string(),
            match engine.kind() {
                crate::engine::EngineKind::Float => "float",
                crate::engine::EngineKind::Fixed => "fixed-point",
            }
            .to_string(),
        ),
        (
            "masked".to_string(),
            format!("pixels with fewer than {min_photons} photons: NaN in every plane but photons"),
        ),
    ];
    for (plane, unit) in [
        ("tau_mean (ns)", "ns"),
        ("tau1 (ns)", "ns"),
        ("tau2 (ns)", "ns"),
        ("fraction of tau1", "1 (amplitude fraction)"),
        ("photons", "photons"),
        ("out_of_range (1 = flagged)", "1 (flag)"),
        ("phasor G", "1"),
        ("phasor S", "1"),
    ] {
        about.push((format!("unit: {plane}"), unit.to_string()));
    }
    match &img.phasor {
        Ok(p) => {
            about.push((
                "phasor laser period (ns)".into(),
                format!("{}", p.period_ns),
            ));
            about.push(("phasor period source".into(), p.period_source.clone()));
            about.push(("phasor IRF".into(), p.calibration.source.clone()));
        }
        Err(why) => about.push(("phasor".into(), format!("none: {why}"))),
    }
    render_map(&img, &style, &outputs.map)?;
    render_histogram(&img, &style, &outputs.histogram)?;
    render_phasor(&img, &name, &outputs.phasor)?;
    write_table(&img, &outputs.table)?;
    write_npy(&img, &outputs.values)?;
    write_ome_tiff(&img, &name, &about, &outputs.ome)?;
    Ok(outputs)
}

/// A model `flimgru build` made for the instrument of `input`: the first
/// folder (by name) under `dir` whose instrument.json has the recording's
/// bin width, bin count and valid window, with its hardware student (student-w8a12.json).
/// None when `dir` holds no such build (or does not exist).
pub fn built_model_for(
    input: &Path,
    read: &crate::data::formats::ReadOptions,
    dir: &Path,
) -> Result<Option<(PathBuf, crate::data::instrument::Instrument)>> {
    use crate::build::BuildFiles;
    use crate::data::instrument::Instrument;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut builds: Vec<(PathBuf, Instrument)> = Vec::new();
    let mut folders: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    folders.sort();
    for folder in folders {
        let files = BuildFiles::in_dir(&folder);
        // Builds whose hardware student was W8 call it student-8bit.json.
        let student = [files.student, folder.join("student-8bit.json")]
            .into_iter()
            .find(|p| p.is_file());
        let Some(student) = student.filter(|_| files.instrument.is_file()) else {
            continue;
        };
        match Instrument::load(&files.instrument) {
            Ok(i) => builds.push((student, i)),
            Err(e) => eprintln!("warning: skipping {}: {e:#}", folder.display()),
        }
    }
    if builds.is_empty() {
        return Ok(None);
    }
    let rec = crate::data::formats::read_recording_with(input, read)?;
    let valid = (rec.valid_bins.start, rec.valid_bins.end);
    Ok(builds.into_iter().find(|(_, i)| {
        (i.bin_width_ns - rec.bin_width_ns).abs() <= 1e-9 * rec.bin_width_ns
            && i.bins == rec.bins()
            && i.valid_bins == valid
    }))
}

/// `flimgru instrument`: the instrument of a recording, with a measured
/// IRF or one estimated from the rising edge.
pub fn describe_instrument(
    input: &Path,
    read: &crate::data::formats::ReadOptions,
    irf: Option<&Path>,
    irf_spacing_ns: Option<f64>,
) -> Result<crate::data::instrument::Instrument> {
    use crate::data::instrument::Instrument;
    let rec = crate::data::formats::read_recording_with(input, read)?;
    for note in &rec.notes {
        eprintln!("{}: {note}", input.display());
    }
    let measured = irf
        .map(|p| -> Result<_> {
            let curve = crate::data::irf::load_measured(p, irf_spacing_ns)?;
            Ok((curve, p.display().to_string()))
        })
        .transpose()?;
    let name = input.display().to_string();
    Instrument::describe(&rec, &name, measured.as_ref().map(|(m, f)| (m, f.as_str())))
}

/// What an instrument description says, in lines a person reads.
pub fn instrument_summary(inst: &crate::data::instrument::Instrument) -> Result<String> {
    use crate::data::instrument::IrfOrigin;
    let (lo, hi) = inst.valid_bins;
    let (grid, factor) = inst.model_grid()?;
    let irf = match &inst.irf_origin {
        IrfOrigin::Measured { file } => format!("measured ({file})"),
        IrfOrigin::RisingEdge { tail_tau_ns } => format!(
            "estimated from the rising edge (decay log-slope {tail_tau_ns:.3} ns after the peak)"
        ),
    };
    Ok(format!(
        "{}: {}\n  {} bins of {:.4} ns ({:.3} ns); laser period {}\n  valid window: bins {lo}..{hi} ({:.3}..{:.3} ns); decay peak {:.3} ns; {} photons\n  IRF: {irf}, FWHM {:.3} ns\n  a model for it reads {} gates of {:.4} ns ({} bin(s) per gate)",
        inst.source,
        inst.kind,
        inst.bins,
        inst.bin_width_ns,
        inst.bins as f64 * inst.bin_width_ns,
        inst.period_ns.map_or("not recorded".to_string(), |p| format!("{p:.3} ns")),
        lo as f64 * inst.bin_width_ns,
        hi as f64 * inst.bin_width_ns,
        inst.peak_ns,
        inst.photons,
        inst.irf_fwhm_ns,
        grid.gates,
        grid.dt_ns,
        factor
    ))
}
