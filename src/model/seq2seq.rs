//! The GRU encoder-decoder: an encoder stack reads the preprocessed decay
//! one gate per step; its final states initialise a decoder stack that
//! runs the same number of steps on zero input; a Dense(3) head on every
//! decoder step gives the three channels (full decay, short, long).
//!
//! The teacher and the student are two configurations of this one model.

use super::gru::{
    flush_denormals, BackwardScratch, CandidateActivation, GateActivation, Gru, GruCache,
};
use anyhow::{bail, Result};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, NdFloat};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Output channels of the head.
pub const CHANNELS: usize = 3;

/// Shape and semantics of a Seq2Seq.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    /// Units of each layer, bottom first; the decoder mirrors the encoder
    /// so that encoder layer i's final state initialises decoder layer i.
    pub hidden: Vec<usize>,
    pub reset_after: bool,
    pub gate: GateActivation,
    pub candidate: CandidateActivation,
}

impl Seq2SeqConfig {
    /// The paper's teacher: 2 x 128 units, Keras defaults (reset_after).
    pub fn teacher(hidden: Vec<usize>) -> Self {
        Seq2SeqConfig {
            hidden,
            reset_after: true,
            gate: GateActivation::Sigmoid,
            candidate: CandidateActivation::Tanh,
        }
    }

    /// The paper's Seq2SeqLite shape: one layer, reset_after = false.
    pub fn student(hidden: usize) -> Self {
        Seq2SeqConfig {
            hidden: vec![hidden],
            reset_after: false,
            gate: GateActivation::Sigmoid,
            candidate: CandidateActivation::Tanh,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.hidden.is_empty() || self.hidden.len() > 8 {
            bail!("model needs 1..=8 GRU layers, got {}", self.hidden.len());
        }
        if let Some(h) = self.hidden.iter().find(|&&h| h == 0 || h > 4096) {
            bail!("GRU layer size {h} is out of range (1..=4096)");
        }
        Ok(())
    }

    pub fn describe(&self) -> String {
        let sizes: Vec<String> = self.hidden.iter().map(|h| h.to_string()).collect();
        format!(
            "GRU {} (reset_after={}, {:?}/{:?})",
            sizes.join("x"),
            self.reset_after,
            self.gate,
            self.candidate
        )
    }
}

/// Dense layer applied to every decoder step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dense<T> {
    /// `[H, 3]`.
    pub kernel: Array2<T>,
    /// `[1, 3]`.
    pub bias: Array2<T>,
}

/// Weights of a Seq2Seq (also used, zeroed, to hold its gradients).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seq2Seq<T> {
    pub config: Seq2SeqConfig,
    pub encoder: Vec<Gru<T>>,
    pub decoder: Vec<Gru<T>>,
    pub head: Dense<T>,
}

/// Per-thread buffers of one forward/backward pass, reused across batches.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    encoder: Vec<GruCache<T>>,
    decoder: Vec<GruCache<T>>,
    encoder_back: Vec<BackwardScratch<T>>,
    decoder_back: Vec<BackwardScratch<T>>,
    /// `[T, B, H]` gradient w.r.t. the top decoder layer's outputs.
    dh_top: Array3<T>,
    /// `[T, B, 3]` head output.
    pub output: Array3<T>,
    /// `[T, B, 3]` loss gradient w.r.t. the head output.
    pub d_output: Array3<T>,
}

impl<T: NdFloat> Default for Workspace<T> {
    fn default() -> Self {
        Workspace {
            encoder: Vec::new(),
            decoder: Vec::new(),
            encoder_back: Vec::new(),
            decoder_back: Vec::new(),
            dh_top: Array3::zeros((0, 0, 0)),
            output: Array3::zeros((0, 0, 0)),
            d_output: Array3::zeros((0, 0, 0)),
        }
    }
}

impl<T: NdFloat> Workspace<T> {
    /// The per-layer caches (encoder, decoder) and the head output, for a
    /// forward pass computed outside [`Seq2Seq::forward`] (QAT).
    pub fn external(
        &mut self,
        layers: usize,
        steps: usize,
        batch: usize,
    ) -> (&mut [GruCache<T>], &mut [GruCache<T>], &mut Array3<T>) {
        self.encoder.resize_with(layers, Default::default);
        self.decoder.resize_with(layers, Default::default);
        if self.output.dim() != (steps, batch, CHANNELS) {
            self.output = Array3::zeros((steps, batch, CHANNELS));
        }
        (&mut self.encoder, &mut self.decoder, &mut self.output)
    }
}

