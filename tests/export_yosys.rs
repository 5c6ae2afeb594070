//! Smoke test: yosys synthesises the exported Verilog of a small
//! configuration for ECP5 (`synth_ecp5 -top top`). Needs yosys
//! (`bash scripts/setup.sh`); fails, never skips, without it.

mod export_common;

use flimgru::data::GateGrid;
use flimgru::export;
use flimgru::rtl::testbench;
use flimgru::rtl::EngineConfig;

#[test]
fn yosys_synthesises_a_small_engine_for_ecp5() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 7);
    let config = EngineConfig {
        bits: 8,
        lanes: 1,
        macs: 6,
    };
    let v = export::verilog(&model, &grid, config, "random").unwrap();
    let t0 = std::time::Instant::now();
    let stats = export::yosys_synth(&v, &export_common::build_dir("yosys-ecp5"), "ecp5").unwrap();
    eprintln!("synth_ecp5: {:.1} s\n{stats}", t0.elapsed().as_secs_f64());
    assert!(stats.contains("MULT18X18D"), "no DSP multipliers: {stats}");
    assert!(stats.contains("TRELLIS_FF"), "no flip-flops: {stats}");
}
