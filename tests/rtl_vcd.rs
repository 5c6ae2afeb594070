//! Waveforms: `simulate_file` writes a VCD that the `vcd` crate reads back
//! (through `rtl::wave`: `changes` / `signal_list`), with readable hierarchical names; a
//! failing co-simulation leaves a VCD of the failing case.

use flimgru::data::GateGrid;
use flimgru::rtl::sim::simulate_file;
use flimgru::rtl::testbench::{self, Policy};
use flimgru::rtl::wave::{change_values, changes, signal_list};

#[test]
fn the_vcd_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.vcd");
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 2, 9);
    let counts = testbench::corner_histograms(11, 0, 2);
    let spec = testbench::spec(&model, &grid, 2, 3).unwrap();
    let codes = simulate_file(&spec, &counts, Some(&path)).unwrap();
    let golden = flimgru::fixed::Golden::new(&model, &grid).unwrap();
    assert_eq!(codes, golden.run(counts.view()).unwrap());

    let list = signal_list(&path).unwrap();
    for name in [
        "uut.out_pixel 32",
        "uut.gru.lane$1.head.mac$2.acc 48",
        "uut.ingest.gate.q 16",
        "uut.extract.state.q",
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(name)),
            "{name} not listed"
        );
    }
    // The result stream's pixel index steps 0, 1, ..., 7 (7 pixels + 1 pad).
    let pixels: Vec<u64> = change_values(&path, "uut.out_pixel", None, None)
        .unwrap()
        .iter()
        .map(|(_, v)| u64::from_str_radix(v, 16).unwrap())
        .collect();
    assert_eq!(pixels, (0..8).collect::<Vec<_>>());
    // The slot state machine's enum values appear by name, in a window.
    let slots = change_values(&path, "gru.slot.q", Some(1000), Some(3000)).unwrap();
    assert!(slots.iter().all(|(t, _)| (1000..=3000).contains(t)));
    assert!(slots.iter().any(|(_, v)| v.contains("Issue")), "{slots:?}");
    assert!(
        slots.iter().any(|(_, v)| v.contains("Boundary")),
        "{slots:?}"
    );
    let text = changes(&path, "uut.out_valid", Some(0), None).unwrap();
    assert!(text.lines().count() >= 2 * 8, "{text}");
    assert!(changes(&path, "no_such_signal", None, None).is_err());
    assert!(changes(&path, "q", None, None)
        .unwrap_err()
        .to_string()
        .contains("ambiguous"));
    // D10: a name several blocks share is refused with the matches, not
    // resolved to one of them (the top's `uut.out_pixel` must be named).
    for name in ["out_pixel", "clock"] {
        let e = changes(&path, name, None, None).unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains(&format!("uut.{name}")),
            "{e}"
        );
    }
}

#[test]
fn a_failing_case_leaves_a_vcd() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(6, 2, 4);
    let mut wrong = model.clone();
    wrong.decoder_bias.codes[0] = if wrong.decoder_bias.codes[0] == 5 {
        6
    } else {
        5
    };
    let counts = testbench::corner_histograms(11, 1, 8);
    let circuit = testbench::spec(&wrong, &grid, 1, 2).unwrap();
    let e = testbench::check_with(&circuit, &model, counts.view(), &Policy::eager())
        .unwrap_err()
        .to_string();
    let path = e
        .split("waveform: ")
        .nth(1)
        .expect("the error names the waveform");
    let list = signal_list(std::path::Path::new(path.trim())).unwrap();
    assert!(list.contains("uut.gru.lane$0"), "{list}");
    std::fs::remove_file(path.trim()).ok();
}
