//! One GRU layer with Keras semantics, batched over pixels, forward and
//! backpropagation through time. Generic over the float type so the
//! gradient check can run in f64 while training runs in f32.
//!
//! Keras GRU, gates in the order (z, r, h) along the 3H axis:
//!
//! reset_after = false (the student, and the hardware):
//!   z = g(x Wz + h Uz + bz),  r = g(x Wr + h Ur + br)
//!   c = f(x Wh + (r * h) Uh + bh)
//! reset_after = true (Keras' default, the paper's teacher):
//!   z = g(x Wz + bz + h Uz + b'z),  r = g(x Wr + br + h Ur + b'r)
//!   c = f(x Wh + bh + r * (h Uh + b'h))
//! both: h' = z * h + (1 - z) * c
//!
//! g is the gate activation, f the candidate activation.

use ndarray::linalg::general_mat_mul;
use ndarray::{
    s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, NdFloat,
};
use serde::{Deserialize, Serialize};

/// Recurrent (gate) activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateActivation {
    /// Logistic sigmoid (Keras' default recurrent activation).
    Sigmoid,
    /// clip(0.5 x + 0.5, 0, 1), the paper's quantised student.
    HardSigmoid,
}

/// Candidate activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CandidateActivation {
    Tanh,
    /// clip(x, -1, 1), the paper's quantised student.
    ClippedIdentity,
}

impl GateActivation {
    #[inline]
    pub fn apply<T: NdFloat>(self, x: T) -> T {
        match self {
            GateActivation::Sigmoid => T::one() / (T::one() + (-x).exp()),
            GateActivation::HardSigmoid => {
                let half = T::from(0.5).unwrap();
                (half * x + half).max(T::zero()).min(T::one())
            }
        }
    }

    /// Derivative expressed through the output y = g(x).
    #[inline]
    fn grad_from_output<T: NdFloat>(self, y: T) -> T {
        match self {
            GateActivation::Sigmoid => y * (T::one() - y),
            GateActivation::HardSigmoid => {
                if y > T::zero() && y < T::one() {
                    T::from(0.5).unwrap()
                } else {
                    T::zero()
                }
            }
        }
    }
}

impl CandidateActivation {
    #[inline]
    pub fn apply<T: NdFloat>(self, x: T) -> T {
        match self {
            CandidateActivation::Tanh => x.tanh(),
            CandidateActivation::ClippedIdentity => x.max(-T::one()).min(T::one()),
        }
    }

    /// Derivative expressed through the output y = f(x).
    #[inline]
    fn grad_from_output<T: NdFloat>(self, y: T) -> T {
        match self {
            CandidateActivation::Tanh => T::one() - y * y,
            CandidateActivation::ClippedIdentity => {
                if y > -T::one() && y < T::one() {
                    T::one()
                } else {
                    T::zero()
                }
            }
        }
    }
}

/// Weights of one GRU layer in Keras layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gru<T> {
    /// `[input, 3H]`.
    pub kernel: Array2<T>,
    /// `[H, 3H]`.
    pub recurrent_kernel: Array2<T>,
    /// `[1, 3H]` (reset_after = false) or `[2, 3H]` (input bias, recurrent bias).
    pub bias: Array2<T>,
    pub reset_after: bool,
    pub gate: GateActivation,
    pub candidate: CandidateActivation,
}

/// What the backward pass needs from the forward pass, time-major.
#[derive(Clone, Debug)]
pub struct GruCache<T> {
    /// `[T, B, 3H]`: x W + input bias.
    xproj: Array3<T>,
    /// `[T, B, 3H]`: z, r and the candidate c after activation.
    gates: Array3<T>,
    /// `[T, B, H]`: h Uh + b'h (reset_after) or r * h (reset_before).
    inner: Array3<T>,
    /// `[T + 1, B, H]`: h[0] is the initial state, h[t + 1] the output of step t.
    pub h: Array3<T>,
    /// `[B, 3H]` scratch for the recurrent product.
    rec: Array2<T>,
}

impl<T: NdFloat> Default for GruCache<T> {
    fn default() -> Self {
        GruCache {
            xproj: Array3::zeros((0, 0, 0)),
            gates: Array3::zeros((0, 0, 0)),
            inner: Array3::zeros((0, 0, 0)),
            h: Array3::zeros((0, 0, 0)),
            rec: Array2::zeros((0, 0)),
        }
    }
}

