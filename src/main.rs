//! `flimgru`: argument parsing and printing only; every subcommand is a
//! library call (see `flimgru::app`).

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use flimgru::app;
use flimgru::bench;
use flimgru::data::formats::ReadOptions;
use flimgru::data::simulate::SimSpec;
use flimgru::data::GateGrid;
use flimgru::eval::EvalConfig;
use flimgru::lifetime::mle::MleModel;
use flimgru::map::Quantity;
use flimgru::model::{Seq2SeqConfig, TrainConfig};
use flimgru::model_file::ModelFile;
use flimgru::output::Plan;
use std::path::{Path, PathBuf};

/// `println!` that returns a failed write to stdout as an error (a closed
/// pipe or a full disk) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        flimgru::output::print(&format!("{}\n", format_args!($($t)*)))?
    };
}

/// `print!` likewise.
macro_rules! out {
    ($($t:tt)*) => {
        flimgru::output::print(&format!($($t)*))?
    };
}

#[derive(Parser)]
#[command(
    name = "flimgru",
    version,
    about = "Fluorescence lifetime imaging with a GRU Seq2Seq, from training to FPGA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate decay histograms: DIR/histograms.npy, DIR/truth.csv, DIR/spec.json.
    Simulate(SimulateArgs),
    /// Train a Seq2Seq (teacher or student shape) on freshly simulated data.
    Train(TrainArgs),
    /// The training recipe: a network (and its quantised student) trained on
    /// a stream of fresh pixels with the extraction-aware objective,
    /// validated on lifetime error; resumable (docs/precision.md).
    Recipe(RecipeArgs),
    /// The precision budget: every estimator of configs/precision.json on
    /// one test set beside the Poisson MLE (markdown + JSON).
    Precision(PrecisionArgs),
    /// Accuracy table of a model beside RLD and MLE (markdown + JSON).
    Eval(EvalArgs),
    /// Lifetimes of every pixel of a histogram file.
    Infer(InferArgs),
    /// Lifetime map of an image: PNG map with colour bar, lifetime histogram, CSV and .npy.
    Map(MapArgs),
    /// Describe a recording's instrument (time grid, laser period, valid
    /// window, IRF) as JSON for `simulate --spec`/training a model for it.
    Instrument(InstrumentArgs),
    /// Train a model for an instrument (`flimgru instrument`): the recipe's
    /// float and hardware (W8A12) students on its grid and IRF, their eval table and
    /// Verilog, into one folder.
    Build(BuildArgs),
    /// The compression study: teacher sizes, PTQ, KD + QAT students; writes
    /// the results table and ships the distilled student.
    Compress(CompressArgs),
    /// Simulate the rust-hdl circuit on histograms: results in exactly
    /// `infer --engine fixed`'s format, optionally the VCD waveform.
    Sim(SimArgs),
    /// Print a VCD signal's value changes (or --list the signals).
    Wave(WaveArgs),
    /// Write the engine's Verilog (lint-clean, header with parameters and the
    /// model's checksum) for a quantised model and (W, P, M).
    Export(ExportArgs),
    /// The open FPGA flow: a board top around the engine through yosys and
    /// nextpnr (YoWASP), with a JSON + markdown report of resources, Fmax,
    /// pixels/s and frame times; or --table of earlier reports.
    Synth(SynthArgs),
    /// Measure training, inference and simulator throughput.
    Bench(BenchArgs),
}

/// One build of the circuit, the same arguments for sim, export and synth:
/// the model (its widths are the circuit's), P, M and the multiplier form.
#[derive(Args)]
struct CircuitArgs {
    /// A quantised model file (default: the shipped W8A12 student, built in).
    /// Its widths are the circuit's: weights Ww, activations Wa.
    #[arg(long)]
    model: Option<PathBuf>,
    /// A check, not a choice: fail unless the model's width is this (the
    /// circuit is built at the model's width).
    #[arg(long)]
    bits: Option<u32>,
    /// Pixel lanes P (default: 1; synth: the board's committed configuration).
    #[arg(long)]
    lanes: Option<usize>,
    /// Multipliers per lane M (default: 3H, one full gate column per cycle;
    /// synth: the board's committed configuration).
    #[arg(long)]
    macs: Option<usize>,
    /// Multipliers: inferred (`*` for any toolchain) or ecp5 (Lattice
    /// MULT18X18D cells holding the product registers and the MACs'
    /// operand registers, the ULX3S flow's form; an export gets an `_ecp5`
    /// suffix). Default: inferred; synth: the board's (ecp5 on ulx3s).
    #[arg(long)]
    dsp: Option<flimgru::rtl::Dsp>,
}

