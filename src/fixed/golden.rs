//! The golden model: the whole per-pixel pipeline of docs/fixed-point.md in
//! integers only (raw counts in, tau / fraction codes out). The reference
//! the circuits are checked against, and the forward pass QAT trains
//! through.
//!
//! Pixels run in groups of [`LANES`] in lockstep, state laid out `[unit][lane]`,
//! so every weight is read once per group and the multiply-accumulates
//! vectorise across pixels. The accumulator type is i32 when the contract's
//! accumulator width fits (W <= 11 at H = 32), i64 otherwise; both give the
//! same integers because neither ever overflows.

use super::contract::{self, Format, Narrowing, Ops};
use super::quant::QuantModel;
use crate::data::GateGrid;
use anyhow::{bail, Result};
use ndarray::{Array2, Array3, ArrayView2, Axis};
use num_traits::{AsPrimitive, PrimInt, Signed};
use rayon::prelude::*;

/// Pixels per lockstep group.
pub const LANES: usize = 16;
// The AVX2 kernel holds 16 i32 lanes in two 256-bit registers.
const _: () = assert!(LANES == 16);

/// One pixel's outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PixelCodes {
    pub tau1: u32,
    pub tau2: u32,
    pub fraction: u32,
}

impl PixelCodes {
    pub fn lifetimes(&self) -> crate::lifetime::Lifetimes {
        crate::lifetime::Lifetimes {
            tau1: contract::tau_ns(self.tau1),
            tau2: contract::tau_ns(self.tau2),
            fraction: contract::fraction_value(self.fraction),
        }
    }
}

/// What one GRU step computed, per unit and lane (codes).
pub struct StepCodes<'a, T> {
    /// Decoder step (false: encoder).
    pub decoder: bool,
    pub step: usize,
    /// `[3H][LANES]`: z, r, c.
    pub gates: &'a [[T; LANES]],
    /// `[H][LANES]`: r * h.
    pub reset: &'a [[T; LANES]],
    /// `[H][LANES]`: the new state.
    pub state: &'a [[T; LANES]],
}

/// Events a caller can observe (QAT records them for the backward pass).
pub enum Event<'a, T> {
    Step(StepCodes<'a, T>),
    /// Head outputs of decoder step `step`, `[3][LANES]`.
    Head {
        step: usize,
        out: &'a [[T; LANES]],
    },
}

