//! Co-simulation of the *exported Verilog* (after the exporter's loop
//! fix and lint post-pass) against the golden model, bit for bit, with
//! the stimulus protocol of the rust-hdl co-sim tests (corner histograms,
//! padded last group, random valid gaps and ready back-pressure): small
//! random models across (Ww, Wa, P, M) in Icarus Verilog and Verilator, and the
//! shipped 32-unit W8A12 student on 100 realistic pixels in Verilator.
//! Needs verilator and iverilog (`bash scripts/setup.sh`); fails, never
//! skips, without them.

mod export_common;

use flimgru::data::simulate::{simulate, SimSpec};
use flimgru::data::GateGrid;
use flimgru::export::cosim::{self, Simulator};
use flimgru::export::{self as ex};
use flimgru::fixed::{Format, Golden, QuantModel};
use flimgru::rtl::testbench::{self, Policy};
use flimgru::rtl::{CircuitSpec, Dsp};
use ndarray::Array2;
use std::time::Instant;

fn check(
    spec: &CircuitSpec,
    counts: &Array2<u32>,
    policies: &[Policy],
    sim: Simulator,
    name: &str,
) {
    let t0 = Instant::now();
    let mut v = ex::verilog(spec, name).unwrap();
    if spec.dsp() == Dsp::Ecp5 {
        v += flimgru::boards::pll::lint_stubs();
    }
    let dir = export_common::build_dir(name);
    let build = cosim::build(&v, spec, &dir, sim).unwrap();
    let want = Golden::new(spec.model(), spec.grid())
        .unwrap()
        .run(counts.view())
        .unwrap();
    for (i, policy) in policies.iter().enumerate() {
        let run = build
            .run(counts.view(), policy, &format!("run{i}"))
            .unwrap();
        if let Some(why) = cosim::compare(&run, &want) {
            panic!(
                "{name} {:?} {policy:?}: {why} (files under {})",
                spec.layout(),
                dir.display()
            );
        }
        eprintln!(
            "{name}: {} pixels, {} cycles, run {:.2} s",
            counts.nrows(),
            run.cycles,
            run.seconds
        );
    }
    eprintln!(
        "{name}: build {:.1} s, total {:.1} s",
        build.seconds,
        t0.elapsed().as_secs_f64()
    );
}

/// (Ww, Wa) in {W6, W8, W16, W8A12, W8A16} x P in {1, 2} x M in {1, H,
/// 3H}, H = 3, G = 11, corner histograms plus a random decay, eager or
/// random stream policy (Icarus Verilog: builds in a fraction of a second).
#[test]
fn small_random_models_match_the_golden_model_in_icarus() {
    let h = 3;
    let grid = GateGrid::new(11, 0.2).unwrap();
    let cases: Vec<(Format, usize, usize)> = [(6u32, 6u32), (8, 8), (16, 16), (8, 12), (8, 16)]
        .into_iter()
        .map(|(ww, wa)| Format::mixed(ww, wa).unwrap())
        .flat_map(|f| {
            [1usize, 2]
                .into_iter()
                .flat_map(move |p| [1, h, 3 * h].map(|m| (f, p, m)))
        })
        .collect();
    // Two threads: the machine has two cores.
    std::thread::scope(|s| {
        for half in cases.chunks(cases.len().div_ceil(2)) {
            let grid = &grid;
            s.spawn(move || {
                for &(fmt, lanes, macs) in half {
                    let seed = (fmt.bits + 3 * fmt.act_bits) as u64;
                    let model = testbench::random_model_in(fmt, h, 200 + seed);
                    let counts = testbench::corner_histograms(11, 1, seed * 7 + lanes as u64);
                    let spec = testbench::spec(&model, grid, lanes, macs).unwrap();
                    check(
                        &spec,
                        &counts,
                        &[if (lanes + macs) % 2 == 0 {
                            Policy::eager()
                        } else {
                            Policy::random(macs as u64 + 1)
                        }],
                        Simulator::Icarus,
                        &format!("icarus-{}-p{lanes}-m{macs}", fmt.name().to_lowercase()),
                    );
                }
            });
        }
    });
}

/// The same protocol in Verilator on small wide configurations, uniform
/// W16 and mixed W8A16 (the student test below covers W = 8 and P = 1, 4
/// in Verilator).
#[test]
fn small_random_models_match_the_golden_model_in_verilator() {
    let cases = [
        ((16u32, 16u32), 4usize, 13usize, 2usize, 4usize),
        ((8, 16), 4, 13, 2, 6),
    ];
    std::thread::scope(|s| {
        for ((ww, wa), h, g, lanes, macs) in cases {
            s.spawn(move || {
                let grid = GateGrid::new(g, 12.5 / g as f64).unwrap();
                let fmt = Format::mixed(ww, wa).unwrap();
                let model = testbench::random_model_in(fmt, h, 300 + (ww + wa) as u64);
                let counts = testbench::corner_histograms(g, 3, 5);
                check(
                    &testbench::spec(&model, &grid, lanes, macs).unwrap(),
                    &counts,
                    &[Policy::eager(), Policy::random(9)],
                    Simulator::Verilator,
                    &format!(
                        "verilator-{}-h{h}-p{lanes}-m{macs}",
                        fmt.name().to_lowercase()
                    ),
                );
            });
        }
    });
}