impl CircuitArgs {
    /// The choices beyond the model file.
    fn choice(&self) -> app::CircuitChoice {
        app::CircuitChoice {
            bits: self.bits,
            lanes: self.lanes,
            macs: self.macs,
            dsp: self.dsp,
        }
    }
}

#[derive(Args)]
struct SimArgs {
    #[command(flatten)]
    circuit: CircuitArgs,
    /// Histograms: .npy [n, G] or [h, w, G] of whole counts, or .csv.
    #[arg(long, short)]
    input: PathBuf,
    /// Results: .csv or .npy, as `flimgru infer` writes them.
    #[arg(long, short)]
    output: PathBuf,
    /// Write the waveform here.
    #[arg(long)]
    vcd: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    #[command(flatten)]
    circuit: CircuitArgs,
    /// Output directory; the file is flimgru_w{W}_p{P}_m{M}.v (`_ecp5`
    /// added for --dsp ecp5).
    #[arg(long, default_value = "rtl")]
    out: PathBuf,
}

#[derive(Args)]
struct SynthArgs {
    /// Board: ulx3s (ECP5-85F), arty (Artix-7 100T), icebreaker (iCE40 UP5K).
    #[arg(long, required_unless_present = "table")]
    board: Option<flimgru::boards::Board>,
    #[command(flatten)]
    circuit: CircuitArgs,
    /// Engine clock the board's PLL makes, MHz (default: the board's).
    #[arg(long)]
    clock_mhz: Option<f64>,
    /// UART baud rate (default: the board's).
    #[arg(long)]
    baud: Option<u32>,
    /// nextpnr placement seed.
    #[arg(long, default_value_t = 1, conflicts_with = "seeds")]
    seed: u64,
    /// Several placement seeds (e.g. 1,2,3): one yosys run, one
    /// place-and-route per seed in <out>/seed-<s>/, and the top report is
    /// the best seed's with every seed's Fmax listed.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    seeds: Vec<u64>,
    /// Seeds placed and routed at once (each nextpnr is one process).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Stop a seed still placing or routing after this many minutes and
    /// report it as not routed (default: no limit).
    #[arg(long)]
    pnr_limit_minutes: Option<f64>,
    /// Route with nextpnr's router2 (much faster than the default router1
    /// on congested designs such as P = 4 on the ECP5-85F).
    #[arg(long)]
    router2: bool,
    /// nextpnr's placement density limit in (0, 1] (its
    /// --placer-heap-beta, default 0.9). At W = 8, P = 3, M = 48, 0.7
    /// placed exactly as 0.9: the limit does not bind there
    /// (docs/hardware.md).
    #[arg(long)]
    density: Option<f64>,
    /// Pin each lane's multipliers to whole MULT18X18D rows of the ECP5-85F
    /// in unit order (BEL attributes; docs/hardware.md).
    #[arg(long)]
    floorplan: bool,
    /// Output directory (default: out/synth/<board>-w<W>-p<P>-m<M>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the markdown table of these report.json files instead.
    #[arg(long, num_args = 1.., conflicts_with = "board")]
    table: Vec<PathBuf>,
}

#[derive(Args)]
struct WaveArgs {
    /// A VCD file (from `flimgru sim --vcd` or a failing co-simulation test).
    vcd: PathBuf,
    /// Signal path (as --list prints it) or a unique suffix of one.
    #[arg(long, required_unless_present = "list")]
    signal: Option<String>,
    /// First time to print (VCD time units).
    #[arg(long)]
    from: Option<u64>,
    /// Last time to print.
    #[arg(long)]
    to: Option<u64>,
    /// List every signal with its width.
    #[arg(long)]
    list: bool,
}

