//! The training objective: what the network is asked to output.
//!
//! The lifetime extraction ([`crate::lifetime::extract`]) reads each
//! channel through one number, q_i = sum_k ch_i[k] / ch_i[0], and the
//! fraction through the two amplitudes ch1[0], ch2[0]. A per-gate MSE
//! over 3 x G outputs gives ch_i[0] 1/G of its weight and never asks for
//! the ratio, so a network can have a small MSE and a poor lifetime. The
//! objective adds what the extraction reads:
//!
//! - **channel MSE** (weight `channel`): every gate of every channel,
//!   the shape the paper trains;
//! - **ratio terms** (weight `ratio`): per channel, the relative error of
//!   the extracted lifetime to first order,
//!   `r_i = J_i (S^_i - q_i ch^_i[0]) / (q_i ch_i[0])`, where S^_i is the
//!   predicted channel's sum, q_i the target's ratio and
//!   J_i = d ln tau / d ln q at the target (short lifetimes, q near 1,
//!   need a more precise q). `r_i` is linear in the outputs, so the term
//!   is a quadratic with no division by a prediction;
//! - **amplitude terms** (weight `amplitude`): (ch^_i[0] - ch_i[0])^2 for
//!   the two components (the fraction's inputs);
//! - **mean-lifetime term** (weight `mean_lifetime`): the mean lifetime
//!   f tau1 + (1 - f) tau2 exactly as the extraction computes it from the
//!   predicted channels (f, tau1, tau2 through [`tau_from_ratio`]),
//!   differentiated through the extraction, on a pseudo-Huber of its
//!   relative error (quadratic below [`MEAN_HUBER`], linear above). It is
//!   the one term that sees a weak component's ill-defined lifetime
//!   (a 1 % component with tau2 at the 100 ns guard moves the mean by 1 ns),
//!   which the per-channel terms cannot.
//!
//! Each pixel's ratio and amplitude terms are multiplied by its photon
//! count over `photon_ref` (a pixel of N photons has a lifetime variance
//! ~1/N, so N x squared relative error is F^2: the objective asks for the
//! same precision relative to the photon-noise bound at every count,
//! instead of being dominated by the dimmest pixels' irreducible noise).
//!
//! Well-posedness: the split of a bi-exponential decay into components is
//! ambiguous where tau2 is close to tau1 or an amplitude is small. The
//! component terms are weighted by [`split_weight`] (0 for
//! tau2/tau1 <= 1.25, 1 from 2 on) and by the component's amplitude (full
//! weight from 0.1); the full-decay channel (ch0) is always well posed. A
//! mono-exponential pixel's targets are ch1 = ch0, ch2 = 0: its ch1 terms
//! have full weight and its ch2 amplitude term pushes ch2 to zero, so a
//! mono decay is not pushed towards two components.
//!
//! The objective with `ratio = amplitude = 0` and unit pixel weights is
//! the plain MSE of every earlier model ([`Objective::mse`]).

use crate::lifetime::extract::{ratio_from_tau, tau_from_ratio};
use ndarray::{s, ArrayView1, ArrayView3, ArrayViewMut3, NdFloat};
use serde::{Deserialize, Serialize};

/// Knowledge distillation's targets: `alpha teacher + (1 - alpha) truth`.
/// For the MSE, alpha MSE(student, teacher) + (1 - alpha) MSE(student,
/// truth) = MSE(student, this) + a constant, so a distilled student trains
/// on these targets through the one loss path (`flimgru compress` and the
/// recipe's `distill` both build them here).
pub fn distilled_targets(
    teacher: ArrayView3<f32>,
    truth: ArrayView3<f32>,
    alpha: f64,
) -> ndarray::Array3<f32> {
    assert_eq!(teacher.dim(), truth.dim(), "teacher and truth targets");
    let a = alpha as f32;
    &teacher * a + &truth * (1.0 - a)
}

/// Amplitudes below this carry no ratio term (the lifetime of a
/// component of under 2 % of the peak is not asked for).
pub const RATIO_AMPLITUDE_MIN: f32 = 0.02;
/// Cap on J = d ln tau / d ln q (tau near the gate width).
pub const RATIO_JACOBIAN_MAX: f64 = 20.0;
/// Relative error where the mean-lifetime term turns from quadratic to linear.
pub const MEAN_HUBER: f64 = 0.2;