/// A caller watching the codes of a group run.
pub type Observer<'o> = &'o mut dyn FnMut(Event<'_, i64>);

/// One GRU layer's weights, pre-shifted onto the accumulator grid.
#[derive(Clone, Debug)]
struct Layer<T> {
    /// `[3H]`: K_j << e_K (encoder only).
    kernel: Vec<T>,
    /// `[3H][H]` row j contiguous: U_kj << e_U.
    recurrent: Vec<T>,
    /// `[3H]`: b_j << (W - 1 + e_b).
    bias: Vec<T>,
}

#[derive(Clone, Debug)]
struct Prepared<T> {
    encoder: Layer<T>,
    decoder: Layer<T>,
    /// `[3][H]`.
    head: Vec<T>,
    head_bias: Vec<T>,
}

/// A golden engine for one quantised model on one gate grid.
#[derive(Clone, Debug)]
pub struct Golden {
    pub model: QuantModel,
    pub fmt: Format,
    pub hidden: usize,
    pub gates: usize,
    /// THR[k] of section 6.
    pub thresholds: Vec<i64>,
    /// The grid's baseline window (section 1).
    pub baseline_gates: usize,
    /// The precision probe's extra narrowings (none in a build).
    pub narrowing: Narrowing,
    narrow: Option<Prepared<i32>>,
    wide: Prepared<i64>,
}

impl Golden {
    pub fn new(model: &QuantModel, grid: &GateGrid) -> Result<Golden> {
        model.validate()?;
        if grid.gates <= contract::BASELINE_GATES || grid.gates > contract::MAX_GATES {
            bail!(
                "the contract needs {}..={} gates, the model's grid has {}",
                contract::BASELINE_GATES + 1,
                contract::MAX_GATES,
                grid.gates
            );
        }
        grid.check_baseline()?;
        let fmt = model.format();
        let h = model.hidden;
        let wide = prepare::<i64>(model);
        // The i32 path: the accumulator fits, and every pre-shifted weight
        // and state fits an i16 (the AVX2 kernel multiplies 16-bit halves).
        let narrow = (fmt.acc_bits(h) <= 32 && fits_i16(&wide)).then(|| prepare::<i32>(model));
        Ok(Golden {
            model: model.clone(),
            fmt,
            hidden: h,
            gates: grid.gates,
            thresholds: contract::tau_thresholds(grid.gates, grid.dt_ns),
            baseline_gates: grid.baseline_gates,
            narrowing: Narrowing::default(),
            narrow,
            wide,
        })
    }

    /// The same engine with other weights of the same shape (QAT re-runs
    /// it every batch; the threshold table is kept).
    pub fn with_weights(&self, model: &QuantModel) -> Result<Golden> {
        model.validate()?;
        if model.format() != self.fmt || model.hidden != self.hidden {
            bail!(
                "replacement weights are {} units at {}, the engine is {} at {}",
                model.hidden,
                model.format().name(),
                self.hidden,
                self.fmt.name()
            );
        }
        let mut g = self.clone();
        g.wide = prepare::<i64>(model);
        g.narrow = self.narrow.is_some().then(|| prepare::<i32>(model));
        g.model = model.clone();
        Ok(g)
    }

    /// The same engine with the precision probe's narrowings
    /// (docs/precision.md); not what any circuit computes unless `n` is
    /// none.
    pub fn with_narrowing(mut self, n: Narrowing) -> Result<Golden> {
        n.validate(self.fmt)?;
        self.narrowing = n;
        Ok(self)
    }

    /// Preprocessed input codes of one pixel into `out` (section 1, then
    /// the probe's input narrowing).
    fn preprocess(&self, counts: &[u32], out: &mut [i64]) {
        contract::preprocess(self.fmt, self.baseline_gates, counts, out);
        if self.narrowing.input != 0 {
            let ops = self.fmt.ops_narrowed::<i64>(&self.narrowing);
            out.iter_mut().for_each(|v| *v = ops.input(*v));
        }
    }

    /// The same engine on i64 accumulators only (to cross-check the i32
    /// path: both must give the same integers).
    pub fn wide_only(mut self) -> Golden {
        self.narrow = None;
        self
    }

    /// Input codes of one pixel (section 1).
    pub fn input_codes(&self, counts: &[u32]) -> Vec<i64> {
        let mut x = vec![0; counts.len()];
        self.preprocess(counts, &mut x);
        x
    }

    /// Codes of every pixel of `counts` (`[n, G]`), in order, in parallel.
    pub fn run(&self, counts: ArrayView2<u32>) -> Result<Vec<PixelCodes>> {
        Ok(self.run_inner(counts, false)?.0)
    }

    /// Codes and the head outputs `[n, G, 3]` (debug channels).
    pub fn run_with_channels(
        &self,
        counts: ArrayView2<u32>,
    ) -> Result<(Vec<PixelCodes>, Array3<i64>)> {
        let (codes, ch) = self.run_inner(counts, true)?;
        Ok((codes, ch.expect("channels requested")))
    }

    /// Decoded channels `[n, G, 3]` as f32 (for the paper's metrics).
    pub fn decode_channels(&self, channels: &Array3<i64>) -> Array3<f32> {
        channels.mapv(|c| self.fmt.head_value(c) as f32)
    }

    fn run_inner(
        &self,
        counts: ArrayView2<u32>,
        keep_channels: bool,
    ) -> Result<(Vec<PixelCodes>, Option<Array3<i64>>)> {
        let (n, g) = counts.dim();
        if g != self.gates {
            bail!(
                "histograms have {g} gates, the model expects {}",
                self.gates
            );
        }
        let groups: Vec<usize> = (0..n.div_ceil(LANES)).collect();
        let results: Vec<(Vec<PixelCodes>, Option<Array3<i64>>)> = groups
            .par_iter()
            .map_init(
                || (vec![[0i64; LANES]; g], Scratch::default()),
                |(x, scratch), &gi| {
                    let lo = gi * LANES;
                    let hi = (lo + LANES).min(n);
                    let mut row = vec![0i64; g];
                    for (l, i) in (lo..hi).enumerate() {
                        let c = counts.index_axis(Axis(0), i);
                        let c: Vec<u32> = c.iter().copied().collect();
                        self.preprocess(&c, &mut row);
                        for (t, &v) in row.iter().enumerate() {
                            x[t][l] = v;
                        }
                    }
                    for xt in x.iter_mut() {
                        xt[hi - lo..].iter_mut().for_each(|v| *v = 0);
                    }
                    let mut ch = keep_channels.then(|| Array3::<i64>::zeros((hi - lo, g, 3)));
                    let codes = match ch.as_mut() {
                        Some(ch) => {
                            let mut keep = |e: Event<'_, i64>| {
                                if let Event::Head { step, out } = e {
                                    for l in 0..hi - lo {
                                        for c in 0..3 {
                                            ch[[l, step, c]] = out[c][l];
                                        }
                                    }
                                }
                            };
                            self.group(x, scratch, Some(&mut keep))
                        }
                        None => self.group(x, scratch, None),
                    };
                    (codes[..hi - lo].to_vec(), ch)
                },
            )
            .collect();
        let mut codes = Vec::with_capacity(n);
        let mut channels = keep_channels.then(|| Array3::<i64>::zeros((n, g, 3)));
        let mut at = 0;
        for (c, ch) in results {
            if let (Some(all), Some(ch)) = (channels.as_mut(), ch) {
                all.slice_mut(ndarray::s![at..at + ch.dim().0, .., ..])
                    .assign(&ch);
            }
            at += c.len();
            codes.extend(c);
        }
        Ok((codes, channels))
    }

    /// One group of [`LANES`] pixels from their input codes `x[t][lane]`.
    /// `observe`, when given, sees every step's codes and every head output
    /// (widened to i64).
    pub fn group(
        &self,
        x: &[[i64; LANES]],
        scratch: &mut Scratch,
        observe: Option<Observer<'_>>,
    ) -> [PixelCodes; LANES] {
        match &self.narrow {
            Some(p) => dispatch_narrow(self, p, x, &mut scratch.narrow, observe),
            None => run_group(self, &self.wide, x, &mut scratch.wide, observe),
        }
    }

    /// One pixel: codes and head outputs `[G][3]`.
    pub fn pixel(&self, counts: &[u32]) -> Result<(PixelCodes, Array2<i64>)> {
        let a = Array2::from_shape_vec((1, counts.len()), counts.to_vec())?;
        let (c, ch) = self.run_with_channels(a.view())?;
        Ok((c[0], ch.index_axis(Axis(0), 0).to_owned()))
    }

    /// Whether the fast i32 accumulators are used.
    pub fn uses_i32(&self) -> bool {
        self.narrow.is_some()
    }
}

