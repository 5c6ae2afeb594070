//! The trainer learns, is reproducible, and its model files round-trip and
//! reject what they should.

use flimgru::app::{train_model, TrainJob};
use flimgru::data::simulate::SimSpec;
use flimgru::data::GateGrid;
use flimgru::model::{Seq2SeqConfig, TrainConfig};
use flimgru::model_file::ModelFile;

fn small_job(seed: u64) -> TrainJob {
    let spec = SimSpec {
        grid: GateGrid::new(24, 0.4).unwrap(),
        ..SimSpec::default()
    };
    TrainJob {
        name: "test".into(),
        network: Seq2SeqConfig::teacher(vec![8]),
        training: TrainConfig {
            batch: 32,
            epochs: 6,
            learning_rate: 1e-2,
            seed,
            ..TrainConfig::default()
        },
        data: spec,
        pixels: 1200,
        data_seed: 3,
        command: "test".into(),
    }
}

#[test]
fn training_reduces_validation_loss() {
    let model = train_model(&small_job(1), false).unwrap();
    let h = &model.history;
    let first = h.initial_validation_loss;
    assert!(
        h.best_validation_loss < 0.5 * first,
        "validation MSE went from {first} to only {}",
        h.best_validation_loss
    );
    assert!(h.epochs.last().unwrap().validation_loss < h.epochs[0].validation_loss);
}

#[test]
fn training_is_reproducible_and_round_trips() {
    let a = train_model(&small_job(5), false).unwrap();
    let b = train_model(&small_job(5), false).unwrap();
    assert_eq!(a.weights, b.weights, "same seeds gave different weights");
    let c = train_model(&small_job(6), false).unwrap();
    assert_ne!(a.weights, c.weights, "the seed has no effect");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.json");
    a.save(&p).unwrap();
    let back = ModelFile::load(&p).unwrap();
    assert_eq!(back.weights, a.weights);
    let q = dir.path().join("m2.json");
    back.save(&q).unwrap();
    let (x, y) = (
        std::fs::read_to_string(&p).unwrap(),
        std::fs::read_to_string(&q).unwrap(),
    );
    if x != y {
        let i = x
            .bytes()
            .zip(y.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "re-saved model differs at byte {i}: {:?} vs {:?}",
            &x[i.saturating_sub(80)..(i + 40).min(x.len())],
            &y[i.saturating_sub(80)..(i + 40).min(y.len())]
        );
    }
}

#[test]
fn model_files_are_checked_on_load() {
    let model = train_model(
        &TrainJob {
            training: TrainConfig {
                epochs: 1,
                ..small_job(1).training
            },
            ..small_job(1)
        },
        false,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::to_value(&model).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "version",
            {
                let mut v = good.clone();
                v["version"] = 99.into();
                v
            },
            "version 99",
        ),
        (
            "format",
            {
                let mut v = good.clone();
                v["format"] = "keras".into();
                v
            },
            "format",
        ),
        (
            "shape",
            {
                let mut v = good.clone();
                let k = &mut v["weights"]["head"]["kernel"];
                k["dim"] = serde_json::json!([4, 3]);
                let data: Vec<serde_json::Value> = k["data"].as_array().unwrap()[..12].to_vec();
                k["data"] = data.into();
                v
            },
            "head.kernel",
        ),
        (
            "layers",
            {
                let mut v = good.clone();
                v["weights"]["config"]["hidden"] = serde_json::json!([8, 8]);
                v
            },
            "layers",
        ),
    ];
    for (name, value, needle) in cases {
        let p = dir.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_vec(&value).unwrap()).unwrap();
        let err = format!("{:#}", ModelFile::load(&p).unwrap_err());
        assert!(
            err.contains(needle),
            "{name}: error {err:?} lacks {needle:?}"
        );
        assert!(
            err.contains(&p.display().to_string()),
            "{name}: {err:?} does not name the file"
        );
    }
    let p = dir.path().join("truncated.json");
    let bytes = serde_json::to_vec(&good).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    assert!(ModelFile::load(&p).is_err());
}

#[test]
fn wall_time_budget_stops_training_with_best_weights() {
    let mut job = small_job(2);
    job.training.epochs = 50;
    job.training.max_minutes = Some(0.0);
    let model = train_model(&job, false).unwrap();
    assert_eq!(model.history.epochs.len(), 1);
    assert!(
        model.history.stop_reason.contains("wall-time"),
        "{}",
        model.history.stop_reason
    );
}
