//! The shipped 32-unit 8-bit student (models/student-8bit.json) on
//! realistic simulated pixels: the circuit equals the golden model bit for
//! bit, codes and every decoder step's head channels.

use flimgru::data::simulate::simulate;
use flimgru::model_file::ModelFile;
use flimgru::rtl::testbench::{self, Policy};

#[test]
fn student_on_realistic_pixels_is_bit_exact() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-8bit.json");
    let file = ModelFile::load(&path).expect("the shipped 8-bit student");
    let model = file
        .quantized
        .clone()
        .expect("the shipped student is quantised");
    assert_eq!((model.bits, model.hidden), (8, 32));
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