/// Weights of the objective's terms (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Per-gate MSE over all channels.
    pub channel: f64,
    /// Squared relative lifetime error per channel (first order).
    pub ratio: f64,
    /// Squared amplitude error of the two components.
    pub amplitude: f64,
    /// Pseudo-Huber relative error of the extracted mean lifetime.
    #[serde(default)]
    pub mean_lifetime: f64,
    /// Photons at which a pixel's ratio and amplitude terms have weight 1.
    pub photon_ref: f64,
    /// Exponent p of the channel MSE's pixel weight (N / photon_ref)^p:
    /// 0 weighs every pixel alike (the paper's MSE); 1 weighs it as the
    /// extraction terms are, by its photon count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channel_photon_exponent: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Objective {
    /// The per-gate MSE alone (pixel weights ignored).
    pub fn mse() -> Objective {
        Objective {
            channel: 1.0,
            ratio: 0.0,
            amplitude: 0.0,
            mean_lifetime: 0.0,
            photon_ref: 1000.0,
            channel_photon_exponent: 0.0,
        }
    }

    /// The recipe's objective: the channel MSE plus the mean-lifetime term
    /// (weight 0.02), what the shipped students were trained with; the
    /// per-channel ratio and amplitude terms measured worse (README,
    /// "Precision").
    pub fn recipe() -> Objective {
        Objective {
            channel: 1.0,
            ratio: 0.0,
            amplitude: 0.0,
            mean_lifetime: 0.02,
            photon_ref: 1000.0,
            channel_photon_exponent: 0.0,
        }
    }

    /// Every extraction term at weight 0.02 (the ablation of README,
    /// "Precision").
    pub fn extraction() -> Objective {
        Objective {
            channel: 1.0,
            ratio: 0.02,
            amplitude: 0.02,
            mean_lifetime: 0.02,
            photon_ref: 1000.0,
            channel_photon_exponent: 0.0,
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, v) in [
            ("channel", self.channel),
            ("ratio", self.ratio),
            ("amplitude", self.amplitude),
            ("mean_lifetime", self.mean_lifetime),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                anyhow::bail!("objective weight {name} = {v} must be a finite number >= 0");
            }
        }
        if self.channel + self.ratio + self.amplitude + self.mean_lifetime <= 0.0 {
            anyhow::bail!("objective weights are all zero");
        }
        if !(self.channel_photon_exponent.is_finite()
            && (0.0..=2.0).contains(&self.channel_photon_exponent))
        {
            anyhow::bail!(
                "objective channel_photon_exponent = {} must be in [0, 2]",
                self.channel_photon_exponent
            );
        }
        if !(self.photon_ref.is_finite() && self.photon_ref > 0.0) {
            anyhow::bail!(
                "objective photon_ref = {} must be a positive number",
                self.photon_ref
            );
        }
        Ok(())
    }

    fn extraction_terms(&self) -> bool {
        self.ratio > 0.0 || self.amplitude > 0.0 || self.mean_lifetime > 0.0
    }

    /// Loss of head outputs `out` against targets `y` (both `[T, B, 3]`)
    /// with per-pixel photon counts `photons` (`[B]`; `None`: weight 1),
    /// for a slice of a batch of `pixels_in_batch` pixels. Returns the sum
    /// over the slice's pixels of each pixel's loss; the gradient of that
    /// sum divided by `pixels_in_batch` (the batch mean, when the slices'
    /// sums are added) with respect to `out` is written into `d_out`.
    pub fn loss_and_gradient<T: NdFloat>(
        &self,
        out: ArrayView3<T>,
        y: ArrayView3<T>,
        photons: Option<ArrayView1<T>>,
        pixels_in_batch: usize,
        mut d_out: ArrayViewMut3<T>,
    ) -> f64 {
        let (steps, batch, ch) = out.dim();
        debug_assert_eq!(y.dim(), out.dim());
        let f = |v: T| v.to_f64().unwrap_or(f64::NAN);
        let t = |v: f64| T::from(v).unwrap_or_else(T::zero);
        let per_pixel = (steps * ch) as f64;
        let pixel_den = pixels_in_batch as f64;
        let mut total = 0.0f64;
        for b in 0..batch {
            // The pixel's weight (N / photon_ref)^p; 1 for p = 0 or no counts.
            let w = match photons {
                Some(p) if self.channel_photon_exponent != 0.0 => {
                    (f(p[b]).max(0.0) / self.photon_ref).powf(self.channel_photon_exponent)
                }
                _ => 1.0,
            };
            let k = self.channel * w;
            let two_c = t(2.0 * k / (per_pixel * pixel_den));
            ndarray::Zip::from(d_out.slice_mut(s![.., b, ..]))
                .and(out.slice(s![.., b, ..]))
                .and(y.slice(s![.., b, ..]))
                .for_each(|d, &o, &y| {
                    let e = f(o - y);
                    total += k * e * e / per_pixel;
                    *d = two_c * (o - y);
                });
        }
        if !self.extraction_terms() {
            return total;
        }
        for b in 0..batch {
            let w = photons.map_or(1.0, |p| f(p[b]) / self.photon_ref);
            if w.is_nan() || w <= 0.0 {
                continue;
            }
            let amp = |c: usize| f(y[[0, b, c]]);
            let sum =
                |v: &ArrayView3<T>, c: usize| -> f64 { (0..steps).map(|k| f(v[[k, b, c]])).sum() };
            let mono = amp(2) == 0.0;
            let target_q: [f64; 3] = std::array::from_fn(|c| sum(&y, c) / amp(c).max(1e-30));
            let split = if mono {
                1.0
            } else {
                split_weight(target_q[1], target_q[2])
            };
            for c in 0..ch.min(3) {
                let a = amp(c);
                // Component weight: ch0 always; ch1/ch2 by the split and the
                // amplitude (a mono pixel's ch1 is its full decay).
                let m = match (c, mono) {
                    (0, _) | (1, true) => 1.0,
                    (_, true) => 0.0,
                    _ => split * (a / 0.1).min(1.0),
                };
                if self.ratio > 0.0 && m > 0.0 && a >= RATIO_AMPLITUDE_MIN as f64 {
                    let q = target_q[c];
                    let scale = ratio_jacobian(q, steps) / (q * a);
                    let r = (sum(&out, c) - q * f(out[[0, b, c]])) * scale;
                    let k = self.ratio * w * m;
                    total += k * r * r;
                    // d r / d out[k] = scale (k > 0), scale (1 - q) (k = 0).
                    let g = 2.0 * k * r * scale / pixel_den;
                    for s in 0..steps {
                        d_out[[s, b, c]] += t(g);
                    }
                    d_out[[0, b, c]] -= t(g * q);
                }
                if self.amplitude > 0.0 && c > 0 {
                    let k = self.amplitude * w * if mono { 1.0 } else { split };
                    let e = f(out[[0, b, c]]) - a;
                    total += k * e * e;
                    d_out[[0, b, c]] += t(2.0 * k * e / pixel_den);
                }
            }
            if self.mean_lifetime > 0.0 && ch >= 3 {
                // The target's mean lifetime, in gate widths.
                let tau_t = |c: usize| tau_from_ratio(target_q[c], steps, 1.0);
                let truth = if mono {
                    tau_t(1)
                } else {
                    let a1 = amp(1) / (amp(1) + amp(2));
                    a1 * tau_t(1) + (1.0 - a1) * tau_t(2)
                };
                let m = MeanLifetime::of(|c| sum(&out, c), |c| f(out[[0, b, c]]), steps);
                if truth > 0.0 {
                    let r = (m.tau - truth) / truth;
                    let h = MEAN_HUBER;
                    let k = self.mean_lifetime * w;
                    total += k * h * h * ((1.0 + (r / h).powi(2)).sqrt() - 1.0);
                    // d/dr of h^2 (sqrt(1 + r^2/h^2) - 1) = r / sqrt(1 + r^2/h^2).
                    let g = k * r / (1.0 + (r / h).powi(2)).sqrt() / truth / pixel_den;
                    for c in 1..3 {
                        let gs = t(g * m.d_sum[c - 1]);
                        for s in 0..steps {
                            d_out[[s, b, c]] += gs;
                        }
                        d_out[[0, b, c]] += t(g * m.d_amp[c - 1]);
                    }
                }
            }
        }
        total
    }
}