impl<T: NdFloat> Seq2Seq<T> {
    /// All-zero weights of the given shape.
    pub fn zeros(config: &Seq2SeqConfig) -> Self {
        let layer = |input, hidden| {
            Gru::zeros(
                input,
                hidden,
                config.reset_after,
                config.gate,
                config.candidate,
            )
        };
        let mut encoder = Vec::new();
        let mut input = 1;
        for &h in &config.hidden {
            encoder.push(layer(input, h));
            input = h;
        }
        // The decoder's input is all zeros, of width 1 as in Keras.
        let decoder = encoder.clone();
        let last = *config.hidden.last().expect("validated: at least one layer");
        Seq2Seq {
            config: config.clone(),
            encoder,
            decoder,
            head: Dense {
                kernel: Array2::zeros((last, CHANNELS)),
                bias: Array2::zeros((1, CHANNELS)),
            },
        }
    }

    /// Keras initialisation: Glorot-uniform kernels, orthogonal recurrent
    /// kernels, zero biases.
    pub fn init<R: Rng>(config: &Seq2SeqConfig, rng: &mut R) -> Self {
        let mut m = Self::zeros(config);
        for gru in m.encoder.iter_mut().chain(m.decoder.iter_mut()) {
            glorot(&mut gru.kernel, rng);
            orthogonal(&mut gru.recurrent_kernel, rng);
        }
        glorot(&mut m.head.kernel, rng);
        m
    }

    pub fn parameter_count(&self) -> usize {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .map(Gru::parameter_count)
            .sum::<usize>()
            + self.head.kernel.len()
            + self.head.bias.len()
    }

    /// Multiply-accumulates per pixel of `steps` gates (inference), skipping
    /// the decoder's zero input.
    pub fn macs_per_pixel(&self, steps: usize) -> usize {
        let enc: usize = self
            .encoder
            .iter()
            .map(|g| g.kernel.len() + g.recurrent_kernel.len())
            .sum();
        let dec: usize = self
            .decoder
            .iter()
            .enumerate()
            .map(|(i, g)| g.recurrent_kernel.len() + if i > 0 { g.kernel.len() } else { 0 })
            .sum();
        steps * (enc + dec + self.head.kernel.len())
    }

    /// Every parameter tensor, in a fixed order (optimiser, clipping, checks).
    pub fn tensors(&self) -> Vec<&Array2<T>> {
        let mut v = Vec::new();
        for g in self.encoder.iter().chain(&self.decoder) {
            v.extend([&g.kernel, &g.recurrent_kernel, &g.bias]);
        }
        v.extend([&self.head.kernel, &self.head.bias]);
        v
    }

    pub fn tensors_mut(&mut self) -> Vec<&mut Array2<T>> {
        let mut v = Vec::new();
        for g in self.encoder.iter_mut().chain(self.decoder.iter_mut()) {
            v.extend([&mut g.kernel, &mut g.recurrent_kernel, &mut g.bias]);
        }
        v.extend([&mut self.head.kernel, &mut self.head.bias]);
        v
    }

