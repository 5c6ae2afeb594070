//! Quantised weights (section 2 of docs/fixed-point.md): W-bit symmetric
//! codes with a power-of-two per-tensor scale, made from a float model by
//! post-training quantisation, stored in model files, checked on load.

use super::contract::{Format, E_MAX, MAX_HIDDEN};
use crate::model::{CandidateActivation, GateActivation, Seq2Seq, Seq2SeqConfig};
use anyhow::{bail, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// One tensor: `value = code * 2^(exponent - (bits - 1))`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantTensor {
    /// `[rows, cols]`, as the float tensor.
    pub shape: [usize; 2],
    pub exponent: u32,
    /// Row-major codes in `-QMAX..=QMAX`.
    pub codes: Vec<i32>,
}

/// How PTQ picks a tensor's scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleRule {
    /// max|w| / (2^(W-1) - 1) rounded up to a power of two (0..=E_MAX
    /// integer bits): the contract's rule, what the golden model runs.
    PowerOfTwo,
    /// max|w| / (2^(W-1) - 1) exactly: the paper's PTQ, for float
    /// simulation of quantised teachers only.
    Exact,
}

impl QuantTensor {
    /// Quantise with the contract's power-of-two rule.
    pub fn quantise(w: &Array2<f32>, fmt: Format) -> QuantTensor {
        let max = w.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
        let q = fmt.weight_qmax() as f64;
        let exponent = (0..=E_MAX)
            .find(|&e| max <= q * step(fmt, e))
            .unwrap_or(E_MAX);
        Self::with_exponent(w, fmt, exponent)
    }

    /// Quantise onto a given exponent (QAT keeps exponents fixed).
    pub fn with_exponent(w: &Array2<f32>, fmt: Format, exponent: u32) -> QuantTensor {
        let s = step(fmt, exponent);
        let q = fmt.weight_qmax() as f64;
        QuantTensor {
            shape: [w.nrows(), w.ncols()],
            exponent,
            codes: w
                .iter()
                .map(|&v| ((v as f64) / s).round().clamp(-q, q) as i32)
                .collect(),
        }
    }

    /// The value of one code step, 2^(exponent - (Ww - 1)).
    pub fn step(&self, fmt: Format) -> f64 {
        step(fmt, self.exponent)
    }

    /// The float values of the codes (exact in f32 for W <= 16).
    pub fn dequantise(&self, fmt: Format) -> Array2<f32> {
        let s = step(fmt, self.exponent);
        Array2::from_shape_vec(
            (self.shape[0], self.shape[1]),
            self.codes.iter().map(|&c| (c as f64 * s) as f32).collect(),
        )
        .expect("shape checked by validate")
    }

    fn validate(&self, name: &str, fmt: Format, shape: [usize; 2]) -> Result<()> {
        if self.shape != shape {
            bail!(
                "quantised tensor {name} has shape {:?}, the model needs {:?}",
                self.shape,
                shape
            );
        }
        if self.codes.len() != shape[0] * shape[1] {
            bail!(
                "quantised tensor {name} holds {} codes, its shape {:?} needs {}",
                self.codes.len(),
                shape,
                shape[0] * shape[1]
            );
        }
        if self.exponent > E_MAX {
            bail!(
                "quantised tensor {name} has exponent {}, the contract allows 0..={E_MAX}",
                self.exponent
            );
        }
        let q = fmt.weight_qmax();
        if let Some((i, c)) = self
            .codes
            .iter()
            .enumerate()
            .find(|(_, &c)| (c as i64).abs() > q)
        {
            bail!(
                "quantised tensor {name} code {i} is {c}, outside the {}-bit range -{q}..={q}",
                fmt.bits
            );
        }
        Ok(())
    }
}

/// Grid step of a tensor with `exponent` integer bits.
fn step(fmt: Format, exponent: u32) -> f64 {
    2f64.powi(exponent as i32 - (fmt.bits as i32 - 1))
}