/// The extraction's mean lifetime f tau1 + (1 - f) tau2 of predicted
/// channels (in gate widths) and its derivatives with respect to each
/// component's sum and amplitude (ch1, ch2). Guards as the extraction's:
/// an amplitude <= 0 gives tau 0 and no gradient through that tau.
struct MeanLifetime {
    tau: f64,
    d_sum: [f64; 2],
    d_amp: [f64; 2],
}

impl MeanLifetime {
    fn of(sum: impl Fn(usize) -> f64, amp: impl Fn(usize) -> f64, gates: usize) -> MeanLifetime {
        let mut tau = [0.0; 2];
        let (mut dt_ds, mut dt_da) = ([0.0; 2], [0.0; 2]);
        for i in 0..2 {
            let (s, a) = (sum(i + 1), amp(i + 1));
            if a > 0.0 && s > a {
                let q = s / a;
                tau[i] = tau_from_ratio(q, gates, 1.0);
                // dtau/dq = tau J / q; dq/ds = 1/a, dq/da = -q/a.
                let j = ratio_jacobian(q, gates);
                dt_ds[i] = tau[i] * j / s;
                dt_da[i] = -tau[i] * j / a;
            }
        }
        let (a1, a2) = (amp(1).max(0.0), amp(2).max(0.0));
        let den = a1 + a2;
        let (fr, df1, df2) = if den >= crate::lifetime::extract::AMPLITUDE_MIN {
            (
                a1 / den,
                if amp(1) > 0.0 { a2 / (den * den) } else { 0.0 },
                if amp(2) > 0.0 { -a1 / (den * den) } else { 0.0 },
            )
        } else {
            (0.5, 0.0, 0.0)
        };
        let spread = tau[0] - tau[1];
        MeanLifetime {
            tau: fr * tau[0] + (1.0 - fr) * tau[1],
            d_sum: [fr * dt_ds[0], (1.0 - fr) * dt_ds[1]],
            d_amp: [
                df1 * spread + fr * dt_da[0],
                df2 * spread + (1.0 - fr) * dt_da[1],
            ],
        }
    }
}