#[derive(Args)]
struct CompressArgs {
    /// Job file (JSON, see --print-config); defaults to the built-in study.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the job as JSON and exit.
    #[arg(long)]
    print_config: bool,
    /// Results table (markdown; a .json twin is written beside it).
    #[arg(long, default_value = "docs/results.md")]
    report: PathBuf,
    /// Where the study's trained models go (reused when present).
    #[arg(long, default_value = "out/compress")]
    dir: PathBuf,
    /// Where the distilled student is written (the study's KD + QAT
    /// student; the default hardware model, models/student-w8a12.json, is
    /// made by `flimgru recipe`).
    #[arg(long, default_value = "models/student-8bit-kd.json")]
    ship: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum MapQuantity {
    /// Amplitude-weighted mean lifetime.
    TauMean,
    Tau1,
    Tau2,
    Fraction,
}

/// How a recording is read (`map`, `instrument`).
#[derive(Args)]
struct RecordingArgs {
    /// Bin width (ns) of .npy/.csv input whose bins differ from the model's
    /// gates: the histograms are then rebinned and aligned.
    #[arg(long)]
    bin_width: Option<f64>,
    /// PTU: sum this many micro-time channels per bin while reading.
    #[arg(long, default_value_t = 1)]
    dtime_binning: usize,
    /// PTU: only photons of this detector (routing) channel (default: all
    /// when their decays are aligned, else the one with the most photons).
    #[arg(long)]
    channel: Option<u32>,
    /// SDT: read this data block (0-based; default: the first image block).
    #[arg(long)]
    block: Option<usize>,
}

impl RecordingArgs {
    fn options(&self) -> ReadOptions {
        ReadOptions {
            bin_width_ns: self.bin_width,
            dtime_binning: self.dtime_binning,
            channel: self.channel,
            block: self.block,
        }
    }
}

#[derive(Args)]
struct InstrumentArgs {
    /// A recording: PicoQuant .ptu / .phu, Becker & Hickl .sdt, or a
    /// .npy with --bin-width.
    input: PathBuf,
    #[command(flatten)]
    read: RecordingArgs,
    /// A measured IRF (.asc time/value columns as SPCImage exports, .csv
    /// time_ns,value, or .npy with --irf-spacing); default: estimated from
    /// the recording's rising edge.
    #[arg(long)]
    irf: Option<PathBuf>,
    /// Sample spacing (ns) of a .npy IRF.
    #[arg(long)]
    irf_spacing: Option<f64>,
    /// Laser period (ns) where the file does not record the sync rate
    /// (e.g. 12.5 for an 80 MHz laser).
    #[arg(long)]
    period: Option<f64>,
    /// The description (JSON).
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Args)]
struct BuildArgs {
    /// The instrument description (`flimgru instrument FILE -o inst.json`).
    #[arg(long)]
    instrument: PathBuf,
    /// Output folder: instrument.json, student-float.json, student-w8a12.json,
    /// student-w8a12.eval.{md,json}, rtl/.
    #[arg(long, short)]
    out: PathBuf,
    /// Wall-time budget (minutes) of the two training stages; a stage it
    /// stops resumes when the command is run again.
    #[arg(long, default_value_t = 55.0)]
    minutes: f64,
    /// Float-stage samples (default: the recipe's 1,000,000).
    #[arg(long)]
    float_samples: Option<u64>,
    /// QAT-stage samples (default: the recipe's 250,000).
    #[arg(long)]
    qat_samples: Option<u64>,
    /// Lifetime range "LO,HI" (ns) of the training data (default 0.05,3).
    #[arg(long, value_parser = parse_range)]
    tau: Option<(f64, f64)>,
    /// A separate range "LO,HI" (ns) for the long lifetime of
    /// bi-exponential pixels (--tau then ranges the short one), for a
    /// sample class such as NAD(P)H.
    #[arg(long, value_parser = parse_range)]
    long_tau: Option<(f64, f64)>,
    /// Photon range "LO,HI" of the training data (default 50,5000).
    #[arg(long, value_parser = parse_range)]
    photons: Option<(f64, f64)>,
    /// Pixels of the evaluation (the MLE fits a tenth of them).
    #[arg(long, default_value_t = 5000)]
    eval_pixels: usize,
}

#[derive(Args)]
struct MapArgs {
    /// Image: PicoQuant .ptu (T3 image) / .phu, Becker & Hickl .sdt, or an
    /// [h, w, G] .npy on the model's grid (any dtype; other grids with --bin-width).
    input: PathBuf,
    #[command(flatten)]
    read: RecordingArgs,
    /// Map PNG; <stem>-histogram.png, <stem>-phasor.png, <stem>.csv,
    /// <stem>.npy and <stem>.ome.tif go beside it.
    #[arg(long, short)]
    out: PathBuf,
    /// Laser period (ns) for the phasor where the file does not record the
    /// sync rate (e.g. 12.5 for an 80 MHz laser).
    #[arg(long, allow_hyphen_values = true)]
    period: Option<f64>,
    /// The IRF for the phasor's calibration: a measured one (.asc, .csv
    /// time_ns,value, or .npy with --irf-spacing) or an instrument
    /// description's (.json), its times the recording's; default: the
    /// model's measured IRF, else estimated from the image's rising edge.
    #[arg(long)]
    irf: Option<PathBuf>,
    /// Sample spacing (ns) of a .npy IRF.
    #[arg(long)]
    irf_spacing: Option<f64>,
    /// Model file (default: the shipped W8A12 student, built in).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Default: fixed (what the FPGA computes) for a quantised model, float otherwise.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// What the colour shows.
    #[arg(long, value_enum, default_value_t = MapQuantity::TauMean)]
    quantity: MapQuantity,
    /// Pixels with fewer photons are masked (no lifetime).
    #[arg(long, default_value_t = 50.0)]
    min_photons: f64,
    /// Spatial binning: each pixel's histogram summed over the
    /// (2N + 1) x (2N + 1) square around it (SPCImage's "binning N").
    /// Default: 0, unless no pixel reaches --min-photons: then the
    /// smallest N (up to 3) that lets 1 % of the pixels reach it, said.
    #[arg(long)]
    binning: Option<usize>,
    /// Colour range "LO,HI" (default 0,3 ns for lifetimes, 0,1 for the fraction).
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    range: Option<(f64, f64)>,
}

