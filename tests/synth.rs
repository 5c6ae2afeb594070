//! The open FPGA flow end to end (`flimgru synth`, src/synth/) on a tiny
//! random model, for each board: yosys completes, nextpnr-ecp5 places and
//! routes the ULX3S top with the board's own constraint file, and the report holds what the docs table needs. The
//! full-size numbers in docs/hardware.md come from the same code on the
//! shipped student (the commands are in the table). Needs the YoWASP tools
//! (`bash scripts/setup.sh`); fails, never skips, without them.

use flimgru::boards::{Board, BoardConfig};
use flimgru::data::GateGrid;
use flimgru::rtl::{testbench, CircuitSpec, Layout};
use flimgru::synth::{self, SynthJob, SynthReport};
use std::path::Path;

fn job<'a>(board: Board, spec: &'a CircuitSpec, name: &str) -> SynthJob<'a> {
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("synth")
        .join(name);
    std::fs::remove_dir_all(&out_dir).ok();
    SynthJob {
        board,
        spec,
        model_name: "random",
        board_config: BoardConfig::default_for(board),
        seeds: vec![1],
        jobs: 1,
        pnr_limit: None,
        place: true,
        router2: false,
        density: None,
        floorplan: false,
        out_dir,
        command: "tests/synth.rs".into(),
    }
}

/// The tiny random model (H = 2, W = 8, 11 gates) on `board` with P =
/// `lanes`, M = `macs` and the board's multipliers.
fn tiny_spec(board: Board, lanes: usize, macs: usize) -> CircuitSpec {
    let grid = GateGrid::new(11, 12.5 / 11.0).unwrap();
    let model = testbench::random_model(8, 2, 7);
    board.spec(model, grid, Layout { lanes, macs }).unwrap()
}

/// Runs the job and checks the files every run writes (in `dir`).
fn run_job(job: &SynthJob, dir: &Path) -> SynthReport {
    let board = job.board;
    let report = synth::run(job).unwrap_or_else(|e| panic!("{board}: {e:#}"));
    for f in ["top.v", "synth.json", "report.json", "report.md"] {
        assert!(job.out_dir.join(f).is_file(), "{board}: {f} missing");
    }
    let back: SynthReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(back, report);
    report
}

fn run(board: Board, lanes: usize, macs: usize, place: bool) -> SynthReport {
    let spec = tiny_spec(board, lanes, macs);
    let mut job = job(board, &spec, &board.to_string());
    job.place = place;
    let dir = job.out_dir.clone();
    run_job(&job, &dir)
}

fn used(r: &SynthReport, k: &str) -> u64 {
    r.resources
        .get(k)
        .unwrap_or_else(|| panic!("{}: no {k}", r.board))
        .used
}