    /// Names matching [`Self::tensors`], for messages and reports.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (part, stack) in [("encoder", &self.encoder), ("decoder", &self.decoder)] {
            for i in 0..stack.len() {
                for t in ["kernel", "recurrent_kernel", "bias"] {
                    v.push(format!("{part}.{i}.{t}"));
                }
            }
        }
        v.extend(["head.kernel".to_string(), "head.bias".to_string()]);
        v
    }

    /// Check that every tensor has the shape its config implies (a model
    /// file is untrusted input).
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let expect = Self::zeros(&self.config);
        if self.encoder.len() != expect.encoder.len() || self.decoder.len() != expect.decoder.len()
        {
            bail!(
                "model has {} encoder and {} decoder layers, its config says {}",
                self.encoder.len(),
                self.decoder.len(),
                expect.encoder.len()
            );
        }
        for ((name, a), b) in self
            .tensor_names()
            .iter()
            .zip(self.tensors())
            .zip(expect.tensors())
        {
            if a.dim() != b.dim() {
                bail!(
                    "weight tensor {name} has shape {:?}, the config implies {:?}",
                    a.dim(),
                    b.dim()
                );
            }
            if a.iter().any(|v| !v.is_finite()) {
                bail!("weight tensor {name} holds a non-finite value");
            }
        }
        for g in self.encoder.iter().chain(&self.decoder) {
            if g.reset_after != self.config.reset_after
                || g.gate != self.config.gate
                || g.candidate != self.config.candidate
            {
                bail!("a GRU layer's activations or reset_after disagree with the model config");
            }
        }
        Ok(())
    }

    /// Forward pass of a batch. `x` is `[T, B, 1]` (time-major, preprocessed
    /// decays); the head output `[T, B, 3]` lands in `ws.output`.
    pub fn forward(&self, x: ArrayView3<T>, ws: &mut Workspace<T>) {
        flush_denormals();
        let (steps, batch, _) = x.dim();
        let layers = self.encoder.len();
        ws.encoder.resize_with(layers, Default::default);
        ws.decoder.resize_with(layers, Default::default);
        for i in 0..layers {
            let h0 = Array2::zeros((batch, self.encoder[i].hidden()));
            let (below, rest) = ws.encoder.split_at_mut(i);
            let input = if i == 0 {
                x.view()
            } else {
                below[i - 1].outputs()
            };
            self.encoder[i].forward(Some(input), steps, h0.view(), &mut rest[0]);
        }
        for i in 0..layers {
            let (below, rest) = ws.decoder.split_at_mut(i);
            let input = if i == 0 {
                None
            } else {
                Some(below[i - 1].outputs())
            };
            self.decoder[i].forward(input, steps, ws.encoder[i].last(), &mut rest[0]);
        }
        let top = ws.decoder[layers - 1].outputs();
        let hid = top.dim().2;
        let top2 = top
            .into_shape_with_order((steps * batch, hid))
            .expect("contiguous");
        if ws.output.dim() != (steps, batch, CHANNELS) {
            ws.output = Array3::zeros((steps, batch, CHANNELS));
        }
        let mut out2 = ws
            .output
            .view_mut()
            .into_shape_with_order((steps * batch, CHANNELS))
            .expect("contiguous");
        out2.assign(&self.head.bias.row(0));
        general_mat_mul(T::one(), &top2, &self.head.kernel, T::one(), &mut out2);
    }

    /// Backward pass after [`Self::forward`] on the same workspace, with
    /// the loss gradient w.r.t. the head output in `ws.d_output`
    /// (`[T, B, 3]`). Gradients are added into `grads`.
    pub fn backward(&self, x: ArrayView3<T>, ws: &mut Workspace<T>, grads: &mut Seq2Seq<T>) {
        let (steps, batch, _) = x.dim();
        let layers = self.encoder.len();
        let Workspace {
            encoder,
            decoder,
            encoder_back,
            decoder_back,
            dh_top,
            d_output,
            ..
        } = ws;
        encoder_back.resize_with(layers, Default::default);
        decoder_back.resize_with(layers, Default::default);
        let top = decoder[layers - 1].outputs();
        let hid = top.dim().2;
        let top2 = top
            .into_shape_with_order((steps * batch, hid))
            .expect("contiguous");
        let d2 = d_output
            .view()
            .into_shape_with_order((steps * batch, CHANNELS))
            .expect("d_output is contiguous");
        general_mat_mul(T::one(), &top2.t(), &d2, T::one(), &mut grads.head.kernel);
        let mut hb = grads.head.bias.row_mut(0);
        hb += &d2.sum_axis(Axis(0));
        if dh_top.dim() != (steps, batch, hid) {
            *dh_top = Array3::zeros((steps, batch, hid));
        }
        {
            let mut dh2 = dh_top
                .view_mut()
                .into_shape_with_order((steps * batch, hid))
                .expect("contiguous");
            general_mat_mul(T::one(), &d2, &self.head.kernel.t(), T::zero(), &mut dh2);
        }
        // Decoder, top down; each layer's initial-state gradient goes to the
        // matching encoder layer's final state.
        let mut dh_enc_last: Vec<Array2<T>> = vec![Array2::zeros((0, 0)); layers];
        for i in (0..layers).rev() {
            let input = if i == 0 {
                None
            } else {
                Some(decoder[i - 1].outputs())
            };
            let (lower, upper) = decoder_back.split_at_mut(i + 1);
            let dseq = if i + 1 == layers {
                dh_top.view()
            } else {
                upper[0].dx.view()
            };
            dh_enc_last[i] = self.decoder[i].backward(
                input,
                &decoder[i],
                Some(dseq),
                None,
                &mut grads.decoder[i],
                &mut lower[i],
            );
        }
        for i in (0..layers).rev() {
            let input = if i == 0 {
                x.view()
            } else {
                encoder[i - 1].outputs()
            };
            let (lower, upper) = encoder_back.split_at_mut(i + 1);
            let dseq = if i + 1 == layers {
                None
            } else {
                Some(upper[0].dx.view())
            };
            self.encoder[i].backward(
                Some(input),
                &encoder[i],
                dseq,
                Some(dh_enc_last[i].view()),
                &mut grads.encoder[i],
                &mut lower[i],
            );
        }
    }

    /// Add `other * scale` into `self`, tensor by tensor.
    pub fn add_scaled(&mut self, other: &Seq2Seq<T>, scale: T) {
        for (a, b) in self.tensors_mut().into_iter().zip(other.tensors()) {
            a.scaled_add(scale, b);
        }
    }

    pub fn fill_zero(&mut self) {
        for a in self.tensors_mut() {
            a.fill(T::zero());
        }
    }

    /// Convert the weights to another float type.
    pub fn cast<U: NdFloat>(&self) -> Seq2Seq<U> {
        let c = |a: &Array2<T>| a.mapv(|v| U::from(v).expect("finite float converts"));
        let g = |l: &Gru<T>| Gru {
            kernel: c(&l.kernel),
            recurrent_kernel: c(&l.recurrent_kernel),
            bias: c(&l.bias),
            reset_after: l.reset_after,
            gate: l.gate,
            candidate: l.candidate,
        };
        Seq2Seq {
            config: self.config.clone(),
            encoder: self.encoder.iter().map(g).collect(),
            decoder: self.decoder.iter().map(g).collect(),
            head: Dense {
                kernel: c(&self.head.kernel),
                bias: c(&self.head.bias),
            },
        }
    }
}

