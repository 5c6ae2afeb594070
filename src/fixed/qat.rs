//! Quantisation-aware training: the float trainer differentiates through
//! the golden model itself. The forward pass *is* [`Golden::group`] on the
//! latent weights re-quantised onto fixed per-tensor exponents, so its
//! codes are the golden model's by construction; the backward pass is the
//! float BPTT evaluated at the decoded codes (straight-through: rounding
//! passes the gradient unchanged, the hard sigmoid's saturation passes
//! none, latent weights are kept inside the code range).

use super::contract::Format;
use super::golden::{Event, Golden, Scratch, LANES};
use super::quant::QuantModel;
use crate::data::GateGrid;
use crate::model::train::{train_with, ForwardPass, History};
use crate::model::{Seq2Seq, TrainConfig, TrainData, Workspace};
use anyhow::Result;
use ndarray::{s, Array2, ArrayView2, ArrayView3, Axis};

/// The QAT forward pass for one set of exponents and one gate grid.
pub struct QatForward {
    golden: Golden,
}

impl QatForward {
    /// `start` fixes the bit width and the per-tensor exponents (from PTQ
    /// of the float student).
    pub fn new(start: &QuantModel, grid: &GateGrid) -> Result<QatForward> {
        Ok(QatForward {
            golden: Golden::new(start, grid)?,
        })
    }

    pub fn format(&self) -> Format {
        self.golden.fmt
    }

    /// The quantised model of latent float weights.
    pub fn quantise(&self, model: &Seq2Seq<f32>) -> QuantModel {
        self.golden.model.requantise(model)
    }
}

impl ForwardPass for QatForward {
    fn forward(
        &self,
        model: &Seq2Seq<f32>,
        x: ArrayView3<f32>,
        ws: &mut Workspace<f32>,
    ) -> Option<Seq2Seq<f32>> {
        let q = self.quantise(model);
        let golden = self
            .golden
            .with_weights(&q)
            .expect("requantised weights have the engine's shape");
        let fmt = golden.fmt;
        let one = fmt.one() as f32;
        let hid = golden.hidden;
        let (steps, batch, _) = x.dim();
        let (enc, dec, out) = ws.external(1, steps, batch);
        let (mut eg, mut ei, mut eh) = enc[0].external(steps, batch, hid);
        let (mut dg, mut di, mut dh) = dec[0].external(steps, batch, hid);
        eh.index_axis_mut(Axis(0), 0).fill(0.0);
        let mut scratch = Scratch::default();
        let mut codes = vec![[0i64; LANES]; steps];
        for start in (0..batch).step_by(LANES) {
            let n = LANES.min(batch - start);
            for (t, c) in codes.iter_mut().enumerate() {
                for (l, v) in c.iter_mut().enumerate() {
                    // Inputs are code / S, exact in f32: back to the code.
                    *v = if l < n {
                        (x[[t, start + l, 0]] * one).round() as i64
                    } else {
                        0
                    };
                }
            }
            let mut record = |e: Event<'_, i64>| match e {
                Event::Step(s) => {
                    let (g, i, h) = if s.decoder {
                        (&mut dg, &mut di, &mut dh)
                    } else {
                        (&mut eg, &mut ei, &mut eh)
                    };
                    for l in 0..n {
                        let b = start + l;
                        for (j, v) in s.gates.iter().enumerate() {
                            g[[s.step, b, j]] = v[l] as f32 / one;
                        }
                        for k in 0..hid {
                            i[[s.step, b, k]] = s.reset[k][l] as f32 / one;
                            h[[s.step + 1, b, k]] = s.state[k][l] as f32 / one;
                        }
                    }
                }
                Event::Head { step, out: o } => {
                    for l in 0..n {
                        for c in 0..3 {
                            out[[step, start + l, c]] = fmt.head_value(o[c][l]) as f32;
                        }
                    }
                }
            };
            golden.group(&codes, &mut scratch, Some(&mut record));
        }
        // The decoder starts from the encoder's final state.
        dh.index_axis_mut(Axis(0), 0)
            .assign(&eh.index_axis(Axis(0), steps));
        Some(q.dequantise())
    }

    fn project(&self, model: &mut Seq2Seq<f32>) {
        let fmt = self.golden.fmt;
        for (t, q) in model
            .tensors_mut()
            .into_iter()
            .zip(self.golden.model.tensors())
        {
            let lim = (fmt.weight_qmax() as f64
                * 2f64.powi(q.exponent as i32 - (fmt.bits as i32 - 1)))
                as f32;
            t.mapv_inplace(|v| v.clamp(-lim, lim));
        }
    }
}

/// Network inputs of raw counts `[n, G]` at bit width `fmt`: the
/// contract's input codes / S (exact in f32), what QAT trains on.
pub fn input_values(fmt: Format, baseline_gates: usize, counts: ArrayView2<u32>) -> Array2<f32> {
    let (n, g) = counts.dim();
    let mut out = Array2::<f32>::zeros((n, g));
    let one = fmt.one() as f32;
    let mut row = vec![0i64; g];
    for (i, c) in counts.outer_iter().enumerate() {
        let c: Vec<u32> = c.iter().copied().collect();
        super::contract::preprocess(fmt, baseline_gates, &c, &mut row);
        out.slice_mut(s![i, ..])
            .iter_mut()
            .zip(&row)
            .for_each(|(o, &v)| *o = v as f32 / one);
    }
    out
}

/// Fine-tune a float student through the contract at `start`'s bit width
/// and exponents; returns the quantised result (the best validation
/// epoch) and the training history. `data.inputs` must be
/// [`input_values`] at that width.
pub fn train_qat(
    student: &Seq2Seq<f32>,
    start: &QuantModel,
    grid: &GateGrid,
    data: &TrainData,
    config: &TrainConfig,
    show_progress: bool,
) -> Result<(QuantModel, History)> {
    let pass = QatForward::new(start, grid)?;
    let mut latent = student.clone();
    pass.project(&mut latent);
    let history = train_with(&pass, &mut latent, data, config, show_progress)?;
    Ok((pass.quantise(&latent), history))
}