/// Simulated quantisation of any float model (teachers included): every
/// tensor rounded onto its W-bit symmetric grid, values kept in float.
pub fn fake_quantise(model: &Seq2Seq<f32>, bits: u32, rule: ScaleRule) -> Result<Seq2Seq<f32>> {
    let fmt = Format::new(bits)?;
    let mut out = model.clone();
    for t in out.tensors_mut() {
        let q = match rule {
            ScaleRule::PowerOfTwo => QuantTensor::quantise(t, fmt).dequantise(fmt),
            ScaleRule::Exact => {
                let max = t.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
                let s = max / fmt.weight_qmax() as f64;
                if s > 0.0 {
                    t.mapv(|v| (((v as f64) / s).round() * s) as f32)
                } else {
                    t.clone()
                }
            }
        };
        *t = q;
    }
    Ok(out)
}

/// A Seq2SeqLite in the contract: one GRU layer each side, reset_after =
/// false, hard sigmoid gates, clipped-identity candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantModel {
    /// Weight width Ww.
    pub bits: u32,
    /// Activation and state width Wa when it differs from Ww (mixed
    /// precision); absent: Wa = Ww.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_bits: Option<u32>,
    pub hidden: usize,
    pub encoder_kernel: QuantTensor,
    pub encoder_recurrent: QuantTensor,
    pub encoder_bias: QuantTensor,
    /// Multiplies the all-zero decoder input: kept for the parameter count,
    /// ignored by the contract.
    pub decoder_kernel: QuantTensor,
    pub decoder_recurrent: QuantTensor,
    pub decoder_bias: QuantTensor,
    pub head_kernel: QuantTensor,
    pub head_bias: QuantTensor,
}

/// Check that a float model has the shape and activations the contract
/// defines (the contract has no sigmoid, tanh or reset_after).
pub fn check_contract_shape(config: &Seq2SeqConfig) -> Result<()> {
    if config.hidden.len() != 1 {
        bail!(
            "the fixed-point contract covers one GRU layer per side; this model has {}",
            config.hidden.len()
        );
    }
    if config.reset_after {
        bail!("the fixed-point contract is reset_after = false; this model is reset_after = true");
    }
    if config.gate != GateActivation::HardSigmoid
        || config.candidate != CandidateActivation::ClippedIdentity
    {
        bail!(
            "the fixed-point contract uses hard-sigmoid gates and a clipped-identity candidate; this model has {:?}/{:?}",
            config.gate,
            config.candidate
        );
    }
    if config.hidden[0] > MAX_HIDDEN {
        bail!(
            "hidden size {} exceeds the contract's {MAX_HIDDEN}",
            config.hidden[0]
        );
    }
    Ok(())
}

impl QuantModel {
    pub fn format(&self) -> Format {
        Format {
            bits: self.bits,
            act_bits: self.act_bits.unwrap_or(self.bits),
        }
    }

    /// Post-training quantisation of a float student (power-of-two scales)
    /// in the uniform `bits`-bit contract.
    pub fn from_float(model: &Seq2Seq<f32>, bits: u32) -> Result<QuantModel> {
        Self::from_float_in(model, Format::new(bits)?)
    }

    /// Post-training quantisation in any format (weights on its Ww).
    pub fn from_float_in(model: &Seq2Seq<f32>, fmt: Format) -> Result<QuantModel> {
        check_contract_shape(&model.config)?;
        let q = |t: &Array2<f32>| QuantTensor::quantise(t, fmt);
        Self::build(model, fmt, q)
    }

    /// Quantise `model` onto the exponents of `self` (QAT's fixed scales).
    pub fn requantise(&self, model: &Seq2Seq<f32>) -> QuantModel {
        let fmt = self.format();
        let exps: Vec<u32> = self.tensors().iter().map(|t| t.exponent).collect();
        let mut i = 0;
        Self::build(model, fmt, |t| {
            let q = QuantTensor::with_exponent(t, fmt, exps[i]);
            i += 1;
            q
        })
        .expect("same shape as self")
    }

