//! Model files: versioned JSON holding the network, the data it was
//! trained on, how it was trained and what it scored. A model file is
//! untrusted input: its format, version and every tensor shape are checked
//! on load.

use crate::data::simulate::SimSpec;
use crate::model::stream::StreamRun;
use crate::model::train::History;
use crate::model::{Seq2Seq, TrainConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tag in every model file.
pub const MODEL_FORMAT: &str = "flimgru-model";
/// Version this build writes; it also reads version 1 (float models
/// written before quantised weights existed).
pub const MODEL_VERSION: u32 = 2;
/// Model files larger than this are refused before parsing.
const MAX_MODEL_BYTES: u64 = 512 << 20;
/// The shipped hardware student, built into the binary so the commands
/// that default to it work from any directory.
const SHIPPED_JSON: &str = include_str!("../models/student-w8a12.json");
/// What the shipped model is called in messages.
pub const SHIPPED_NAME: &str = "the shipped W8A12 student (models/student-w8a12.json, built in)";

/// Everything about a trained network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub version: u32,
    /// Short human name, e.g. "teacher-2x128".
    pub name: String,
    /// The command line that produced the file.
    pub command: String,
    /// The simulated data the network was trained on (its grid is the
    /// network's input grid).
    pub data: SimSpec,
    pub data_seed: u64,
    pub data_pixels: usize,
    pub training: TrainConfig,
    pub history: History,
    /// Accuracy table, when the model has been evaluated.
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
    pub weights: Seq2Seq<f32>,
    /// The fixed-point student (docs/fixed-point.md): integer codes and
    /// per-tensor exponents. When present, `weights` holds exactly their
    /// values, so the float engine runs the same numbers in f32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantized: Option<crate::fixed::QuantModel>,
    /// The streamed stages of a model made by the training recipe
    /// (`flimgru recipe`); `training` and `history` then summarise the last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream: Vec<StreamRun>,
    /// The rounding search after the recipe's QAT stage, when the job
    /// ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounding: Option<crate::fixed::rounding::RoundingRun>,
}

impl ModelFile {
    /// The fixed-point student the file holds; the one place a missing
    /// one is refused, for every user of it (the fixed engine, the
    /// circuits, PTQ studies).
    pub fn student(&self) -> Result<&crate::fixed::QuantModel> {
        match &self.quantized {
            Some(q) => Ok(q),
            None => bail!(
                "model {} has no quantised weights (field \"quantized\"): the fixed engine and the circuits run a quantised student (flimgru recipe with a qat stage, or flimgru compress)",
                self.name
            ),
        }
    }

    /// Whether the file holds a fixed-point student (its default engine is
    /// then the fixed one).
    pub fn is_student(&self) -> bool {
        self.quantized.is_some()
    }

    pub fn gates(&self) -> usize {
        self.data.grid.gates
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).context("serialising the model")?;
        crate::output::write_bytes(path, &json)
    }

    pub fn load(path: &Path) -> Result<ModelFile> {
        let what = format!("model file {}", path.display());
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what}"))?;
        if meta.len() > MAX_MODEL_BYTES {
            bail!("{what} is {} bytes, larger than any model", meta.len());
        }
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {what}"))?;
        Self::from_json(&bytes, &what)
    }

    /// The shipped hardware student built into the binary.
    pub fn shipped() -> Result<ModelFile> {
        Self::from_json(SHIPPED_JSON.as_bytes(), SHIPPED_NAME)
    }

    /// `path`'s model, or the shipped one when `None`.
    pub fn load_or_shipped(path: Option<&Path>) -> Result<ModelFile> {
        match path {
            Some(p) => Self::load(p),
            None => Self::shipped(),
        }
    }

    /// A model from its JSON bytes, checked as [`ModelFile::load`] checks
    /// a file; `what` names the source in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<ModelFile> {
        let what = || what.to_string();
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .with_context(|| format!("{} is not valid JSON", what()))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(MODEL_FORMAT) => {}
            Some(other) => bail!("{} has format {other:?}, expected {MODEL_FORMAT:?}", what()),
            None => bail!("{} has no \"format\" field: not a flimgru model", what()),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == 1 || v == MODEL_VERSION as u64 => {}
            Some(v) => bail!(
                "{} has model version {v}; this flimgru reads versions 1..={MODEL_VERSION}",
                what()
            ),
            None => bail!("{} has no numeric \"version\" field", what()),
        }
        let model: ModelFile =
            serde_json::from_value(value).with_context(|| format!("{} is malformed", what()))?;
        model
            .weights
            .validate()
            .with_context(|| format!("{} has inconsistent weights", what()))?;
        model
            .data
            .validate()
            .with_context(|| format!("{} has an invalid data spec", what()))?;
        if let Some(q) = &model.quantized {
            q.validate()
                .with_context(|| format!("{} field \"quantized\"", what()))?;
            if q.dequantise() != model.weights {
                bail!(
                    "{} field \"weights\" disagrees with the quantised codes of field \"quantized\"",
                    what()
                );
            }
        }
        Ok(model)
    }
}
