//! The export itself: header (parameters, model name, checksum),
//! deterministic output, atomic writes, and the committed default
//! configuration's Verilog under rtl/ is current (regenerate it with
//! `FLIMGRU_BLESS=1 cargo test --test export_verilog`, or
//! `flimgru export --model models/student-w8a12.json --lanes 1 --macs 96 --out rtl/`).

mod export_common;

use flimgru::data::GateGrid;
use flimgru::export;
use flimgru::rtl::testbench;
use flimgru::rtl::Dsp;
use std::path::Path;

/// The committed default: P = 1, M = 96 (W8A12, the student's).
const DEFAULT: (usize, usize) = (1, 96);

#[test]
fn header_names_the_parameters_and_the_model_checksum() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(8, 3, 1);
    let spec = testbench::spec(&model, &grid, 2, 3).unwrap();
    let v = export::verilog(&spec, "tiny").unwrap();
    let sum = format!("{:016x}", export::model_checksum(&model));
    for want in [
        "model           tiny",
        sum.as_str(),
        "W (bits)        8",
        "P (lanes)       2",
        "M (MACs/lane)   3",
        "H (hidden)      3",
        "G (gates)       11",
        "module top(",
    ] {
        assert!(v.contains(want), "no {want:?} in the export");
    }
    // The header's port list names the result port as declared, and the
    // Verilog's ports have those widths.
    for (name, width) in flimgru::rtl::protocol::RESULT_FIELDS {
        let port = format!("out_{name} [{}:0]", width - 1);
        assert!(v.contains(&port), "the header lists no {port:?}");
        let decl = format!("[{}:0] out_{name};", width - 1);
        assert!(
            v.lines()
                .any(|l| l.trim_start().starts_with("output") && l.ends_with(&decl)),
            "no output {decl:?}"
        );
    }
    // Deterministic, and the checksum sees every code.
    assert_eq!(v, export::verilog(&spec, "tiny").unwrap());
    let mut other = model.clone();
    other.decoder_recurrent.codes[0] ^= 1;
    assert_ne!(
        export::model_checksum(&model),
        export::model_checksum(&other)
    );
    // ... and the activation width of a mixed model; a uniform model's
    // stated Wa (equal to Ww) leaves the committed checksums as they are.
    let (mut mixed, mut stated) = (model.clone(), model.clone());
    mixed.act_bits = Some(16);
    stated.act_bits = Some(model.bits);
    assert_ne!(
        export::model_checksum(&model),
        export::model_checksum(&mixed)
    );
    assert_eq!(
        export::model_checksum(&model),
        export::model_checksum(&stated)
    );
    // No loop index survives the unrolling fix (rust-hdl 0.46 leaves `[m]`).
    assert!(!v.contains("[m]") && !v.contains("[c]"));
    // Impossible configurations are refused with the engine's message.
    let e = testbench::spec(&model, &grid, 2, 4).unwrap_err();
    assert!(format!("{e:#}").contains("M = 4"), "{e:#}");
}

/// The MAC units' weight registers are W + e bits for the largest weight
/// exponent e the model uses: a 16-bit model with e = 0 keeps its weights
/// inside one 18-bit DSP port (a 19-bit weight needs partial products).
#[test]
fn weight_registers_are_as_wide_as_the_largest_exponent_needs() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    for e in [0, 2] {
        let mut model = testbench::random_model(16, 3, 5);
        for t in [
            &mut model.encoder_kernel,
            &mut model.encoder_recurrent,
            &mut model.encoder_bias,
            &mut model.decoder_kernel,
            &mut model.decoder_recurrent,
            &mut model.decoder_bias,
            &mut model.head_kernel,
            &mut model.head_bias,
        ] {
            t.exponent = 0;
        }
        model.encoder_kernel.exponent = e;
        let spec = testbench::spec(&model, &grid, 1, 3).unwrap();
        let v = export::verilog(&spec, "e").unwrap();
        let widths: std::collections::BTreeSet<&str> = v
            .lines()
            .filter(|l| l.contains(" w_a = "))
            .filter_map(|l| l.split(']').next())
            .collect();
        let want = format!("reg signed [{}:0", 16 + e - 1);
        assert!(
            !widths.is_empty() && widths.iter().all(|w| w.trim() == want),
            "e = {e}: weight registers {widths:?}, want {want}]"
        );
    }
}

#[test]
fn write_verilog_writes_one_complete_file() {
    let grid = GateGrid::new(11, 0.2).unwrap();
    let model = testbench::random_model(6, 2, 3);
    let spec = testbench::spec(&model, &grid, 1, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rtl");
    let path = export::write_verilog(&spec, "m", &out).unwrap();
    assert_eq!(path, out.join("flimgru_w6_p1_m2.v"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, export::verilog(&spec, "m").unwrap());
    assert!(text.contains("//   multipliers     inferred") && !text.contains("MULT18X18D #("));
    // The ECP5 form: its own file name, header line and MULT18X18D cells
    // (2 MAC units + 3 head MACs + the lane's reset and update products).
    let ecp5 = export::write_verilog(&spec.with_dsp(Dsp::Ecp5), "m", &out).unwrap();
    assert_eq!(ecp5, out.join("flimgru_w6_p1_m2_ecp5.v"));
    let text = std::fs::read_to_string(&ecp5).unwrap();
    assert!(text.contains("//   multipliers     ECP5 MULT18X18D"));
    assert_eq!(text.matches("MULT18X18D #(").count(), 7);
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(names.len(), 2, "temporary files left behind");
}

#[test]
fn committed_default_verilog_is_current() {
    let (model, grid, name) = export_common::student();
    let spec = testbench::spec(&model, &grid, DEFAULT.0, DEFAULT.1).unwrap();
    let rtl = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtl");
    let path = rtl.join(spec.file_name());
    assert_eq!(spec.file_name(), "flimgru_w8a12_p1_m96.v");
    if std::env::var_os("FLIMGRU_BLESS").is_some() {
        export::write_verilog(&spec, &name, &rtl).unwrap();
    }
    let want = export::verilog(&spec, &name).unwrap();
    let have = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate it with `FLIMGRU_BLESS=1 cargo test --test export_verilog`",
            path.display()
        )
    });
    assert!(
        have == want,
        "{} is stale (model or exporter changed); regenerate it with `FLIMGRU_BLESS=1 cargo test --test export_verilog`",
        path.display()
    );
}