impl<T: NdFloat> GruCache<T> {
    fn ensure(&mut self, steps: usize, batch: usize, hidden: usize) {
        if self.h.dim() != (steps + 1, batch, hidden) {
            self.xproj = Array3::zeros((steps, batch, 3 * hidden));
            self.gates = Array3::zeros((steps, batch, 3 * hidden));
            self.inner = Array3::zeros((steps, batch, hidden));
            self.h = Array3::zeros((steps + 1, batch, hidden));
            self.rec = Array2::zeros((batch, 3 * hidden));
        }
    }

    /// Size the cache for `steps` x `batch` x `hidden` and hand out what a
    /// forward pass computed outside this module must write for the
    /// backward pass of a reset_after = false layer (QAT writes the golden
    /// model's decoded codes here): gates `[T, B, 3H]` (z, r, c after
    /// activation), inner `[T, B, H]` (r * h) and states `[T + 1, B, H]`
    /// (h[0] the initial state).
    pub fn external(
        &mut self,
        steps: usize,
        batch: usize,
        hidden: usize,
    ) -> (
        ArrayViewMut3<'_, T>,
        ArrayViewMut3<'_, T>,
        ArrayViewMut3<'_, T>,
    ) {
        self.ensure(steps, batch, hidden);
        (
            self.gates.view_mut(),
            self.inner.view_mut(),
            self.h.view_mut(),
        )
    }

    /// Outputs of all steps, `[T, B, H]`.
    pub fn outputs(&self) -> ArrayView3<'_, T> {
        self.h.slice(s![1.., .., ..])
    }

    /// Final state, `[B, H]`.
    pub fn last(&self) -> ArrayView2<'_, T> {
        self.h.index_axis(Axis(0), self.h.dim().0 - 1)
    }
}

impl<T: NdFloat> Gru<T> {
    pub fn zeros(
        input: usize,
        hidden: usize,
        reset_after: bool,
        gate: GateActivation,
        candidate: CandidateActivation,
    ) -> Self {
        Gru {
            kernel: Array2::zeros((input, 3 * hidden)),
            recurrent_kernel: Array2::zeros((hidden, 3 * hidden)),
            bias: Array2::zeros((if reset_after { 2 } else { 1 }, 3 * hidden)),
            reset_after,
            gate,
            candidate,
        }
    }

    pub fn hidden(&self) -> usize {
        self.recurrent_kernel.nrows()
    }

    pub fn input(&self) -> usize {
        self.kernel.nrows()
    }

    pub fn parameter_count(&self) -> usize {
        self.kernel.len() + self.recurrent_kernel.len() + self.bias.len()
    }

    /// Run the layer over a sequence. `x` is `[T, B, input]`, or `None` for
    /// an all-zero input (the decoder), which skips the input product.
    /// `h0` is `[B, H]`. The cache is (re)sized as needed and holds every
    /// step's state afterwards.
    pub fn forward(
        &self,
        x: Option<ArrayView3<T>>,
        steps: usize,
        h0: ArrayView2<T>,
        cache: &mut GruCache<T>,
    ) {
        let hid = self.hidden();
        let batch = h0.nrows();
        cache.ensure(steps, batch, hid);
        // Input projection of all steps at once: one large product.
        {
            let mut xp = cache
                .xproj
                .view_mut()
                .into_shape_with_order((steps * batch, 3 * hid))
                .expect("xproj is contiguous");
            match x {
                Some(x) => {
                    assert_eq!(x.dim(), (steps, batch, self.input()), "GRU input shape");
                    let x2 = x
                        .into_shape_with_order((steps * batch, self.input()))
                        .expect("GRU input must be contiguous");
                    general_mat_mul(T::one(), &x2, &self.kernel, T::zero(), &mut xp);
                    xp += &self.bias.row(0);
                }
                None => xp.assign(&self.bias.row(0)),
            }
        }
        cache.h.index_axis_mut(Axis(0), 0).assign(&h0);
        for t in 0..steps {
            self.step(cache, t);
        }
    }

