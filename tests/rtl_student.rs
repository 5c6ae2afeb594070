//! The 32-unit 8-bit student (random weights until models/student-8bit.json
//! ships) on realistic simulated pixels: the circuit equals the golden
//! model bit for bit, codes and every decoder step's head channels.

use flimgru::data::simulate::{simulate, SimSpec};
use flimgru::fixed::QuantModel;
use flimgru::model::{CandidateActivation, GateActivation, Seq2Seq, Seq2SeqConfig};
use flimgru::rtl::testbench::{self, Policy};
use flimgru::rtl::EngineConfig;
use rand::SeedableRng;

#[test]
fn student_on_realistic_pixels_is_bit_exact() {
    let mut cfg = Seq2SeqConfig::student(32);
    cfg.gate = GateActivation::HardSigmoid;
    cfg.candidate = CandidateActivation::ClippedIdentity;
    let float = Seq2Seq::<f32>::init(&cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(11));
    let model = QuantModel::from_float(&float, 8).unwrap();
    let spec = SimSpec::default();
    let data = simulate(&spec, 20, 4).unwrap();
    let config = EngineConfig {
        bits: 8,
        lanes: 4,
        macs: 96,
    };
    let t = std::time::Instant::now();
    let out = testbench::check(
        &model,
        &spec.grid,
        config,
        data.counts.view(),
        &Policy::eager(),
    )
    .unwrap();
    eprintln!("{} cycles in {:?}", out.cycles, t.elapsed());
    assert_eq!(out.codes.len(), 20);
    // Not a degenerate case: the head channels vary over the decoder steps.
    assert!(out
        .channels
        .iter()
        .any(|c| c.column(1).iter().any(|&v| v != c[[0, 1]])));
}