/// Per-thread buffers.
#[derive(Default)]
pub struct Scratch {
    narrow: Buffers<i32>,
    wide: Buffers<i64>,
}

#[derive(Default)]
struct Buffers<T> {
    h: Vec<[T; LANES]>,
    gates: Vec<[T; LANES]>,
    reset: Vec<[T; LANES]>,
    next: Vec<[T; LANES]>,
    head: Vec<[T; LANES]>,
}

impl<T: PrimInt> Buffers<T> {
    fn ensure(&mut self, h: usize) {
        let z = [T::zero(); LANES];
        self.h = vec![z; h];
        self.gates = vec![z; 3 * h];
        self.reset = vec![z; h];
        self.next = vec![z; h];
        self.head = vec![z; 3];
    }
}

fn prepare<T: AccInt>(m: &QuantModel) -> Prepared<T>
where
    i64: AsPrimitive<T>,
{
    let w1 = m.format().bias_shift();
    let shifted = |t: &super::quant::QuantTensor, extra: u32| -> Vec<T> {
        t.codes
            .iter()
            .map(|&c| ((c as i64) << (t.exponent + extra)).as_())
            .collect()
    };
    let transpose = |t: &super::quant::QuantTensor| -> Vec<T> {
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let v = shifted(t, 0);
        let mut out = vec![T::zero(); rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = v[r * cols + c];
            }
        }
        out
    };
    Prepared {
        encoder: Layer {
            kernel: shifted(&m.encoder_kernel, 0),
            recurrent: transpose(&m.encoder_recurrent),
            bias: shifted(&m.encoder_bias, w1),
        },
        decoder: Layer {
            kernel: Vec::new(),
            recurrent: transpose(&m.decoder_recurrent),
            bias: shifted(&m.decoder_bias, w1),
        },
        head: transpose(&m.head_kernel),
        head_bias: shifted(&m.head_bias, w1),
    }
}

