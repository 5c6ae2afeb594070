//! The engine's valid/ready streams under random input gaps and random
//! output back-pressure: every pixel comes out exactly once, in input
//! order, with the golden model's codes; and a stalled output stalls the
//! engine instead of dropping results.

use flimgru::data::GateGrid;
use flimgru::rtl::testbench::{self, Policy};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn gaps_and_back_pressure_lose_nothing(
        valid in 0.05f64..1.0,
        ready in 0.02f64..1.0,
        lanes in prop::sample::select(vec![1usize, 2, 4]),
        seed in any::<u64>(),
    ) {
        let grid = GateGrid::new(11, 0.2).unwrap();
        let model = testbench::random_model(8, 2, seed);
        // 2.5 groups of pixels: the padded tail must not leak out as pixels.
        let n = lanes * 5 / 2 + 1;
        let counts = testbench::corner_histograms(11, n.saturating_sub(7), seed);
        let spec = testbench::spec(&model, &grid, lanes, 6).unwrap();
        let out = testbench::check(&spec, counts.view(), &Policy { valid, ready, seed });
        prop_assert!(out.is_ok(), "{}", out.unwrap_err());
        let out = out.unwrap();
        let total = counts.nrows().div_ceil(lanes) * lanes;
        prop_assert_eq!(out.order, (0..total as u64).collect::<Vec<_>>());
    }
}

/// With the result stream held not-ready the engine stops accepting input
/// (nothing is dropped), and releasing it delivers every pixel once.
#[test]
fn a_blocked_output_stalls_the_input() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 3);
    let mut engine = testbench::spec(&model, &grid, 1, 6)
        .unwrap()
        .engine()
        .unwrap();
    use rust_hdl::prelude::*;
    let mut accepted = 0;
    for _ in 0..20_000 {
        engine.in_valid.next = true;
        engine.in_count[0].next = 5.into();
        engine.out_ready.next = false;
        engine.clock.next = Clock { clk: false };
        assert!(simulate(&mut engine, 1000));
        if engine.in_ready.val() {
            accepted += 1;
        }
        engine.clock.next = Clock { clk: true };
        assert!(simulate(&mut engine, 1000));
    }
    // Held back: at most the pixels in flight (two sets, one in extraction,
    // one in the result register, the input buffer) were accepted.
    assert!(
        accepted <= 11 * 8,
        "{accepted} beats accepted with the output blocked"
    );
    assert!(accepted >= 11 * 3, "only {accepted} beats accepted");
    assert!(engine.out_valid.val());
}
