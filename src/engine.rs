//! The runner: the ways to run a model file on histograms, the float
//! network, the fixed-point golden model (what the FPGA computes), or the
//! circuit itself simulated cycle by cycle. Inference, evaluation, maps
//! and `flimgru sim` all go through here, so their results compare.

use crate::data::{preprocess_batch, GateGrid};
use crate::fixed::contract::COUNT_MAX;
use crate::fixed::Golden;
use crate::lifetime::extract::extract_batch;
use crate::lifetime::Lifetimes;
use crate::model::Seq2Seq;
use crate::model_file::ModelFile;
use crate::rtl::CircuitSpec;
use anyhow::{bail, Result};
use ndarray::{Array2, Array3, ArrayView2};
use std::path::PathBuf;

/// Which arithmetic runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EngineKind {
    /// f32 network, float preprocessing and extraction.
    Float,
    /// The golden model of docs/fixed-point.md (bit-exact with the circuits).
    Fixed,
}

/// A model ready to run.
pub enum Runner<'a> {
    /// Float weights and the gate grid they read.
    Float(&'a Seq2Seq<f32>, GateGrid),
    Fixed(Box<Golden>),
    /// The circuit of a checked build, simulated cycle by cycle: the
    /// fixed-point arithmetic again, as the FPGA runs it (slow; for
    /// checking the hardware), its waveform written to the VCD path when
    /// one is given. Lifetimes only: the circuit has no channel output.
    Circuit(Box<CircuitSpec>, Option<PathBuf>),
}

impl<'a> Runner<'a> {
    /// `kind` `None` picks the fixed engine for quantised model files and
    /// the float one otherwise.
    pub fn new(model: &'a ModelFile, kind: Option<EngineKind>) -> Result<Runner<'a>> {
        let kind = kind.unwrap_or(if model.is_student() {
            EngineKind::Fixed
        } else {
            EngineKind::Float
        });
        Ok(match kind {
            EngineKind::Float => Runner::Float(&model.weights, model.data.grid),
            EngineKind::Fixed => {
                Runner::Fixed(Box::new(Golden::new(model.student()?, &model.data.grid)?))
            }
        })
    }

    /// Gates per pixel the model reads.
    pub fn gates(&self) -> usize {
        match self {
            Runner::Float(_, grid) => grid.gates,
            Runner::Fixed(g) => g.gates,
            Runner::Circuit(spec, _) => spec.gates(),
        }
    }

    pub fn kind(&self) -> EngineKind {
        match self {
            Runner::Float(..) => EngineKind::Float,
            // The circuit computes the golden model's integers.
            Runner::Fixed(_) | Runner::Circuit(..) => EngineKind::Fixed,
        }
    }

    /// Lifetimes of raw counts `[n, G]`.
    pub fn lifetimes(&self, counts: ArrayView2<f32>) -> Result<Vec<Lifetimes>> {
        Ok(self.run(counts, false)?.0)
    }

    /// Lifetimes and the decoded channels `[n, G, 3]`.
    pub fn lifetimes_and_channels(
        &self,
        counts: ArrayView2<f32>,
    ) -> Result<(Vec<Lifetimes>, Array3<f32>)> {
        let (l, c) = self.run(counts, true)?;
        Ok((l, c.expect("channels requested")))
    }

    fn run(
        &self,
        counts: ArrayView2<f32>,
        channels: bool,
    ) -> Result<(Vec<Lifetimes>, Option<Array3<f32>>)> {
        match self {
            Runner::Float(weights, grid) => {
                if counts.ncols() != grid.gates {
                    bail!(
                        "histograms have {} gates, the model expects {}",
                        counts.ncols(),
                        grid.gates
                    );
                }
                let inputs = preprocess_batch(counts, grid.baseline_gates);
                let ch = weights.predict(inputs.view());
                let l = extract_batch(ch.view(), grid.dt_ns);
                Ok((l, channels.then_some(ch)))
            }
            Runner::Fixed(golden) => {
                let counts = integer_counts(counts)?;
                if channels {
                    let (codes, ch) = golden.run_with_channels(counts.view())?;
                    let l = codes.iter().map(|c| c.lifetimes()).collect();
                    Ok((l, Some(golden.decode_channels(&ch))))
                } else {
                    let codes = golden.run(counts.view())?;
                    Ok((codes.iter().map(|c| c.lifetimes()).collect(), None))
                }
            }
            Runner::Circuit(spec, vcd) => {
                if channels {
                    bail!("the circuit simulation gives lifetimes only (its decoded channels are not an output port); run the golden model for them");
                }
                if counts.ncols() != spec.gates() {
                    bail!(
                        "histograms have {} gates, the circuit reads {}",
                        counts.ncols(),
                        spec.gates()
                    );
                }
                let counts = integer_counts(counts)?;
                let codes = crate::rtl::sim::simulate_file(spec, &counts, vcd.as_deref())?;
                Ok((codes.iter().map(|c| c.lifetimes()).collect(), None))
            }
        }
    }
}

/// Counts as the integers the hardware receives: non-negative whole
/// numbers, saturated at the 16-bit ingest width (the contract's input).
pub fn integer_counts(counts: ArrayView2<f32>) -> Result<Array2<u32>> {
    if let Some(((i, k), v)) = counts
        .indexed_iter()
        .find(|(_, &v)| !(v.is_finite() && v >= 0.0 && v.fract() == 0.0))
    {
        bail!(
            "the fixed-point engine needs whole non-negative photon counts; pixel {i} gate {k} holds {v}"
        );
    }
    Ok(counts.mapv(|v| (v as f64).min(COUNT_MAX as f64) as u32))
}