    fn build(
        model: &Seq2Seq<f32>,
        fmt: Format,
        mut q: impl FnMut(&Array2<f32>) -> QuantTensor,
    ) -> Result<QuantModel> {
        let (e, d) = (&model.encoder[0], &model.decoder[0]);
        Ok(QuantModel {
            bits: fmt.bits,
            act_bits: (!fmt.is_uniform()).then_some(fmt.act_bits),
            hidden: e.hidden(),
            encoder_kernel: q(&e.kernel),
            encoder_recurrent: q(&e.recurrent_kernel),
            encoder_bias: q(&e.bias),
            decoder_kernel: q(&d.kernel),
            decoder_recurrent: q(&d.recurrent_kernel),
            decoder_bias: q(&d.bias),
            head_kernel: q(&model.head.kernel),
            head_bias: q(&model.head.bias),
        })
    }

    /// Tensors in [`Seq2Seq::tensors`] order.
    pub fn tensors(&self) -> [&QuantTensor; 8] {
        [
            &self.encoder_kernel,
            &self.encoder_recurrent,
            &self.encoder_bias,
            &self.decoder_kernel,
            &self.decoder_recurrent,
            &self.decoder_bias,
            &self.head_kernel,
            &self.head_bias,
        ]
    }

    /// [`Self::tensors`], mutable.
    pub fn tensors_mut(&mut self) -> [&mut QuantTensor; 8] {
        [
            &mut self.encoder_kernel,
            &mut self.encoder_recurrent,
            &mut self.encoder_bias,
            &mut self.decoder_kernel,
            &mut self.decoder_recurrent,
            &mut self.decoder_bias,
            &mut self.head_kernel,
            &mut self.head_bias,
        ]
    }

    pub fn tensor_names() -> [&'static str; 8] {
        [
            "encoder_kernel",
            "encoder_recurrent",
            "encoder_bias",
            "decoder_kernel",
            "decoder_recurrent",
            "decoder_bias",
            "head_kernel",
            "head_bias",
        ]
    }

    /// The float model holding exactly the quantised values.
    pub fn dequantise(&self) -> Seq2Seq<f32> {
        let mut m = Seq2Seq::zeros(&self.config());
        let fmt = self.format();
        for (t, q) in m.tensors_mut().into_iter().zip(self.tensors()) {
            *t = q.dequantise(fmt);
        }
        m
    }

    /// A model of random codes and exponents inside the format (tests and
    /// co-simulation stimulus). Each tensor draws its codes from the full
    /// range or a range 2 or 4 times narrower, so runs see both saturating
    /// and unsaturated dynamics.
    pub fn random<R: rand::Rng>(hidden: usize, bits: u32, rng: &mut R) -> Result<QuantModel> {
        Self::random_in(hidden, Format::new(bits)?, rng)
    }

    /// [`Self::random`] in any format.
    pub fn random_in<R: rand::Rng>(hidden: usize, fmt: Format, rng: &mut R) -> Result<QuantModel> {
        let q = fmt.weight_qmax() as i32;
        let h = hidden;
        let mut t = |rows: usize, cols: usize| {
            let lim = (q >> rng.gen_range(0..=2u32)).max(1);
            QuantTensor {
                shape: [rows, cols],
                exponent: rng.gen_range(0..=E_MAX),
                codes: (0..rows * cols)
                    .map(|_| rng.gen_range(-lim..=lim))
                    .collect(),
            }
        };
        let m = QuantModel {
            bits: fmt.bits,
            act_bits: (!fmt.is_uniform()).then_some(fmt.act_bits),
            hidden,
            encoder_kernel: t(1, 3 * h),
            encoder_recurrent: t(h, 3 * h),
            encoder_bias: t(1, 3 * h),
            decoder_kernel: t(1, 3 * h),
            decoder_recurrent: t(h, 3 * h),
            decoder_bias: t(1, 3 * h),
            head_kernel: t(h, 3),
            head_bias: t(1, 3),
        };
        m.validate()?;
        Ok(m)
    }