/// Whether every multiplied weight of `p` fits an i16 (states always do:
/// |code| <= 2^15 - 1).
fn fits_i16(p: &Prepared<i64>) -> bool {
    [&p.encoder.recurrent, &p.decoder.recurrent, &p.head]
        .iter()
        .all(|v| v.iter().all(|w| w.abs() <= i16::MAX as i64))
}

fn dispatch_narrow(
    g: &Golden,
    p: &Prepared<i32>,
    x: &[[i64; LANES]],
    buf: &mut Buffers<i32>,
    observe: Option<Observer<'_>>,
) -> [PixelCodes; LANES] {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the
            // function is the generic group loop compiled with AVX2 enabled.
            return unsafe { run_group_avx2(g, p, x, buf, observe) };
        }
    }
    run_group(g, p, x, buf, observe)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_group_avx2(
    g: &Golden,
    p: &Prepared<i32>,
    x: &[[i64; LANES]],
    buf: &mut Buffers<i32>,
    observe: Option<Observer<'_>>,
) -> [PixelCodes; LANES] {
    run_group(g, p, x, buf, observe)
}

/// Accumulator integer types of the golden model.
pub trait AccInt: PrimInt + Signed + AsPrimitive<i64> + Send + Sync + 'static
where
    i64: AsPrimitive<Self>,
{
    /// Multiply-accumulate one weight row against `[H][LANES]` states:
    /// acc[l] += sum_k row[k] * states[k][l].
    #[inline(always)]
    fn mac_row(acc: &mut [Self; LANES], row: &[Self], states: &[[Self; LANES]]) {
        for (&w, s) in row.iter().zip(states) {
            for (a, &v) in acc.iter_mut().zip(s) {
                *a = *a + w * v;
            }
        }
    }
}

impl AccInt for i64 {}

impl AccInt for i32 {
    #[inline(always)]
    fn mac_row(acc: &mut [i32; LANES], row: &[i32], states: &[[i32; LANES]]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 is present (checked above).
                unsafe { mac_row_avx2(acc, row, states) };
                return;
            }
        }
        for (&w, s) in row.iter().zip(states) {
            for (a, &v) in acc.iter_mut().zip(s) {
                *a += w * v;
            }
        }
    }
}

/// The i32 multiply-accumulate with AVX2: the weight broadcast, 16 lanes
/// in two registers. Weights and states both fit an i16 on this path, so
/// vpmaddwd with the weight in the low half of each 32-bit lane (high half
/// 0) gives the exact product h * w per lane (the state's high half, its
/// sign extension, meets the 0): one fast instruction instead of vpmulld.
/// The contract's accumulator width guarantees the sums never overflow.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mac_row_avx2(acc: &mut [i32; LANES], row: &[i32], states: &[[i32; LANES]]) {
    use std::arch::x86_64::*;
    let p = acc.as_mut_ptr() as *mut __m256i;
    let (mut a0, mut a1) = (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)));
    for (&w, s) in row.iter().zip(states) {
        let wv = _mm256_set1_epi32(w & 0xffff);
        let sp = s.as_ptr() as *const __m256i;
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_loadu_si256(sp), wv));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_loadu_si256(sp.add(1)), wv));
    }
    _mm256_storeu_si256(p, a0);
    _mm256_storeu_si256(p.add(1), a1);
}

