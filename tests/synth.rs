//! The open FPGA flow end to end (`flimgru synth`, src/synth.rs) on a tiny
//! random model, for each board: yosys completes, nextpnr-ecp5 places and
//! routes the ULX3S top with the board's own constraint file, and the report holds what the docs table needs. The
//! full-size numbers in docs/hardware.md come from the same code on the
//! shipped student (the commands are in the table). Needs the YoWASP tools
//! (`bash scripts/setup.sh`); fails, never skips, without them.

use flimgru::boards::{Board, BoardConfig};
use flimgru::data::GateGrid;
use flimgru::rtl::{testbench, EngineConfig};
use flimgru::synth::{self, SynthJob, SynthReport};
use std::path::Path;

fn run(board: Board, config: EngineConfig, place: bool) -> SynthReport {
    let grid = GateGrid::new(11, 12.5 / 11.0).unwrap();
    let model = testbench::random_model(config.bits, 2, 7);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("synth")
        .join(board.to_string());
    std::fs::remove_dir_all(&out_dir).ok();
    let job = SynthJob {
        board,
        model: &model,
        model_name: "random",
        grid: &grid,
        engine: config,
        board_config: BoardConfig::default_for(board),
        seed: 1,
        place,
        router2: false,
        density: None,
        out_dir: out_dir.clone(),
        command: "tests/synth.rs".into(),
    };
    let report = synth::run(&job).unwrap_or_else(|e| panic!("{board}: {e:#}"));
    for f in ["top.v", "synth.json", "report.json", "report.md"] {
        assert!(out_dir.join(f).is_file(), "{board}: {f} missing");
    }
    let back: SynthReport =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(back, report);
    report
}

fn used(r: &SynthReport, k: &str) -> u64 {
    r.resources
        .get(k)
        .unwrap_or_else(|| panic!("{}: no {k}", r.board))
        .used
}

#[test]
fn ulx3s_places_and_routes() {
    let config = EngineConfig {
        bits: 8,
        lanes: 2,
        macs: 2,
    };
    let r = run(Board::Ulx3s, config, true);
    let fmax = r.fmax_mhz.expect("ECP5 has an open place-and-route");
    assert!(fmax > 1.0 && fmax < 1000.0, "Fmax {fmax}");
    assert!(used(&r, "LUT") > 0 && used(&r, "FF") > 0);
    // Every MAC unit of every lane is a multiplier (plus the fixed ones).
    assert!(used(&r, "MULT") >= (config.lanes * config.macs) as u64);
    assert_eq!(r.resources["MULT"].available, Some(156), "LFE5U-85F");
    let rate = r.pixels_per_second.unwrap();
    assert!((rate - fmax * 1e6 / r.cycles_per_pixel).abs() < 1e-6 * rate);
    assert_eq!(r.frames.len(), 3);
    assert!((r.frames[2].seconds - 250_000.0 / rate).abs() < 1e-9 * r.frames[2].seconds);
    let md = std::fs::read_to_string(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("synth/ulx3s/report.md"),
    )
    .unwrap();
    assert!(md.contains(&synth::table_row(&r)));
}

/// yosys only: even this H = 2 engine fills 98 % of the UP5K's logic
/// cells (the extraction's dividers and threshold search are a fixed
/// cost), where nextpnr-ice40's placer takes many minutes (docs/hardware.md).
#[test]
fn icebreaker_synthesises() {
    let r = run(
        Board::IceBreaker,
        EngineConfig {
            bits: 8,
            lanes: 1,
            macs: 1,
        },
        false,
    );
    assert_eq!(r.fmax_mhz, None);
    assert!(used(&r, "LUT") > 1000);
    assert!(used(&r, "MULT") >= 1, "SB_MAC16 for the MAC");
}

#[test]
fn arty_synthesises() {
    let r = run(
        Board::ArtyA7,
        EngineConfig {
            bits: 8,
            lanes: 1,
            macs: 3,
        },
        true,
    );
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
