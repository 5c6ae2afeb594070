//! The cycle model (flimgru::rtl::cycles) against simulation, and the
//! docs/hardware.md table it produces.
//!
//! Regenerate the table: `cargo test --test rtl_cycles hardware_table -- --nocapture`.

use flimgru::data::GateGrid;
use flimgru::rtl::cycles::{cycles_per_pixel, hardware_table, CycleModel};
use flimgru::rtl::testbench::{self, Policy};

/// Steady state with back-to-back pixels: the two pixel sets finish a
/// group each per 4 G slots, so results of group g + 2 leave exactly
/// 2 x cycles_per_group after those of group g.
fn measured_period(
    h: usize,
    g: usize,
    bits: u32,
    lanes: usize,
    macs: usize,
    periodic: bool,
) -> (usize, CycleModel) {
    let grid = GateGrid::new(g, 12.0 / g as f64).unwrap();
    let model = testbench::random_model(bits, h, 3);
    let groups = 7;
    // The same pixels in every group, so the data-dependent extraction takes
    // the same time in every group.
    let pixels = testbench::corner_histograms(g, lanes, 1);
    let one = pixels.slice(ndarray::s![pixels.nrows() - lanes.., ..]);
    let counts = ndarray::concatenate(ndarray::Axis(0), &vec![one; groups]).unwrap();
    let spec = testbench::spec(&model, &grid, lanes, macs).unwrap();
    let mut engine = spec.engine().unwrap();
    let out = testbench::run(&mut engine, counts.view(), &Policy::eager(), None).unwrap();
    let first = |grp: usize| out.result_cycles[grp * lanes] as usize;
    let model = spec.cycles();
    assert_eq!(model, CycleModel::new(h, g, macs, lanes, bits));
    if !periodic {
        // Paced by another stage, the GRU starts a group on a slot
        // boundary: the period alternates by whole slots; its mean counts.
        return ((first(6) - first(2)) / 4, model);
    }
    let two = first(4) - first(2);
    assert_eq!(two, first(6) - first(4), "not yet periodic");
    assert_eq!(two, first(5) - first(3), "not yet periodic");
    (two / 2, model)
}

#[test]
fn cycle_model_matches_simulation() {
    for (h, g, bits, lanes, macs) in [
        (4, 11, 8, 1, 1),
        (8, 12, 8, 2, 24),
        (6, 11, 12, 1, 6),
        (5, 16, 16, 3, 5),
        (32, 135, 8, 1, 96),
    ] {
        let (period, model) = measured_period(h, g, bits, lanes, macs, true);
        assert!(model.compute_bound(), "{model:?}");
        // Tiny shapes pay the slot's 8 boundary/drain cycles on few terms.
        assert!(model.utilisation() > 0.5, "{model:?}");
        assert_eq!(
            period, model.cycles_per_group,
            "H {h} G {g} W {bits} P {lanes} M {macs}: {model:?}"
        );
        if bits == 16 {
            assert_eq!(
                cycles_per_pixel(h, g, macs, lanes),
                period as f64 / lanes as f64
            );
        }
        eprintln!(
            "H {h} G {g} W {bits} P {lanes} M {macs}: {period} cycles per group, utilisation {:.1} %",
            100.0 * model.utilisation()
        );
    }
}

/// When preprocessing sets the pace the model is within 1 %. Extraction's
/// time depends on the data (a channel with amplitude or sum <= 0 skips its
/// division), so there the model is the worst case: the measured period
/// lies between the other stages' pace and the model.
#[test]
fn cycle_model_when_not_gru_bound() {
    let (period, model) = measured_period(1, 40, 16, 1, 3, false);
    assert!(!model.compute_bound(), "{model:?}");
    assert!(
        model.front_per_group >= model.extract_per_group,
        "{model:?}"
    );
    let err = (period as f64 - model.cycles_per_group as f64).abs() / period as f64;
    assert!(err <= 0.01, "measured {period}, {model:?}");
    let (period, model) = measured_period(3, 11, 8, 8, 9, false);
    assert!(model.extract_per_group > model.gru_per_group.max(model.front_per_group));
    assert!(
        period <= model.cycles_per_group
            && period >= model.gru_per_group.max(model.front_per_group),
        "measured {period}, {model:?}"
    );
}

#[test]
fn hardware_table_is_current() {
    let table = hardware_table(8);
    println!("{table}");
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/hardware.md")).unwrap();
    assert!(
        doc.contains(&table),
        "docs/hardware.md is stale; its table should be:\n{table}"
    );
    // The target: multipliers busy at least 80 % of cycles.
    for m in [1, 32, 96] {
        for p in [1, 4, 16] {
            assert!(CycleModel::new(32, 135, m, p, 8).utilisation() >= 0.8);
        }
    }
}