/// The harness can fail: Verilog built from a model with one different
/// head bias is caught.
#[test]
fn a_wrong_export_is_caught() {
    let grid = GateGrid::new(12, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 5);
    let mut wrong = model.clone();
    wrong.head_bias.codes[1] = if wrong.head_bias.codes[1] > 0 {
        -40
    } else {
        40
    };
    let spec = testbench::spec(&wrong, &grid, 1, 6).unwrap();
    let counts = testbench::corner_histograms(12, 6, 1);
    let v = ex::verilog(&spec, "wrong").unwrap();
    let dir = export_common::build_dir("icarus-wrong");
    let build = cosim::build(&v, &spec, &dir, Simulator::Icarus).unwrap();
    let run = build.run(counts.view(), &Policy::eager(), "run").unwrap();
    let want = Golden::new(&model, &grid)
        .unwrap()
        .run(counts.view())
        .unwrap();
    let why = cosim::compare(&run, &want).expect("a different head bias must show");
    assert!(why.contains("pixel"), "{why}");
}

/// The shipped student, its grid and name, and `n` simulated pixels.
fn student_pixels(n: usize, seed: u64) -> (QuantModel, GateGrid, String, Array2<u32>) {
    let (model, grid, name) = export_common::student();
    let spec = SimSpec {
        grid,
        ..SimSpec::default()
    };
    let counts = simulate(&spec, n, seed).unwrap().counts;
    (model, grid, name, counts)
}

/// The shipped student (W8A12, M = 96) on 100 realistic pixels, P = 1
/// and P = 4 (the committed default configurations), in Verilator.
#[test]
fn the_student_matches_the_golden_model_on_realistic_pixels() {
    let (model, grid, name, counts) = student_pixels(100, 2026);
    std::thread::scope(|s| {
        for lanes in [1, 4] {
            let (model, counts, name) = (&model, &counts, &name);
            s.spawn(move || {
                let spec = testbench::spec(model, &grid, lanes, 96).unwrap();
                let policies = if lanes == 1 {
                    vec![Policy::eager()]
                } else {
                    vec![Policy::random(4)]
                };
                check(
                    &spec,
                    counts,
                    &policies,
                    Simulator::Verilator,
                    &format!("verilator-{name}-p{lanes}"),
                );
            });
        }
    });
}

/// `MULT18X18D #(` instances in `v`.
fn mult18x18d(v: &str) -> usize {
    v.matches("MULT18X18D #(").count()
}

/// The ECP5 multipliers (`Dsp::Ecp5`: MULT18X18D with its own operand
/// and product registers, simulated by the behavioural model of
/// `boards::pll::lint_stubs`) give the golden model's results: W = 8,
/// W = 16 and W8A16 (11-bit weights times 17-bit codes) with every
/// multiplier in a MULT18X18D, and W = 16 with a weight exponent of 3
/// (19-bit weights), where the MACs keep the inferred form and only the
/// lane's two products (17-bit codes) are MULT18X18Ds.
#[test]
fn ecp5_multipliers_match_the_golden_model_in_icarus() {
    let (h, g) = (3, 11);
    let grid = GateGrid::new(g, 0.2).unwrap();
    for ((ww, wa), lanes, macs, exponent) in [
        ((8u32, 8u32), 2usize, 3usize, None),
        ((16, 16), 1, 9, Some(0)),
        ((16, 16), 1, 9, Some(3)),
        ((8, 16), 2, 3, None),
    ] {
        let fmt = Format::mixed(ww, wa).unwrap();
        // The uniform cases keep the seeds of W alone.
        let bits = if ww == wa { ww } else { ww + wa };
        let mut model = testbench::random_model_in(fmt, h, 400 + bits as u64);
        if let Some(e) = exponent {
            for t in [
                &mut model.encoder_recurrent,
                &mut model.decoder_recurrent,
                &mut model.encoder_kernel,
                &mut model.encoder_bias,
                &mut model.decoder_bias,
                &mut model.head_kernel,
            ] {
                t.exponent = 0;
            }
            model.encoder_recurrent.exponent = e;
        }
        let spec = testbench::spec(&model, &grid, lanes, macs).unwrap();
        let ecp5 = spec.with_dsp(Dsp::Ecp5);
        let v = ex::verilog(&ecp5, "ecp5").unwrap();
        // Per lane: M MAC units, 3 head MACs, the reset and update
        // products (17-bit codes, in a MULT18X18D at any exponent).
        let want = if exponent == Some(3) {
            lanes * 2
        } else {
            lanes * (macs + 3 + 2)
        };
        assert_eq!(
            mult18x18d(&v),
            want,
            "{}, P = {lanes}, M = {macs}, e = {exponent:?}",
            fmt.name()
        );
        assert_eq!(mult18x18d(&ex::verilog(&spec, "inferred").unwrap()), 0);
        let counts = testbench::corner_histograms(g, 2, 17 + bits as u64);
        check(
            &ecp5,
            &counts,
            &[Policy::random(3)],
            Simulator::Icarus,
            &format!(
                "icarus-ecp5-{}-p{lanes}-m{macs}-e{}",
                fmt.name().to_lowercase(),
                exponent.unwrap_or(9)
            ),
        );
    }
}

/// The shipped student at the ULX3S synthesis point (P = 2, M = 48) with
/// the ECP5 multipliers, 24 realistic pixels in Verilator.
#[test]
fn the_student_with_ecp5_multipliers_matches_the_golden_model() {
    let (model, grid, name, counts) = student_pixels(24, 2027);
    let layout = flimgru::rtl::Layout { lanes: 2, macs: 48 };
    let spec = CircuitSpec::new(model, grid, layout, Dsp::Ecp5).unwrap();
    check(
        &spec,
        &counts,
        &[Policy::random(5)],
        Simulator::Verilator,
        &format!("verilator-ecp5-{name}-p2-m48"),
    );
}
