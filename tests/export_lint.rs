//! The exported Verilog passes `verilator --lint-only -Wall` with no
//! warning: small configurations across (W, P, M) and the default ones
//! (the shipped 32-unit student, W8A12, P = 1 and 4, M = 96). Needs
//! Verilator (`bash scripts/setup.sh`); fails, never skips, without it.

mod export_common;

use flimgru::data::GateGrid;
use flimgru::export;
use flimgru::rtl::testbench;

fn assert_clean(v: &str, name: &str) {
    let issues = export::lint(v, &export_common::build_dir(&format!("lint-{name}"))).unwrap();
    assert!(
        issues.is_empty(),
        "{name}: {} lint warnings, first: {:#?}",
        issues.len(),
        &issues[..issues.len().min(10)]
    );
}

#[test]
fn small_configurations_are_lint_clean() {
    for (bits, h, g, lanes, macs) in [
        (6u32, 2usize, 11usize, 1usize, 1usize),
        (8, 3, 11, 2, 3),
        (16, 3, 11, 1, 9),
        (4, 2, 12, 3, 6),
        (12, 5, 16, 2, 5),
        (8, 4, 11, 1, 12),
    ] {
        let grid = GateGrid::new(g, 12.5 / g as f64).unwrap();
        let model = testbench::random_model(bits, h, bits as u64 + h as u64);
        let spec = testbench::spec(&model, &grid, lanes, macs).unwrap();
        let v = export::verilog(&spec, "random").unwrap();
        assert_clean(&v, &format!("w{bits}-h{h}-g{g}-p{lanes}-m{macs}"));
    }
}

#[test]
fn default_configurations_are_lint_clean() {
    let (model, grid, name) = export_common::student();
    for lanes in [1, 4] {
        let spec = testbench::spec(&model, &grid, lanes, 96).unwrap();
        let v = export::verilog(&spec, &name).unwrap();
        assert_clean(&v, &format!("student-p{lanes}"));
    }
}
