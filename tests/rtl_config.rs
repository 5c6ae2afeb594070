//! Impossible builds are refused when the `CircuitSpec` is made, with a
//! clear error; the Verilog of a small engine generates.

use flimgru::data::GateGrid;
use flimgru::fixed::QuantModel;
use flimgru::rtl::testbench;
use flimgru::rtl::{CircuitSpec, Dsp, Layout};

fn err(model: &QuantModel, grid: &GateGrid, c: Layout) -> String {
    match CircuitSpec::new(model.clone(), *grid, c, Dsp::Inferred) {
        Ok(_) => panic!("{c:?} was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn impossible_configurations_are_refused() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 4, 1);
    let ok = Layout { lanes: 2, macs: 4 };
    let spec = CircuitSpec::new(model.clone(), grid, ok, Dsp::Inferred).unwrap();
    assert_eq!(spec.format(), model.format());
    assert!(spec.engine().is_ok());
    let e = err(&model, &grid, Layout { macs: 5, ..ok });
    assert!(e.contains("M = 5") && e.contains("divide"), "{e}");
    let e = err(&model, &grid, Layout { macs: 0, ..ok });
    assert!(e.contains("M = 0"), "{e}");
    let e = err(&model, &grid, Layout { lanes: 0, ..ok });
    assert!(e.contains("P = 0"), "{e}");
    let e = err(&model, &grid, Layout { lanes: 65, ..ok });
    assert!(e.contains("P = 65"), "{e}");
    // W is the model's: a model outside the contract's widths is refused.
    for bits in [3, 17] {
        let mut m = model.clone();
        m.bits = bits;
        let e = err(&m, &grid, ok);
        assert!(e.contains(&format!("W = {bits}")), "{e}");
    }
    // A mixed-precision model is built, its name saying both widths.
    let mixed = testbench::random_model_in(flimgru::fixed::Format::mixed(8, 12).unwrap(), 4, 2);
    let s = CircuitSpec::new(mixed, grid, ok, Dsp::Inferred).unwrap();
    assert_eq!(s.name(), format!("w8a12_p{}_m{}", ok.lanes, ok.macs));
    assert!(s.width_label().contains("Wa 12"), "{}", s.width_label());
    // A model whose codes exceed its own format.
    let mut wide = model.clone();
    wide.decoder_recurrent.codes[3] = 200;
    let e = err(&wide, &grid, ok);
    assert!(e.contains("decoder_recurrent") && e.contains("200"), "{e}");
    let mut exp = model.clone();
    exp.head_kernel.exponent = 4;
    assert!(err(&exp, &grid, ok).contains("exponent"));
    // Too few gates for the baseline.
    for gates in [10, 2000] {
        let e = err(
            &model,
            &GateGrid {
                gates,
                dt_ns: 0.2,
                ..GateGrid::PAPER
            },
            ok,
        );
        assert!(e.contains("gates") && e.contains(&gates.to_string()), "{e}");
    }
}

#[test]
fn verilog_generates_with_readable_names() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(6, 2, 1);
    let engine = testbench::spec(&model, &grid, 2, 3)
        .unwrap()
        .engine()
        .unwrap();
    // Every input of every block is driven, no combinational loops.
    rust_hdl::prelude::check_all(&engine).unwrap();
    let v = rust_hdl::prelude::generate_verilog(&engine);
    assert!(v.len() > 10_000);
    assert!(v.contains("module top("), "no top-level module");
    for name in [
        "top$ingest",
        "top$preproc",
        "top$gru",
        "top$extract",
        "gru$lane$1",
        "lane$0$head",
        "out_tau1",
    ] {
        assert!(v.contains(name), "no {name} in the Verilog");
    }
    // Multipliers are the primitives' signed products.
    assert!(
        v.contains("product_b <= w_a_x * x_a_x;")
            && v.contains("reg signed [16:0] product_b = 17'h0;"),
        "no registered MAC product at the W = 6 accumulator width"
    );
}