/// The encoder (x = Some) or decoder step of section 4 on one group.
#[inline(always)]
fn gru_step<T: AccInt>(ops: &Ops<T>, layer: &Layer<T>, x: Option<&[T; LANES]>, b: &mut Buffers<T>)
where
    i64: AsPrimitive<T>,
{
    let h = b.h.len();
    let rows = |j: usize| &layer.recurrent[j * h..(j + 1) * h];
    // z and r rows.
    for j in 0..2 * h {
        let mut acc = [layer.bias[j]; LANES];
        if let Some(x) = x {
            let k = layer.kernel[j];
            for l in 0..LANES {
                acc[l] = acc[l] + k * x[l];
            }
        }
        T::mac_row(&mut acc, rows(j), &b.h);
        let out = &mut b.gates[j];
        for l in 0..LANES {
            out[l] = ops.gate(acc[l]);
        }
    }
    // r * h back onto the state grid.
    for k in 0..h {
        for l in 0..LANES {
            b.reset[k][l] = ops.reset(b.gates[h + k][l], b.h[k][l]);
        }
    }
    // Candidate rows and the state update.
    for j in 0..h {
        let mut acc = [layer.bias[2 * h + j]; LANES];
        if let Some(x) = x {
            let k = layer.kernel[2 * h + j];
            for l in 0..LANES {
                acc[l] = acc[l] + k * x[l];
            }
        }
        T::mac_row(&mut acc, rows(2 * h + j), &b.reset);
        for (l, &a) in acc.iter().enumerate() {
            let c = ops.candidate(a);
            b.gates[2 * h + j][l] = c;
            b.next[j][l] = ops.update(b.gates[j][l], b.h[j][l], c);
        }
    }
    std::mem::swap(&mut b.h, &mut b.next);
}

/// Encoder, decoder, head and extraction for one group.
#[inline(always)]
fn run_group<T: AccInt>(
    g: &Golden,
    p: &Prepared<T>,
    x: &[[i64; LANES]],
    b: &mut Buffers<T>,
    mut observe: Option<Observer<'_>>,
) -> [PixelCodes; LANES]
where
    i64: AsPrimitive<T>,
{
    let (hid, steps) = (g.hidden, g.gates);
    let ops = g.fmt.ops_narrowed::<T>(&g.narrowing);
    if b.h.len() != hid {
        b.ensure(hid);
    }
    b.h.iter_mut().for_each(|v| *v = [T::zero(); LANES]);
    let widen =
        |v: &[[T; LANES]]| -> Vec<[i64; LANES]> { v.iter().map(|r| r.map(|e| e.as_())).collect() };
    let report =
        |obs: &mut dyn FnMut(Event<'_, i64>), decoder: bool, step: usize, b: &Buffers<T>| {
            let (gates, reset, state) = (widen(&b.gates), widen(&b.reset), widen(&b.h));
            obs(Event::Step(StepCodes {
                decoder,
                step,
                gates: &gates,
                reset: &reset,
                state: &state,
            }));
        };
    for (t, xt) in x.iter().enumerate().take(steps) {
        let xt: [T; LANES] = xt.map(|v| v.as_());
        gru_step(&ops, &p.encoder, Some(&xt), b);
        if let Some(obs) = observe.as_deref_mut() {
            report(obs, false, t, b);
        }
    }
    let mut amp = [[0i64; LANES]; 3];
    let mut sum = [[0i64; LANES]; 3];
    for t in 0..steps {
        gru_step(&ops, &p.decoder, None, b);
        if let Some(obs) = observe.as_deref_mut() {
            report(obs, true, t, b);
        }
        for c in 0..3 {
            let mut acc = [p.head_bias[c]; LANES];
            T::mac_row(&mut acc, &p.head[c * hid..(c + 1) * hid], &b.h);
            for l in 0..LANES {
                let o: i64 = ops.head(acc[l]).as_();
                b.head[c][l] = o.as_();
                if t == 0 {
                    amp[c][l] = o;
                }
                sum[c][l] += o;
            }
        }
        if let Some(obs) = observe.as_deref_mut() {
            let head = widen(&b.head);
            obs(Event::Head {
                step: t,
                out: &head,
            });
        }
    }
    std::array::from_fn(|l| PixelCodes {
        tau1: contract::tau_code(&g.thresholds, amp[1][l], sum[1][l]),
        tau2: contract::tau_code(&g.thresholds, amp[2][l], sum[2][l]),
        fraction: contract::fraction_code(amp[1][l], amp[2][l]),
    })
}