#[derive(Args)]
struct DataArgs {
    /// Data spec as JSON (a SimSpec); flags below override its fields.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Gates per histogram.
    #[arg(long)]
    gates: Option<usize>,
    /// Gate width in ns.
    #[arg(long)]
    dt: Option<f64>,
    /// Share of mono-exponential pixels (0..1).
    #[arg(long)]
    mono_fraction: Option<f64>,
    /// Photon range "LO,HI" (log-uniform).
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    photons: Option<(f64, f64)>,
    /// Measured IRF file (CSV time_ns,value or .npy sampled at --irf-spacing).
    #[arg(long)]
    irf: Option<PathBuf>,
    /// Sample spacing (ns) of an .npy IRF.
    #[arg(long)]
    irf_spacing: Option<f64>,
    /// Per-pixel random shift "LO,HI" (ns) of the measured IRF.
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    irf_shift: Option<(f64, f64)>,
}

impl DataArgs {
    fn spec(&self) -> Result<SimSpec> {
        let mut spec = match &self.spec {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read data spec {}", p.display()))?;
                let spec: SimSpec = serde_json::from_str(&text)
                    .with_context(|| format!("data spec {} is malformed", p.display()))?;
                spec.validate()
                    .with_context(|| format!("data spec {}", p.display()))?;
                spec
            }
            None => SimSpec::default(),
        };
        if self.gates.is_some() || self.dt.is_some() {
            spec.grid = GateGrid::new(
                self.gates.unwrap_or(spec.grid.gates),
                self.dt.unwrap_or(spec.grid.dt_ns),
            )?;
        }
        if let Some(m) = self.mono_fraction {
            spec.mono_fraction = m;
        }
        if let Some(p) = self.photons {
            spec.photons = p;
        }
        if let Some(path) = &self.irf {
            spec.irf.measured = Some(flimgru::data::irf::MeasuredIrfSpec {
                samples: None,
                path: path.clone(),
                spacing_ns: self.irf_spacing,
                shift_ns: self.irf_shift.unwrap_or((0.0, 0.0)),
            });
        }
        spec.validate().context("the data options")?;
        Ok(spec)
    }

    /// The files these options read, as inputs of `files`.
    fn inputs(&self, files: &mut Plan) {
        if let Some(p) = &self.spec {
            files.input("--spec", p);
        }
        if let Some(p) = &self.irf {
            files.input("--irf", p);
        }
    }
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?} is not a range LO,HI"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|e| format!("{v:?} in range {s:?}: {e}"))
    };
    Ok((p(a)?, p(b)?))
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 10_000)]
    pixels: usize,
    /// Instead of a list of pixels: a synthetic FLIM image of cells written
    /// as DIR/sample.ptu (HydraHarp T3), DIR/sample.npy and DIR/sample.truth.csv.
    #[arg(long, conflicts_with = "pixels")]
    image: bool,
    /// Image height (pixels), with --image.
    #[arg(long, default_value_t = 64, requires = "image")]
    height: usize,
    /// Image width (pixels), with --image.
    #[arg(long, default_value_t = 64, requires = "image")]
    width: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    /// Keras defaults (reset_after = true, sigmoid, tanh): the paper's teacher.
    Teacher,
    /// reset_after = false: the paper's Seq2SeqLite shape.
    Student,
}

#[derive(Args)]
struct TrainArgs {
    /// Training job as JSON (network, training, data, pixels, data_seed, name),
    /// instead of the flags below; `--print-config` shows the format.
    #[arg(long, conflicts_with_all = [
        "hidden", "shape", "pixels", "data_seed", "epochs", "batch", "lr",
        "validation_fraction", "plateau_patience", "early_stop_patience",
        "max_minutes", "seed", "name", "spec", "gates", "dt", "mono_fraction",
        "photons", "irf", "irf_spacing", "irf_shift",
    ])]
    config: Option<PathBuf>,
    /// Print the resolved training job as JSON and exit without training.
    #[arg(long)]
    print_config: bool,
    /// Units per GRU layer, bottom first (encoder and decoder mirror them).
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "128,128")]
    hidden: Vec<usize>,
    #[arg(long, value_enum, default_value_t = Shape::Teacher)]
    shape: Shape,
    /// Training pixels simulated (split into train and validation).
    #[arg(long, default_value_t = 100_000)]
    pixels: usize,
    #[arg(long, default_value_t = 1)]
    data_seed: u64,
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0.1)]
    validation_fraction: f64,
    #[arg(long, default_value_t = 3)]
    plateau_patience: usize,
    #[arg(long, default_value_t = 8)]
    early_stop_patience: usize,
    /// Stop after this many minutes, keeping the best weights.
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Seed of weight initialisation and batch order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model name (default: derived from the shape).
    #[arg(long)]
    name: Option<String>,
    /// Output model file (JSON).
    #[arg(long, short, required_unless_present = "print_config")]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