/// Weight of the component terms of a bi-exponential pixel from its
/// components' ratios q1 <= q2 (q grows with tau): 0 where the split is
/// ambiguous (q2/q1 <= 1.25), 1 from q2/q1 = 2, linear between.
pub fn split_weight(q1: f64, q2: f64) -> f64 {
    if !(q1 > 0.0 && q2 > 0.0) {
        return 0.0;
    }
    let s = q2.max(q1) / q2.min(q1);
    ((s - 1.25) / 0.75).clamp(0.0, 1.0)
}

/// J = d ln tau / d ln q at ratio `q` over `gates` gates: how much a
/// relative error of q moves the lifetime (q -> 1 at short lifetimes
/// makes tau sensitive to q). The gate width cancels in J; it is taken as
/// 1. Capped at [`RATIO_JACOBIAN_MAX`].
pub fn ratio_jacobian(q: f64, gates: usize) -> f64 {
    if q.is_nan() || q <= 1.0 || gates < 2 {
        return RATIO_JACOBIAN_MAX;
    }
    let tau = tau_from_ratio(q, gates, 1.0);
    if tau.is_nan() || tau <= 0.0 {
        return RATIO_JACOBIAN_MAX;
    }
    const E: f64 = 1e-3;
    let lo = ratio_from_tau(tau * (1.0 - E), gates, 1.0).ln();
    let hi = ratio_from_tau(tau * (1.0 + E), gates, 1.0).ln();
    let dlnq = (hi - lo) / (2.0 * E);
    if dlnq > 0.0 {
        (1.0 / dlnq).min(RATIO_JACOBIAN_MAX)
    } else {
        RATIO_JACOBIAN_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3};

    fn sample() -> (Array3<f32>, Array3<f32>, Array1<f32>) {
        let (steps, batch) = (12, 3);
        let mut y = Array3::<f32>::zeros((steps, batch, 3));
        let mut o = Array3::<f32>::zeros((steps, batch, 3));
        let taus = [(0.3f64, 2.0f64, 0.4f64), (1.0, 1.0, 1.0), (0.5, 0.6, 0.5)];
        for (b, &(t1, t2, a)) in taus.iter().enumerate() {
            let mono = b == 1;
            for k in 0..steps {
                let t = k as f64 * 0.25;
                let c1 = if mono {
                    (-t / t1).exp()
                } else {
                    a * (-t / t1).exp()
                };
                let c2 = if mono {
                    0.0
                } else {
                    (1.0 - a) * (-t / t2).exp()
                };
                y[[k, b, 0]] = (c1 + c2) as f32;
                y[[k, b, 1]] = c1 as f32;
                y[[k, b, 2]] = c2 as f32;
                for c in 0..3 {
                    o[[k, b, c]] = y[[k, b, c]] + 0.03 * ((k * 7 + b * 3 + c) % 5) as f32 - 0.05;
                }
            }
        }
        (o, y, Array1::from(vec![500.0, 2000.0, 800.0]))
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for exponent in [0.0, 1.0] {
            gradient_matches_finite_differences_at(exponent);
        }
    }

    fn gradient_matches_finite_differences_at(channel_photon_exponent: f64) {
        let (o, y, p) = sample();
        let obj = Objective {
            channel: 1.0,
            ratio: 0.5,
            amplitude: 0.7,
            mean_lifetime: 0.9,
            photon_ref: 1000.0,
            channel_photon_exponent,
        };
        let mut d = Array3::zeros(o.raw_dim());
        obj.loss_and_gradient(o.view(), y.view(), Some(p.view()), 3, d.view_mut());
        let loss = |o: &Array3<f32>| {
            let mut scratch = Array3::zeros(o.raw_dim());
            obj.loss_and_gradient(o.view(), y.view(), Some(p.view()), 3, scratch.view_mut()) / 3.0
        };
        for idx in [
            [0, 0, 0],
            [0, 0, 1],
            [3, 0, 2],
            [0, 1, 1],
            [5, 2, 0],
            [0, 2, 2],
        ] {
            let h = 1e-3f32;
            let mut a = o.clone();
            a[idx] += h;
            let mut b = o.clone();
            b[idx] -= h;
            let num = (loss(&a) - loss(&b)) / (2.0 * h as f64);
            let ana = d[idx] as f64;
            assert!(
                (num - ana).abs() <= 1e-3 * num.abs().max(1e-2),
                "{idx:?}: numeric {num}, analytic {ana}"
            );
        }
    }

    /// With exponent p, each pixel's channel MSE is weighted by
    /// (N / photon_ref)^p; without photon counts every weight is 1.
    #[test]
    fn the_channel_term_weighs_pixels_by_their_photons() {
        let (o, y, p) = sample();
        let pixel_mse = |b: usize| {
            let e = &o.slice(s![.., b, ..]) - &y.slice(s![.., b, ..]);
            e.mapv(|v| (v as f64).powi(2)).sum() / (12 * 3) as f64
        };
        for exponent in [0.5, 1.0] {
            let obj = Objective {
                channel_photon_exponent: exponent,
                ..Objective::mse()
            };
            let mut d = Array3::zeros(o.raw_dim());
            let got = obj.loss_and_gradient(o.view(), y.view(), Some(p.view()), 3, d.view_mut());
            let want: f64 = (0..3)
                .map(|b| (p[b] as f64 / 1000.0).powf(exponent) * pixel_mse(b))
                .sum();
            assert!((got - want).abs() < 1e-9, "{exponent}: {got} {want}");
            let plain = obj.loss_and_gradient(o.view(), y.view(), None, 3, d.view_mut());
            let unweighted: f64 = (0..3).map(pixel_mse).sum();
            assert!((plain - unweighted).abs() < 1e-9, "{plain} {unweighted}");
        }
        let bad = Objective {
            channel_photon_exponent: -1.0,
            ..Objective::mse()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("channel_photon_exponent = -1"), "{e}");
    }

    #[test]
    fn mse_objective_is_the_plain_mean_squared_error() {
        let (o, y, _) = sample();
        let mut d = Array3::zeros(o.raw_dim());
        let s = Objective::mse().loss_and_gradient(o.view(), y.view(), None, 3, d.view_mut());
        let direct: f64 = o
            .iter()
            .zip(y.iter())
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / (12 * 3) as f64;
        assert!((s - direct).abs() < 1e-9 * direct.max(1.0), "{s} {direct}");
    }

    #[test]
    fn exact_targets_have_zero_extraction_loss() {
        let (_, y, p) = sample();
        let obj = Objective {
            channel: 0.0,
            ratio: 1.0,
            amplitude: 1.0,
            mean_lifetime: 1.0,
            photon_ref: 1000.0,
            channel_photon_exponent: 0.0,
        };
        let mut d = Array3::zeros(y.raw_dim());
        let s = obj.loss_and_gradient(y.view(), y.view(), Some(p.view()), 3, d.view_mut());
        assert!(s.abs() < 1e-10, "{s}");
    }

    #[test]
    fn split_weight_and_jacobian() {
        assert_eq!(split_weight(10.0, 11.0), 0.0);
        assert_eq!(split_weight(10.0, 25.0), 1.0);
        assert!(split_weight(10.0, 16.0) > 0.0 && split_weight(10.0, 16.0) < 1.0);
        // Long lifetimes (q >> 1, window long): q ~ tau/dt, J ~ 1.
        let j = ratio_jacobian(ratio_from_tau(1.0, 135, 0.09), 135);
        assert!((j - 1.0).abs() < 0.1, "{j}");
        // Short ones: q near 1, J large.
        assert!(ratio_jacobian(ratio_from_tau(0.05, 135, 0.09), 135) > 2.0);
    }

    #[test]
    fn objective_weights_are_checked() {
        assert!(Objective::extraction().validate().is_ok());
        assert!(Objective::recipe().validate().is_ok());
        let mut o = Objective::mse();
        o.ratio = f64::NAN;
        assert!(o.validate().unwrap_err().to_string().contains("ratio"));
    }
}