/// Two placement seeds at once on one netlist, with the lanes'
/// multipliers pinned by the DSP floorplan: each seed's own report, and
/// the top report is the faster seed's with both listed.
#[test]
fn ulx3s_places_and_routes_a_floorplanned_seed_sweep() {
    let spec = tiny_spec(Board::Ulx3s, 2, 2);
    let mut job = job(Board::Ulx3s, &spec, "ulx3s-sweep");
    job.seeds = vec![3, 1];
    job.jobs = 2;
    job.floorplan = true;
    let dir = job.out_dir.clone();
    let r = run_job(&job, &dir);
    // Each lane's two MACs and its reset and update products; nextpnr
    // placed them (an unknown BEL name would have failed the run).
    assert_eq!(r.pinned_multipliers, 2 * (2 + 2));
    let top = std::fs::read_to_string(dir.join("top.v")).unwrap();
    assert_eq!(top.matches("(* BEL = \"X").count(), 8);
    let log = std::fs::read_to_string(dir.join("seed-1/nextpnr.log")).unwrap();
    assert!(
        log.contains("cells based on constraints"),
        "nextpnr read no BEL"
    );
    let fmax = r.fmax_mhz.expect("ECP5 has an open place-and-route");
    assert!(fmax > 1.0 && fmax < 1000.0, "Fmax {fmax}");
    assert!(used(&r, "LUT") > 0 && used(&r, "FF") > 0);
    // Every MAC unit of every lane is a multiplier (plus the fixed ones).
    assert!(used(&r, "MULT") >= (spec.lanes() * spec.macs()) as u64);
    assert_eq!(r.resources["MULT"].available, Some(156), "LFE5U-85F");
    let rate = r.pixels_per_second.unwrap();
    assert!((rate - fmax * 1e6 / r.cycles_per_pixel).abs() < 1e-6 * rate);
    assert_eq!(r.frames.len(), 3);
    assert!((r.frames[2].seconds - 250_000.0 / rate).abs() < 1e-9 * r.frames[2].seconds);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains(&synth::table_row(&r)));
    assert!(md.contains(&synth::seed_table(&r.seeds, r.clock_mhz)));
    // A mixed-precision build's row names both widths.
    let mut mixed = r.clone();
    mixed.act_bits = Some(r.bits + 4);
    let want = format!("| ulx3s | W{}A{} | 2 |", r.bits, r.bits + 4);
    assert!(synth::table_row(&mixed).contains(&want), "{want}");

    // The seeds in the order given, each with its own report.
    let seeds: Vec<u64> = r.seeds.iter().map(|s| s.seed).collect();
    assert_eq!(seeds, [3, 1]);
    let mut per_seed = Vec::new();
    for s in &r.seeds {
        assert_eq!(s.dir, format!("seed-{}", s.seed));
        let sub: SynthReport = serde_json::from_str(
            &std::fs::read_to_string(dir.join(&s.dir).join("report.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(sub.seed, Some(s.seed));
        assert_eq!(sub.fmax_mhz, s.fmax_mhz);
        assert_eq!(sub.seeds, std::slice::from_ref(s));
        assert!(dir.join(&s.dir).join("nextpnr.log").is_file());
        per_seed.push(s.fmax_mhz.expect("both seeds route this small engine"));
    }
    let best = per_seed.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(Some(best), r.fmax_mhz);
    assert_eq!(r.seed, Some(seeds[synth::best_seed(&r.seeds)]));

    // A single-seed rerun into the same directory leaves no stale seeds.
    job.seeds = vec![2];
    job.floorplan = false;
    let single = run_job(&job, &dir);
    assert_eq!(single.seed, Some(2));
    assert_eq!(single.seeds.len(), 1);
    assert_eq!(single.seeds[0].dir, ".");
    assert!(!dir.join("seed-1").exists() && !dir.join("seed-3").exists());
    assert_eq!(single.pinned_multipliers, 0);

    // The floorplan is the ECP5's: another family is refused up front.
    let arty_spec = tiny_spec(Board::ArtyA7, 2, 2);
    let mut arty = self::job(Board::ArtyA7, &arty_spec, "arty-floorplan");
    arty.floorplan = true;
    let e = format!("{:#}", synth::run(&arty).unwrap_err());
    assert!(e.contains("--floorplan") && e.contains("ECP5"), "{e}");
    assert!(!arty.out_dir.exists(), "nothing written for a refused job");
    // So are multipliers of another family (the ULX3S's ECP5 cells).
    let mut wrong = self::job(Board::ArtyA7, &spec, "arty-ecp5");
    wrong.place = false;
    let e = format!("{:#}", synth::run(&wrong).unwrap_err());
    assert!(e.contains("ecp5"), "{e}");
    assert!(!wrong.out_dir.exists(), "nothing written for a refused job");
}

/// A seed that is still placing at the time limit is stopped and reported
/// as not routed, with no Fmax and no frame times.
#[test]
fn a_seed_past_the_time_limit_is_stopped_and_reported() {
    let spec = tiny_spec(Board::Ulx3s, 1, 1);
    let mut job = job(Board::Ulx3s, &spec, "ulx3s-limit");
    job.pnr_limit = Some(std::time::Duration::from_millis(200));
    let dir = job.out_dir.clone();
    let r = run_job(&job, &dir);
    assert_eq!(r.fmax_mhz, None);
    assert_eq!(r.timing_met, None);
    assert!(r.frames.is_empty() && r.pixels_per_second.is_none());
    let why = r.pnr_error.clone().expect("the limit is the reason");
    assert!(why.contains("not routed") && why.contains("0.2 s"), "{why}");
    assert_eq!(r.seeds.len(), 1);
    assert_eq!(r.seeds[0].failure.as_deref(), Some(why.as_str()));
    assert!(synth::table_row(&r).contains("not routed"));
    assert!(used(&r, "MULT") >= 1, "yosys's counts stay");
}

/// Seed lists that cannot be run are refused before any tool starts.
#[test]
fn bad_seed_lists_are_refused() {
    let spec = tiny_spec(Board::Ulx3s, 1, 1);
    let mut j = job(Board::Ulx3s, &spec, "ulx3s-bad-seeds");
    for (seeds, jobs, expect) in [
        (vec![], 1, "no placement seed"),
        (vec![1, 2, 1], 1, "seed 1 is given twice"),
        (vec![1], 0, "jobs = 0"),
    ] {
        j.seeds = seeds;
        j.jobs = jobs;
        let e = format!("{:#}", synth::run(&j).unwrap_err());
        assert!(e.contains(expect), "{e}");
        assert!(!j.out_dir.exists(), "nothing written for a refused job");
    }
}

/// yosys only: even this H = 2 engine fills 98 % of the UP5K's logic
/// cells (the extraction's dividers and threshold search are a fixed
/// cost), where nextpnr-ice40's placer takes many minutes (docs/hardware.md).
#[test]
fn icebreaker_synthesises() {
    let r = run(Board::IceBreaker, 1, 1, false);
    assert_eq!(r.fmax_mhz, None);
    assert!(used(&r, "LUT") > 1000);
    assert!(used(&r, "MULT") >= 1, "SB_MAC16 for the MAC");
}

#[test]
fn arty_synthesises() {
    let r = run(Board::ArtyA7, 1, 3, true);
    assert_eq!(r.fmax_mhz, None, "no open place-and-route for 7-series");
    assert!(used(&r, "LUT") > 0 && used(&r, "FF") > 0);
    assert!(used(&r, "MULT") >= 3, "DSP48E1 for the MACs");
    assert!(r.frames.is_empty());
}

#[test]
fn a_report_that_is_not_one_is_refused() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth-bad");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("report.json");
    std::fs::write(&bad, "{\"board\": 3}").unwrap();
    let e = synth::table(&[bad]).unwrap_err();
    assert!(
        format!("{e:#}").contains("not a flimgru synth report"),
        "{e:#}"
    );
}