impl TrainArgs {
    fn job(&self) -> Result<app::TrainJob> {
        if let Some(path) = &self.config {
            let mut job = app::TrainJob::load(path)?;
            job.command = command_line();
            return Ok(job);
        }
        let network = match self.shape {
            Shape::Teacher => Seq2SeqConfig::teacher(self.hidden.clone()),
            Shape::Student => {
                let mut c = Seq2SeqConfig::student(self.hidden[0]);
                c.hidden = self.hidden.clone();
                c
            }
        };
        let sizes: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        let shape = match self.shape {
            Shape::Teacher => "teacher",
            Shape::Student => "student",
        };
        Ok(app::TrainJob {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("{shape}-{}", sizes.join("x"))),
            network,
            training: TrainConfig {
                batch: self.batch,
                epochs: self.epochs,
                learning_rate: self.lr,
                validation_fraction: self.validation_fraction,
                plateau_patience: self.plateau_patience,
                early_stop_patience: self.early_stop_patience,
                max_minutes: self.max_minutes,
                seed: self.seed,
                ..TrainConfig::default()
            },
            data: self.data.spec()?,
            pixels: self.pixels,
            data_seed: self.data_seed,
            command: command_line(),
        })
    }
}

#[derive(Args)]
struct RecipeArgs {
    /// The job (JSON): name, network, data, data_seed, validation_pixels,
    /// float and/or qat stages, optional init model (configs/recipe/).
    #[arg(long)]
    config: PathBuf,
    /// Output model file; checkpoints are kept beside it until it is written.
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Args)]
struct PrecisionArgs {
    /// Rows, test-set size and seed (JSON).
    #[arg(long, default_value = "configs/precision.json")]
    config: PathBuf,
    /// Markdown table; the JSON beside it (same name, .json).
    #[arg(long, short, default_value = "docs/precision.md")]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 20_000)]
    pixels: usize,
    #[arg(long, default_value_t = 1_000)]
    mle_pixels: usize,
    /// Pixels per F-value point (0 skips the F-value table).
    #[arg(long, default_value_t = 500)]
    f_pixels: usize,
    #[arg(long, default_value_t = 12_345)]
    seed: u64,
    /// Report path without extension (writes .md and .json); default beside the model.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Also store the table in the model file.
    #[arg(long)]
    update_model: bool,
    /// Engine of the network rows (default: fixed for a quantised model, float otherwise).
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// IRF centre range LO,HI (ns) for every set instead of the model's
    /// spec's, e.g. 0.5,0.7: how precision depends on where the IRF sits.
    #[arg(long, value_parser = parse_range, value_name = "LO,HI")]
    irf_centre: Option<(f64, f64)>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    /// The float network.
    Float,
    /// The fixed-point golden model (bit-exact with the FPGA engine).
    Fixed,
}

impl Engine {
    fn kind(self) -> flimgru::engine::EngineKind {
        match self {
            Engine::Float => flimgru::engine::EngineKind::Float,
            Engine::Fixed => flimgru::engine::EngineKind::Fixed,
        }
    }
}

#[derive(Args)]
struct InferArgs {
    /// Model file (default: the shipped W8A12 student, built in).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Histograms: .npy [n, G] or [h, w, G] of any numeric dtype, or .csv.
    #[arg(long, short)]
    input: PathBuf,
    /// Results: .csv (header tau1,tau2,fraction) or .npy.
    #[arg(long, short)]
    output: PathBuf,
    /// Default: fixed for a quantised model file, float otherwise.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
}

#[derive(Args)]
struct BenchArgs {
    /// Seconds per training measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Only the golden-model measurements (skip training, simulator, MLE).
    #[arg(long)]
    golden_only: bool,
    /// Write the measurements as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    use clap::{CommandFactory, FromArgMatches};
    // Negative numbers are values (`--pixels -1` is then refused by the
    // option's own parser, which names it), not unknown flags.
    let matches = Cli::command()
        .mut_subcommands(|c| c.allow_negative_numbers(true))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = run(cli) {
        if flimgru::output::is_broken_pipe(&e) {
            // The reader closed stdout (`| head`): stop quietly.
            std::process::exit(141);
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "error: {e:#}");
        std::process::exit(1);
    }
}