    fn step(&self, cache: &mut GruCache<T>, t: usize) {
        let hid = self.hidden();
        let (h_prev, mut h_next) = {
            let (a, b) = cache.h.view_mut().split_at(Axis(0), t + 1);
            (a.index_axis_move(Axis(0), t), b.index_axis_move(Axis(0), 0))
        };
        let xproj = cache.xproj.index_axis(Axis(0), t);
        let mut gates = cache.gates.index_axis_mut(Axis(0), t);
        let mut inner = cache.inner.index_axis_mut(Axis(0), t);
        let rec = &mut cache.rec;
        let (g, f) = (self.gate, self.candidate);
        let u = &self.recurrent_kernel;
        if self.reset_after {
            general_mat_mul(T::one(), &h_prev, u, T::zero(), rec);
            *rec += &self.bias.row(1);
            for_rows(
                [&xproj.view(), &rec.view(), &h_prev.view()],
                [&mut gates, &mut inner, &mut h_next],
                |[xp, rc, hp], [gt, inn, hn]| {
                    for j in 0..hid {
                        let z = g.apply(xp[j] + rc[j]);
                        let r = g.apply(xp[hid + j] + rc[hid + j]);
                        let ih = rc[2 * hid + j];
                        let c = f.apply(xp[2 * hid + j] + r * ih);
                        gt[j] = z;
                        gt[hid + j] = r;
                        gt[2 * hid + j] = c;
                        inn[j] = ih;
                        hn[j] = z * hp[j] + (T::one() - z) * c;
                    }
                },
            );
        } else {
            general_mat_mul(
                T::one(),
                &h_prev,
                &u.slice(s![.., ..2 * hid]),
                T::zero(),
                &mut rec.slice_mut(s![.., ..2 * hid]),
            );
            for_rows(
                [&xproj.view(), &rec.view(), &h_prev.view()],
                [&mut gates, &mut inner],
                |[xp, rc, hp], [gt, inn]| {
                    for j in 0..hid {
                        let z = g.apply(xp[j] + rc[j]);
                        let r = g.apply(xp[hid + j] + rc[hid + j]);
                        gt[j] = z;
                        gt[hid + j] = r;
                        inn[j] = r * hp[j];
                    }
                },
            );
            general_mat_mul(
                T::one(),
                &inner,
                &u.slice(s![.., 2 * hid..]),
                T::zero(),
                &mut rec.slice_mut(s![.., 2 * hid..]),
            );
            for_rows(
                [&xproj.view(), &rec.view(), &h_prev.view()],
                [&mut gates, &mut h_next],
                |[xp, rc, hp], [gt, hn]| {
                    for j in 0..hid {
                        let z = gt[j];
                        let c = f.apply(xp[2 * hid + j] + rc[2 * hid + j]);
                        gt[2 * hid + j] = c;
                        hn[j] = z * hp[j] + (T::one() - z) * c;
                    }
                },
            );
        }
    }

