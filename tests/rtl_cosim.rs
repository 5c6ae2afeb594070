//! Co-simulation of the engine against the golden model, bit for bit
//! (result codes, delivery order and every decoder step's head channels):
//! every (W, P, M) of the matrix on a small model, uniform (Ww =
//! Wa) and mixed precision (Ww < Wa), and a proptest over random small
//! models, formats, grids, configurations and raw histograms.
//! A failing case leaves a VCD (path in the panic message).

use flimgru::data::GateGrid;
use flimgru::fixed::Format;
use flimgru::rtl::testbench::{self, Policy};
use ndarray::{concatenate, Array2, Axis};
use proptest::prelude::*;

/// (Ww, Wa) in {W6, W8, W12, W16, W8A12, W8A16, W4A16} x P in {1, 2, 4}
/// x M in {1, H, 3H}, corner histograms.
#[test]
fn every_width_lane_and_fold_is_bit_exact() {
    let h = 3;
    let grid = GateGrid::new(11, 0.2).unwrap();
    let formats = [
        (6u32, 6u32),
        (8, 8),
        (12, 12),
        (16, 16),
        (8, 12),
        (8, 16),
        (4, 16),
    ];
    for (i, (ww, wa)) in formats.into_iter().enumerate() {
        let fmt = Format::mixed(ww, wa).unwrap();
        let model = testbench::random_model_in(fmt, h, 100 + i as u64);
        for lanes in [1, 2, 4] {
            for macs in [1, h, 3 * h] {
                let seed = (ww * 7 + wa * 131) as u64 + lanes as u64;
                let counts = testbench::corner_histograms(11, 1, seed);
                let spec = testbench::spec(&model, &grid, lanes, macs).unwrap();
                let policy = Policy {
                    valid: 0.8,
                    ready: 0.7,
                    seed: macs as u64,
                };
                let out = testbench::check(&spec, counts.view(), &policy).unwrap();
                assert_eq!(out.codes.len(), counts.nrows());
            }
        }
    }
}

/// The grid's baseline window reaches the circuits: none, 2 and 5 gates
/// (the ingest's sum and the preprocessor's shift-add scale), bit exact.
#[test]
fn every_baseline_window_is_bit_exact() {
    let h = 3;
    for (ww, wa) in [(8u32, 8u32), (8, 16)] {
        let model = testbench::random_model_in(Format::mixed(ww, wa).unwrap(), h, 7);
        for base in [0, 2, 5] {
            let grid = GateGrid::new(11, 0.2)
                .unwrap()
                .with_baseline_gates(base)
                .unwrap();
            for lanes in [1, 2] {
                let counts = testbench::corner_histograms(11, 1, base as u64 + 3);
                let spec = testbench::spec(&model, &grid, lanes, h).unwrap();
                let out = testbench::check(&spec, counts.view(), &Policy::random(9)).unwrap();
                assert_eq!(out.codes.len(), counts.nrows());
            }
        }
    }
}

/// The harness can fail: a circuit built from a model that differs from
/// the golden model's in one weight is caught (and leaves a VCD).
#[test]
fn a_wrong_circuit_is_caught() {
    let grid = GateGrid::new(12, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 5);
    let counts = testbench::corner_histograms(12, 2, 1);
    let golden = flimgru::fixed::Golden::new(&model, &grid).unwrap();
    let (want, want_ch) = golden.run_with_channels(counts.view()).unwrap();
    let mut wrong = model.clone();
    wrong.head_bias.codes[1] = if wrong.head_bias.codes[1] > 0 { -3 } else { 3 };
    let mut engine = testbench::spec(&wrong, &grid, 1, 6)
        .unwrap()
        .engine()
        .unwrap();
    let out = testbench::run(&mut engine, counts.view(), &Policy::eager(), None).unwrap();
    let why = testbench::compare(&out, &want, &want_ch).expect("a different head bias must show");
    assert!(why.contains("head channel 1"), "{why}");
}

/// (H, G, (Ww, Wa), P, fold, seed): Wa = Ww half the time, else wider.
fn config_strategy() -> impl Strategy<Value = (usize, usize, (u32, u32), usize, usize, u64)> {
    (
        2usize..=8,
        11usize..=32,
        prop::sample::select(vec![4u32, 6, 8, 12, 16]).prop_flat_map(|ww| {
            prop_oneof![Just((ww, ww)), (ww..=16).prop_map(move |wa| (ww, wa))]
        }),
        prop::sample::select(vec![1usize, 2, 4]),
        0usize..3,
        any::<u64>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Random small models (H 2..=8, G 11..=32, Ww <= Wa, P, M = 1 | H |
    /// 3H, random codes and exponents) on corner histograms plus random raw
    /// counts, with random stream gaps and back-pressure.
    #[test]
    fn random_models_are_bit_exact(
        (h, g, (ww, wa), lanes, fold, seed) in config_strategy(),
        raw in prop::collection::vec(prop::collection::vec(
            prop_oneof![Just(0u32), 0u32..40, 0u32..70_000], 32), 1..3),
    ) {
        let macs = [1, h, 3 * h][fold];
        let base = [10, 0, 1, 2][seed as usize % 4];
        let grid = GateGrid::new(g, 12.5 / g as f64).unwrap().with_baseline_gates(base).unwrap();
        let model = testbench::random_model_in(Format::mixed(ww, wa).unwrap(), h, seed);
        let corners = testbench::corner_histograms(g, 0, seed);
        let rows: Vec<u32> = raw.iter().flat_map(|r| r[..g].iter().copied()).collect();
        let raw = Array2::from_shape_vec((raw.len(), g), rows).unwrap();
        let counts = concatenate(Axis(0), &[corners.view(), raw.view()]).unwrap();
        let spec = testbench::spec(&model, &grid, lanes, macs).unwrap();
        let policy = if seed % 2 == 0 { Policy::eager() } else { Policy::random(seed) };
        let out = testbench::check(&spec, counts.view(), &policy);
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
    }
}