/// The command as a user would type it (program name without its path).
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.insert(0, "flimgru".into());
    args.join(" ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate(a) if a.image => {
            let spec = a.data.spec()?;
            let mut plan = Plan::new();
            a.data.inputs(&mut plan);
            let files =
                app::simulate_image_to_dir(&spec, a.height, a.width, a.seed, &a.out, &mut plan)?;
            outln!(
                "wrote a {} x {} image to {}, {} and {}",
                a.height,
                a.width,
                files.ptu.display(),
                files.npy.display(),
                files.truth.display()
            );
        }
        Command::Simulate(a) => {
            let spec = a.data.spec()?;
            let mut plan = Plan::new();
            a.data.inputs(&mut plan);
            app::simulate_to_dir(&spec, a.pixels, a.seed, &a.out, &mut plan)?;
            outln!(
                "wrote {} pixels x {} gates to {}",
                a.pixels,
                spec.grid.gates,
                a.out.display()
            );
        }
        Command::Train(a) => {
            let job = a.job()?;
            if a.print_config {
                outln!("{}", serde_json::to_string_pretty(&job)?);
                return Ok(());
            }
            let out = a.out.as_ref().expect("clap requires --out");
            let mut plan = Plan::new();
            if let Some(c) = &a.config {
                plan.input("--config", c);
            }
            a.data.inputs(&mut plan);
            if let Some(f) = job.data.irf.measured.as_ref().and_then(|m| m.file()) {
                plan.input("the measured IRF", f);
            }
            plan.output("--out", out)?;
            let model = app::train_model(&job, true)?;
            model.save(out)?;
            outln!(
                "wrote {} (best validation MSE {:.6} at epoch {}, {:.1} min, {:.0} samples/s; {})",
                out.display(),
                model.history.best_validation_loss,
                model.history.best_epoch,
                model.history.wall_seconds / 60.0,
                model.history.samples_per_second,
                model.history.stop_reason
            );
        }
        Command::Recipe(a) => {
            let job = flimgru::recipe::RecipeJob::load(&a.config)?;
            let mut plan = Plan::new();
            plan.input("--config", &a.config);
            if let Some(init) = &job.init {
                plan.input("the init model (job field \"init\")", init);
            }
            plan.output("--out", &a.out)?;
            for stage in ["float", "qat"] {
                let ck = flimgru::recipe::checkpoint_path(&a.out, stage);
                plan.output("its checkpoint", &ck)?;
            }
            let model = flimgru::recipe::run(&job, &command_line(), &a.out, true)?;
            let minutes: f64 = model
                .stream
                .iter()
                .map(|r| r.history.wall_seconds)
                .sum::<f64>()
                / 60.0;
            outln!(
                "wrote {} ({}; best validation score {:.4}; {:.1} min over {} stage(s))",
                a.out.display(),
                model.weights.config.describe(),
                model.history.best_validation_loss,
                minutes,
                model.stream.len()
            );
        }
        Command::Precision(a) => {
            let config = flimgru::precision::PrecisionConfig::load(&a.config)?;
            let json_path = a.out.with_extension("json");
            let mut plan = Plan::new();
            plan.input("--config", &a.config);
            for r in &config.rows {
                plan.input(&format!("the model of row {:?}", r.label), &r.model);
            }
            plan.output("--out", &a.out)?;
            plan.output("its JSON twin", &json_path)?;
            let budget = flimgru::precision::measure(&config)?;
            let md = format!(
                "# Precision budget\n\nRegenerated by `{}`.\n\n{}",
                command_line(),
                budget.to_markdown()
            );
            let json = serde_json::to_string_pretty(&budget)?;
            flimgru::output::write_bytes(&a.out, md.as_bytes())?;
            flimgru::output::write_bytes(&json_path, json.as_bytes())?;
            outln!("{md}");
            outln!("wrote {} and {}", a.out.display(), json_path.display());
        }
        Command::Eval(a) => {
            let mut model = ModelFile::load(&a.model)?;
            let config = EvalConfig {
                pixels: a.pixels,
                mle_pixels: a.mle_pixels,
                f_pixels: a.f_pixels,
                seed: a.seed,
                engine: a.engine.map(Engine::kind),
                irf_centre_ns: a.irf_centre,
            };
            let out = a.out.unwrap_or_else(|| app::default_report_path(&a.model));
            let mut plan = Plan::new();
            plan.input("--model", &a.model);
            let ev = app::evaluate_to_files(&model, &config, &out, &mut plan)?;
            outln!("{}", ev.to_markdown());
            outln!(
                "wrote {} and {}",
                app::with_suffix(&out, "md").display(),
                app::with_suffix(&out, "json").display()
            );
            if a.update_model {
                model.metrics = Some(serde_json::to_value(&ev)?);
                model.save(&a.model)?;
            }
        }
        Command::Infer(a) => {
            let mut plan = Plan::new();
            let model = model_arg(&a.model, &mut plan)?;
            let n = app::infer(
                &model,
                a.engine.map(Engine::kind),
                &a.input,
                &a.output,
                &mut plan,
            )?;
            outln!("wrote {n} pixels to {}", a.output.display());
        }
        Command::Map(a) => {
            let mut plan = Plan::new();
            // Without --model: a model built for this recording's
            // instrument under ./models (flimgru build), else the shipped
            // student.
            let built = match (&a.model, a.read.bin_width.is_none()) {
                (None, true) => {
                    app::built_model_for(&a.input, &a.read.options(), Path::new("models"))?
                }
                _ => None,
            };
            let model = match &built {
                Some((path, inst)) => {
                    eprintln!(
                        "map: using {}, built for this instrument (described from {})",
                        path.display(),
                        inst.source
                    );
                    plan.input("the instrument's model", path);
                    ModelFile::load(path)?
                }
                None => model_arg(&a.model, &mut plan)?,
            };
            let quantity = match a.quantity {
                MapQuantity::TauMean => Quantity::TauMean,
                MapQuantity::Tau1 => Quantity::Tau1,
                MapQuantity::Tau2 => Quantity::Tau2,
                MapQuantity::Fraction => Quantity::Fraction,
            };
            let out = app::map_image(
                &model,
                a.engine.map(Engine::kind),
                &a.input,
                &app::MapInput {
                    read: a.read.options(),
                    period_ns: a.period,
                    irf: a.irf.clone(),
                    irf_spacing_ns: a.irf_spacing,
                    binning: a.binning,
                },
                &a.out,
                quantity,
                a.min_photons,
                a.range,
                true,
                &mut plan,
            )?;
            outln!(
                "{} of {} pixels had at least {} photons ({} of them out of range); wrote {}, {}, {}, {}, {} and {}",
                out.unmasked,
                out.pixels,
                a.min_photons,
                out.out_of_range,
                out.map.display(),
                out.histogram.display(),
                out.phasor.display(),
                out.table.display(),
                out.values.display(),
                out.ome.display()
            );
        }
        Command::Instrument(a) => {
            let mut plan = Plan::new();
            plan.input("the recording", &a.input);
            if let Some(f) = &a.irf {
                plan.input("--irf", f);
            }
            plan.output("--out", &a.out)?;
            let mut inst = app::describe_instrument(
                &a.input,
                &a.read.options(),
                a.irf.as_deref(),
                a.irf_spacing,
            )?;
            if let Some(p) = a.period {
                if let Some(recorded) = inst.period_ns {
                    if (recorded - p).abs() > 1e-6 * p {
                        bail!("--period {p} ns: the file records a laser period of {recorded} ns");
                    }
                }
                inst.period_ns = Some(p);
                inst.validate().context("--period")?;
            }
            flimgru::output::write_bytes(&a.out, serde_json::to_string_pretty(&inst)?.as_bytes())?;
            outln!("{}", app::instrument_summary(&inst)?);
            outln!("wrote {}", a.out.display());
        }
        Command::Build(a) => {
            let inst = flimgru::data::instrument::Instrument::load(&a.instrument)?;
            let opts = flimgru::build::BuildOptions {
                float_samples: a.float_samples,
                qat_samples: a.qat_samples,
                tau_ns: a.tau,
                long_tau_ns: a.long_tau,
                photons: a.photons,
                minutes: a.minutes,
                eval_pixels: a.eval_pixels,
            };
            let mut plan = Plan::new();
            plan.input("--instrument", &a.instrument);
            flimgru::build::plan_outputs(&a.out, &mut plan)?;
            flimgru::build::jobs(&inst, &opts, &a.out)?;
            let r = flimgru::build::run(&inst, &opts, &a.out, &command_line(), &mut plan)?;
            outln!("{}", r.evaluation.to_markdown());
            outln!(
                "built {} in {:.1} min: {}, {}, {}.md and {}",
                a.out.display(),
                r.minutes,
                r.files.float.display(),
                r.files.student.display(),
                r.files.eval.display(),
                r.verilog.display()
            );
        }
        Command::Compress(a) => {
            let job = match &a.config {
                Some(p) => flimgru::compress::CompressJob::load(p)?,
                None => flimgru::compress::CompressJob::default(),
            };
            if a.print_config {
                outln!("{}", serde_json::to_string_pretty(&job)?);
                return Ok(());
            }
            let study = app::compress(
                &job,
                a.config.as_deref(),
                &command_line(),
                &a.dir,
                &a.ship,
                &a.report,
            )?;
            outln!("{}", study.to_markdown());
            outln!(
                "wrote {}, {} and {} ({:.1} min)",
                a.report.display(),
                app::with_suffix(&a.report.with_extension(""), "json").display(),
                a.ship.display(),
                study.wall_seconds / 60.0
            );
        }
        Command::Sim(a) => {
            let mut plan = Plan::new();
            let model = model_arg(&a.circuit.model, &mut plan)?;
            let n = app::simulate_circuit(
                &model,
                &a.circuit.choice(),
                &a.input,
                &a.output,
                a.vcd.as_deref(),
                &mut plan,
            )?;
            out!("simulated {n} pixels; wrote {}", a.output.display());
            match &a.vcd {
                Some(v) => outln!(" and {}", v.display()),
                None => outln!(""),
            }
        }
        Command::Export(a) => {
            let mut plan = Plan::new();
            let model = model_arg(&a.circuit.model, &mut plan)?;
            let path = app::export_verilog(&model, &a.circuit.choice(), &a.out, &mut plan)?;
            outln!("wrote {}", path.display());
        }
        Command::Synth(a) => {
            if !a.table.is_empty() {
                out!("{}", flimgru::synth::table(&a.table)?);
                return Ok(());
            }
            let board = a.board.expect("clap requires --board without --table");
            let mut plan = Plan::new();
            let model = model_arg(&a.circuit.model, &mut plan)?;
            let report = app::synth(
                &model,
                board,
                app::SynthOptions {
                    circuit: a.circuit.choice(),
                    clock_mhz: a.clock_mhz,
                    baud: a.baud,
                    seeds: if a.seeds.is_empty() {
                        vec![a.seed]
                    } else {
                        a.seeds.clone()
                    },
                    jobs: a.jobs,
                    pnr_limit_minutes: a.pnr_limit_minutes,
                    router2: a.router2,
                    density: a.density,
                    floorplan: a.floorplan,
                    out: a.out.clone(),
                    command: std::iter::once("flimgru".to_string())
                        .chain(std::env::args().skip(1))
                        .collect::<Vec<_>>()
                        .join(" "),
                },
                &mut plan,
            )?;
            out!("{}", flimgru::synth::TABLE_HEADER);
            out!("{}", flimgru::synth::table_row(&report));
        }
        Command::Wave(a) => {
            let text = if a.list {
                flimgru::rtl::wave::signal_list(&a.vcd)?
            } else {
                let signal = a.signal.as_deref().expect("clap requires --signal");
                flimgru::rtl::wave::changes(&a.vcd, signal, a.from, a.to)?
            };
            out!("{text}");
        }
        Command::Bench(a) => run_bench(&a)?,
    }
    Ok(())
}

