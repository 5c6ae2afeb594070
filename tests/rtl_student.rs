//! The shipped 32-unit students (models/student-w8a12.json, the default
//! hardware model, and models/student-8bit.json, W8) on realistic
//! simulated pixels: the circuit equals the golden model bit for bit,
//! codes and every decoder step's head channels.

use flimgru::data::simulate::simulate;
use flimgru::model_file::ModelFile;
use flimgru::rtl::testbench::{self, Policy};

fn student_on_realistic_pixels_is_bit_exact(name: &str, act_bits: Option<u32>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("models/{name}.json"));
    let file = ModelFile::load(&path).expect(name);
    let model = file
        .quantized
        .clone()
        .expect("the shipped student is quantised");
    assert_eq!(
        (model.bits, model.act_bits, model.hidden),
        (8, act_bits, 32)
    );
    let spec = file.data.clone();
    let data = simulate(&spec, 20, 4).unwrap();
    let circuit = testbench::spec(&model, &spec.grid, 4, 96).unwrap();
    let t = std::time::Instant::now();
    let out = testbench::check(&circuit, data.counts.view(), &Policy::eager()).unwrap();
    eprintln!("{} cycles in {:?}", out.cycles, t.elapsed());
    assert_eq!(out.codes.len(), 20);
    // Not a degenerate case: the head channels vary over the decoder steps.
    assert!(out
        .channels
        .iter()
        .any(|c| c.column(1).iter().any(|&v| v != c[[0, 1]])));
}

#[test]
fn w8a12_student_on_realistic_pixels_is_bit_exact() {
    student_on_realistic_pixels_is_bit_exact("student-w8a12", Some(12));
}

#[test]
fn w8_student_on_realistic_pixels_is_bit_exact() {
    student_on_realistic_pixels_is_bit_exact("student-8bit", None);
}