    /// Backpropagation through time over the cached forward pass.
    ///
    /// `dh_seq` is the loss gradient w.r.t. each step's output (`[T, B, H]`,
    /// `None` if only the final state feeds the loss), `dh_last` the extra
    /// gradient on the final state (from the decoder). Gradients are added
    /// into `grads`; the gradient w.r.t. the input sequence (when one was
    /// given) lands in `scratch.dx`. Returns the gradient w.r.t. the initial
    /// state.
    pub fn backward(
        &self,
        x: Option<ArrayView3<T>>,
        cache: &GruCache<T>,
        dh_seq: Option<ArrayView3<T>>,
        dh_last: Option<ArrayView2<T>>,
        grads: &mut Gru<T>,
        scratch: &mut BackwardScratch<T>,
    ) -> Array2<T> {
        let hid = self.hidden();
        let (steps, batch, _) = cache.gates.dim();
        let (g, f) = (self.gate, self.candidate);
        let u = &self.recurrent_kernel;
        let mut dh = match dh_last {
            Some(d) => d.to_owned(),
            None => Array2::zeros((batch, hid)),
        };
        // Gradients w.r.t. the pre-activations of the input part (d_x) and,
        // for reset_after, of the recurrent part (d_rec). Every element is
        // written before it is read, so the buffers are reused unzeroed.
        let rec_steps = if self.reset_after { steps } else { 0 };
        scratch.ensure(steps, rec_steps, batch, hid, self.input());
        let BackwardScratch {
            d_x,
            d_rec,
            dx: dx_out,
        } = scratch;
        let mut dh_prev = Array2::<T>::zeros((batch, hid));
        let mut d_inner = Array2::<T>::zeros((batch, hid));
        for t in (0..steps).rev() {
            if let Some(ds) = &dh_seq {
                dh += &ds.index_axis(Axis(0), t);
            }
            let h_prev = cache.h.index_axis(Axis(0), t);
            let gates = cache.gates.index_axis(Axis(0), t);
            let inner = cache.inner.index_axis(Axis(0), t);
            let mut dxt = d_x.index_axis_mut(Axis(0), t);
            if self.reset_after {
                let mut drt = d_rec.index_axis_mut(Axis(0), t);
                for_rows(
                    [&gates, &h_prev, &inner, &dh.view()],
                    [
                        &mut dxt.view_mut(),
                        &mut drt.view_mut(),
                        &mut dh_prev.view_mut(),
                    ],
                    |[gt, hp, inn, dhb], [dx, dr, dp]| {
                        for j in 0..hid {
                            let (z, r, c) = (gt[j], gt[hid + j], gt[2 * hid + j]);
                            let d = dhb[j];
                            let dz = d * (hp[j] - c) * g.grad_from_output(z);
                            let dc = d * (T::one() - z) * f.grad_from_output(c);
                            let dr_pre = dc * inn[j] * g.grad_from_output(r);
                            dx[j] = dz;
                            dx[hid + j] = dr_pre;
                            dx[2 * hid + j] = dc;
                            dr[j] = dz;
                            dr[hid + j] = dr_pre;
                            dr[2 * hid + j] = dc * r;
                            dp[j] = d * z;
                        }
                    },
                );
                general_mat_mul(T::one(), &drt, &u.t(), T::one(), &mut dh_prev);
            } else {
                for_rows(
                    [&gates, &h_prev, &dh.view()],
                    [&mut dxt.view_mut(), &mut dh_prev.view_mut()],
                    |[gt, hp, dhb], [dx, dp]| {
                        for j in 0..hid {
                            let (z, c) = (gt[j], gt[2 * hid + j]);
                            let d = dhb[j];
                            dx[j] = d * (hp[j] - c) * g.grad_from_output(z);
                            dx[2 * hid + j] = d * (T::one() - z) * f.grad_from_output(c);
                            dp[j] = d * z;
                        }
                    },
                );
                // Gradient w.r.t. r * h_prev, through Uh.
                general_mat_mul(
                    T::one(),
                    &dxt.slice(s![.., 2 * hid..]),
                    &u.slice(s![.., 2 * hid..]).t(),
                    T::zero(),
                    &mut d_inner,
                );
                for_rows(
                    [&gates, &h_prev, &d_inner.view()],
                    [&mut dxt.view_mut(), &mut dh_prev.view_mut()],
                    |[gt, hp, di], [dx, dp]| {
                        for j in 0..hid {
                            let r = gt[hid + j];
                            dx[hid + j] = di[j] * hp[j] * g.grad_from_output(r);
                            dp[j] += di[j] * r;
                        }
                    },
                );
                general_mat_mul(
                    T::one(),
                    &dxt.slice(s![.., ..2 * hid]),
                    &u.slice(s![.., ..2 * hid]).t(),
                    T::one(),
                    &mut dh_prev,
                );
            }
            std::mem::swap(&mut dh, &mut dh_prev);
        }
        // Weight gradients: one large product over all steps each.
        let rows = steps * batch;
        let d_x2 = flat(d_x.view(), rows, 3 * hid);
        let d_x2 = d_x2.view();
        let h_prevs = flat(cache.h.slice(s![..steps, .., ..]), rows, hid);
        if self.reset_after {
            let d_rec2 = flat(d_rec.view(), rows, 3 * hid);
            general_mat_mul(
                T::one(),
                &h_prevs.t(),
                &d_rec2,
                T::one(),
                &mut grads.recurrent_kernel,
            );
            let mut b1 = grads.bias.row_mut(1);
            b1 += &d_rec2.sum_axis(Axis(0));
        } else {
            general_mat_mul(
                T::one(),
                &h_prevs.t(),
                &d_x2.slice(s![.., ..2 * hid]),
                T::one(),
                &mut grads.recurrent_kernel.slice_mut(s![.., ..2 * hid]),
            );
            let inners = flat(cache.inner.view(), rows, hid);
            general_mat_mul(
                T::one(),
                &inners.t(),
                &d_x2.slice(s![.., 2 * hid..]),
                T::one(),
                &mut grads.recurrent_kernel.slice_mut(s![.., 2 * hid..]),
            );
        }
        let mut b0 = grads.bias.row_mut(0);
        b0 += &d_x2.sum_axis(Axis(0));
        if let Some(x) = x {
            let x2 = x
                .into_shape_with_order((rows, self.input()))
                .expect("GRU input must be contiguous");
            general_mat_mul(T::one(), &x2.t(), &d_x2, T::one(), &mut grads.kernel);
            let mut dx2: ArrayViewMut2<T> = dx_out
                .view_mut()
                .into_shape_with_order((rows, self.input()))
                .expect("contiguous");
            general_mat_mul(T::one(), &d_x2, &self.kernel.t(), T::zero(), &mut dx2);
        }
        dh
    }
}