impl Seq2Seq<f32> {
    /// Channels `[n, G, 3]` of preprocessed decays `[n, G]`, in parallel
    /// chunks of pixels.
    pub fn predict(&self, inputs: ArrayView2<f32>) -> Array3<f32> {
        use rayon::prelude::*;
        const CHUNK: usize = 64;
        let (n, steps) = inputs.dim();
        let mut out = Array3::<f32>::zeros((n, steps, CHANNELS));
        out.axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .zip(inputs.axis_chunks_iter(Axis(0), CHUNK))
            .for_each_init(Workspace::default, |ws, (mut o, x)| {
                let x = time_major(x);
                self.forward(x.view(), ws);
                o.assign(&ws.output.view().permuted_axes([1, 0, 2]));
            });
        out
    }
}

/// `[B, T]` pixel-major decays to the `[T, B, 1]` layout the layers read.
pub fn time_major<T: NdFloat>(x: ArrayView2<T>) -> Array3<T> {
    let (b, t) = x.dim();
    let mut out = Array3::zeros((t, b, 1));
    out.index_axis_mut(Axis(2), 0).assign(&x.t());
    out
}

fn glorot<T: NdFloat, R: Rng>(w: &mut Array2<T>, rng: &mut R) {
    let (fan_in, fan_out) = w.dim();
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    w.mapv_inplace(|_| T::from(rng.gen_range(-limit..limit)).unwrap());
}

/// Rows (or columns, whichever are fewer) orthonormal, as Keras'
/// Orthogonal initialiser: Gram-Schmidt on a Gaussian matrix.
fn orthogonal<T: NdFloat, R: Rng>(w: &mut Array2<T>, rng: &mut R) {
    let (r, c) = w.dim();
    let transpose = r > c;
    let (n, len) = if transpose { (c, r) } else { (r, c) };
    let mut q = Array2::<f64>::zeros((n, len));
    for i in 0..n {
        let mut v: Vec<f64> = (0..len).map(|_| StandardNormal.sample(rng)).collect();
        for j in 0..i {
            let qj = q.row(j);
            let d: f64 = v.iter().zip(qj.iter()).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(qj.iter()).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-12);
        q.row_mut(i)
            .iter_mut()
            .zip(&v)
            .for_each(|(a, b)| *a = b / norm);
    }
    let q = if transpose { q.reversed_axes() } else { q };
    w.zip_mut_with(&q, |a, &b| *a = T::from(b).unwrap());
}