    pub fn config(&self) -> Seq2SeqConfig {
        Seq2SeqConfig {
            hidden: vec![self.hidden],
            reset_after: false,
            gate: GateActivation::HardSigmoid,
            candidate: CandidateActivation::ClippedIdentity,
        }
    }

    pub fn parameter_count(&self) -> usize {
        self.tensors().iter().map(|t| t.codes.len()).sum()
    }

    /// Bytes of weight memory at `bits` per code (rounded up).
    pub fn weight_bytes(&self) -> usize {
        (self.parameter_count() * self.bits as usize).div_ceil(8)
    }

    /// Check every field against the contract (model files are untrusted).
    pub fn validate(&self) -> Result<()> {
        let fmt = Format::mixed(self.bits, self.act_bits.unwrap_or(self.bits))?;
        let h = self.hidden;
        if h == 0 || h > MAX_HIDDEN {
            bail!("quantised model hidden size {h} is outside 1..={MAX_HIDDEN}");
        }
        let shapes = [
            [1, 3 * h],
            [h, 3 * h],
            [1, 3 * h],
            [1, 3 * h],
            [h, 3 * h],
            [1, 3 * h],
            [h, 3],
            [1, 3],
        ];
        for ((t, name), shape) in self.tensors().iter().zip(Self::tensor_names()).zip(shapes) {
            t.validate(name, fmt, shape)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn student(h: usize) -> Seq2Seq<f32> {
        let mut cfg = Seq2SeqConfig::student(h);
        cfg.gate = GateActivation::HardSigmoid;
        cfg.candidate = CandidateActivation::ClippedIdentity;
        Seq2Seq::init(&cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3))
    }

    #[test]
    fn ptq_round_trips_and_counts() {
        let m = student(32);
        let q = QuantModel::from_float(&m, 8).unwrap();
        q.validate().unwrap();
        assert_eq!(q.parameter_count(), 6627);
        assert_eq!(q.weight_bytes(), 6627);
        let d = q.dequantise();
        // Re-quantising the dequantised model is the identity.
        assert_eq!(QuantModel::from_float(&d, 8).unwrap(), q);
        assert_eq!(q.requantise(&d), q);
        for ((a, b), t) in m.tensors().iter().zip(d.tensors()).zip(q.tensors()) {
            // Half a grid step, the grid never finer than the state's 1/128.
            let half = 0.5 * 2f32.powi(t.exponent as i32 - 7);
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() <= half + 1e-7, "{x} {y} {half}");
            }
        }
    }

    #[test]
    fn refuses_the_wrong_model() {
        let t = Seq2Seq::<f32>::zeros(&Seq2SeqConfig::teacher(vec![8, 8]));
        assert!(QuantModel::from_float(&t, 8).is_err());
        let s = Seq2Seq::<f32>::zeros(&Seq2SeqConfig::student(8));
        let e = QuantModel::from_float(&s, 8).unwrap_err().to_string();
        assert!(e.contains("hard-sigmoid"), "{e}");
        assert!(QuantModel::from_float(&student(4), 17).is_err());
    }

    #[test]
    fn validate_names_the_field() {
        let mut q = QuantModel::from_float(&student(4), 6).unwrap();
        q.head_bias.codes[1] = 32;
        let e = q.validate().unwrap_err().to_string();
        assert!(e.contains("head_bias") && e.contains("32"), "{e}");
        let mut q = QuantModel::from_float(&student(4), 6).unwrap();
        q.encoder_recurrent.shape = [3, 12];
        assert!(q
            .validate()
            .unwrap_err()
            .to_string()
            .contains("encoder_recurrent"));
        let mut q = QuantModel::from_float(&student(4), 6).unwrap();
        q.decoder_bias.exponent = 4;
        assert!(q.validate().unwrap_err().to_string().contains("exponent"));
    }
}
