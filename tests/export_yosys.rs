//! Smoke test: yosys synthesises the exported Verilog of a small
//! configuration for ECP5 (`synth_ecp5 -top top`). Needs yosys
//! (`bash scripts/setup.sh`); fails, never skips, without it.

mod export_common;

use flimgru::boards::Family;
use flimgru::data::GateGrid;
use flimgru::export;
use flimgru::rtl::prim::Kept;
use flimgru::rtl::testbench;
use flimgru::synth::yosys;
use rust_hdl::prelude::*;
use std::path::Path;

/// `synth_ecp5 -top top` of `verilog` in `dir`: the log's statistics.
fn synth_ecp5(verilog: &str, dir: &Path) -> String {
    yosys::run(
        yosys::SYSTEM,
        Family::Ecp5,
        verilog,
        dir,
        yosys::Outputs::Log,
    )
    .unwrap()
    .statistics()
    .to_string()
}

#[test]
fn yosys_synthesises_a_small_engine_for_ecp5() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 7);
    let spec = testbench::spec(&model, &grid, 1, 6).unwrap();
    let v = export::verilog(&spec, "random").unwrap();
    let t0 = std::time::Instant::now();
    let stats = synth_ecp5(&v, &export_common::build_dir("yosys-ecp5"));
    eprintln!("synth_ecp5: {:.1} s\n{stats}", t0.elapsed().as_secs_f64());
    assert!(stats.contains("MULT18X18D"), "no DSP multipliers: {stats}");
    assert!(stats.contains("TRELLIS_FF"), "no flip-flops: {stats}");
}

/// Two lanes' copies of one broadcast signal (`Kept`), folded by a value
/// that is zero when they are one register.
#[derive(LogicBlock)]
struct TwoCopies {
    clock: Signal<In, Clock>,
    d: Signal<In, Bits<4>>,
    y: Signal<Out, Bits<4>>,
    a: Kept<Bits<4>>,
    b: Kept<Bits<4>>,
}

impl Logic for TwoCopies {
    #[hdl_gen]
    fn update(&mut self) {
        self.a.clock.next = self.clock.val();
        self.b.clock.next = self.clock.val();
        self.a.d.next = self.d.val();
        self.b.d.next = self.d.val();
        self.y.next = self.a.q.val() ^ self.b.q.val();
    }
}

/// yosys's opt_merge would fold registers with identical inputs into one
/// (here: y = 0, no flip-flop left); the lanes' `Kept` copies must stay
/// apart, so both 4-bit registers survive synth_ecp5.
#[test]
fn yosys_keeps_the_lanes_copies_apart() {
    let mut top = TwoCopies {
        clock: Default::default(),
        d: Default::default(),
        y: Default::default(),
        a: Default::default(),
        b: Default::default(),
    };
    top.connect_all();
    let v = generate_verilog(&top);
    let stats = synth_ecp5(&v, &export_common::build_dir("yosys-kept"));
    let ffs = stats
        .lines()
        .find(|l| l.contains("TRELLIS_FF"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u32>().ok());
    assert_eq!(ffs, Some(8), "{stats}");
}