/// `--model`'s file (declared to the plan as an input), or the shipped
/// student built into the binary.
fn model_arg(path: &Option<PathBuf>, plan: &mut Plan) -> Result<ModelFile> {
    if let Some(p) = path {
        plan.input("--model", p);
    }
    ModelFile::load_or_shipped(path.as_deref())
}

fn run_bench(a: &BenchArgs) -> Result<()> {
    if !(a.seconds.is_finite() && a.seconds > 0.0) {
        bail!("--seconds must be positive");
    }
    if let Some(p) = &a.json {
        Plan::new().output("--json", p)?;
    }
    let grid = GateGrid::PAPER;
    let spec = SimSpec::default();
    let mut results = Vec::new();
    if !a.golden_only {
        results.extend([
            bench::simulator_throughput(&spec, 200_000)?,
            bench::mle_throughput(&spec, MleModel::Mono, 1000)?,
            bench::mle_throughput(&spec, MleModel::Bi, 300)?,
        ]);
        for config in [
            Seq2SeqConfig::student(32),
            Seq2SeqConfig::teacher(vec![128, 128]),
        ] {
            results.push(bench::training_throughput(&config, &grid, 256, a.seconds));
            results.push(bench::inference_throughput(&config, &grid, 4096));
        }
    }
    for bits in [8, 16] {
        results.push(bench::golden_throughput(&spec, 32, bits, 50_000)?);
    }
    for r in &results {
        match r.gflops {
            Some(g) => outln!(
                "{:<60} {:>10.0} {} ({g:.1} GFLOP/s)",
                r.what,
                r.value,
                r.unit
            ),
            None => outln!("{:<60} {:>10.0} {}", r.what, r.value, r.unit),
        }
    }
    if let Some(p) = &a.json {
        write_json(p, &results)?;
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    flimgru::output::write_bytes(path, json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["flimgru", "train", "--hidden", "64,32", "--out", "m.json"])
            .unwrap();
        match cli.command {
            Command::Train(a) => assert_eq!(a.hidden, vec![64, 32]),
            _ => panic!("parsed the wrong subcommand"),
        }
        assert!(Cli::try_parse_from([
            "flimgru", "train", "--config", "c.json", "--hidden", "8", "--out", "m.json"
        ])
        .is_err());
    }
}