/// Buffers of one layer's backward pass, kept between batches.
#[derive(Clone, Debug)]
pub struct BackwardScratch<T> {
    d_x: Array3<T>,
    d_rec: Array3<T>,
    /// `[T, B, input]`: gradient w.r.t. the layer's input sequence, filled
    /// when `backward` is asked for it.
    pub dx: Array3<T>,
}

impl<T: NdFloat> Default for BackwardScratch<T> {
    fn default() -> Self {
        BackwardScratch {
            d_x: Array3::zeros((0, 0, 0)),
            d_rec: Array3::zeros((0, 0, 0)),
            dx: Array3::zeros((0, 0, 0)),
        }
    }
}

impl<T: NdFloat> BackwardScratch<T> {
    fn ensure(&mut self, steps: usize, rec_steps: usize, batch: usize, hid: usize, input: usize) {
        if self.d_x.dim() != (steps, batch, 3 * hid) {
            self.d_x = Array3::zeros((steps, batch, 3 * hid));
        }
        if self.d_rec.dim() != (rec_steps, batch, 3 * hid) {
            self.d_rec = Array3::zeros((rec_steps, batch, 3 * hid));
        }
        if self.dx.dim() != (steps, batch, input) {
            self.dx = Array3::zeros((steps, batch, input));
        }
    }
}

/// A contiguous `[T, B, W]` view as `[T * B, W]`.
fn flat<T>(a: ArrayView3<'_, T>, rows: usize, width: usize) -> ArrayView2<'_, T> {
    a.into_shape_with_order((rows, width))
        .expect("cache arrays are contiguous")
}

/// Run `f` over matching rows of contiguous 2-D arrays as plain slices (no
/// per-element bounds checks in the hot loops).
fn for_rows<T, const I: usize, const O: usize>(
    inputs: [&ArrayView2<T>; I],
    outputs: [&mut ArrayViewMut2<T>; O],
    mut f: impl FnMut([&[T]; I], [&mut [T]; O]),
) {
    let rows = inputs.first().map_or(0, |a| a.nrows());
    let ins: [(&[T], usize); I] =
        inputs.map(|a| (a.as_slice().expect("rows of a contiguous array"), a.ncols()));
    let mut outs: [(&mut [T], usize); O] = outputs.map(|a| {
        let w = a.ncols();
        (a.as_slice_mut().expect("rows of a contiguous array"), w)
    });
    for b in 0..rows {
        let i = ins.map(|(s, w)| &s[b * w..(b + 1) * w]);
        let o = outs.each_mut().map(|(s, w)| {
            let w = *w;
            &mut s[b * w..(b + 1) * w]
        });
        f(i, o);
    }
}

/// Flush denormal floats to zero on this thread. Gradients that fade over
/// 135 recurrent steps become denormal, and x86 multiplies on denormals
/// take microcode assists that slow training by several times; values
/// that small carry no information for training.
#[inline]
pub(crate) fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: only sets the FTZ (bit 15) and DAZ (bit 6) flags of this
    // thread's SSE control register; no memory is touched.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}
