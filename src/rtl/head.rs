//! The Dense(3) head of one lane (contract section 5): three MACs riding on
//! the pass-0 state stream of the set in its A slot (the decoder state
//! h'_t of the previous step), saturated to 2W + 2 bits, and the per-set
//! running amplitude A_i = o_i[0] and sum T_i = sum_k o_i[k] of channels 1
//! and 2 the extraction needs.

use super::prim::{Dsp, Mac, Requant, MAC_LATENCY};
use super::{Acc, Code, Widths, Wt};
use crate::fixed::contract::Narrow;
use rust_hdl::prelude::*;

/// Cycles from a step's last term at the inputs to its outputs: the MAC
/// pipeline and the register after the saturation (the saturation and the
/// running sums are two paths).
pub const HEAD_LATENCY: usize = MAC_LATENCY + 1;

#[derive(LogicBlock)]
pub struct Head {
    pub clock: Signal<In, Clock>,
    /// MAC enable / first term (stage 1) and the state code stream; the
    /// outputs follow HEAD_LATENCY cycles later.
    pub en: Signal<In, Bit>,
    pub first: Signal<In, Bit>,
    pub w: Vec<Signal<In, Wt>>,
    pub x: Signal<In, Code>,
    /// HEAD_LATENCY after the last term: the outputs belong to a decoder step.
    pub done: Signal<In, Bit>,
    /// That step is the first / last decoder step; the pixel set.
    pub step_first: Signal<In, Bit>,
    pub step_last: Signal<In, Bit>,
    pub set: Signal<In, Bit>,
    /// Saturated head outputs o_0, o_1, o_2 (valid with `done`).
    pub out: Vec<Signal<Out, Acc>>,
    /// Amplitudes and sums of channels 1, 2 including this step (valid with
    /// `done && step_last`).
    pub amp1: Signal<Out, Acc>,
    pub amp2: Signal<Out, Acc>,
    pub sum1: Signal<Out, Acc>,
    pub sum2: Signal<Out, Acc>,
    mac: Vec<Mac>,
    saturate: Vec<Requant<48>>,
    saturated: Vec<DFF<Acc>>,
    bias: Vec<Constant<Acc>>,
    /// Per set: A1, A2, T1, T2.
    a1: Vec<DFF<Acc>>,
    a2: Vec<DFF<Acc>>,
    t1: Vec<DFF<Acc>>,
    t2: Vec<DFF<Acc>>,
}

impl Head {
    /// `bias[c]` on the accumulator grid; `saturation` the contract's head
    /// narrowing ([`crate::fixed::contract::Format::head_narrow`]).
    pub fn new(widths: Widths, dsp: Dsp, bias: [i64; 3], saturation: Narrow) -> Self {
        Head {
            clock: Default::default(),
            en: Default::default(),
            first: Default::default(),
            w: super::many(3),
            x: Default::default(),
            done: Default::default(),
            step_first: Default::default(),
            step_last: Default::default(),
            set: Default::default(),
            out: super::many(3),
            amp1: Default::default(),
            amp2: Default::default(),
            sum1: Default::default(),
            sum2: Default::default(),
            mac: (0..3).map(|_| Mac::new(widths, dsp)).collect(),
            saturate: (0..3)
                .map(|_| Requant::new(widths.acc, saturation))
                .collect(),
            saturated: super::many(3),
            bias: bias
                .iter()
                .map(|&b| Constant::new(super::prim::tc(b)))
                .collect(),
            a1: super::many(2),
            a2: super::many(2),
            t1: super::many(2),
            t2: super::many(2),
        }
    }
}

impl Logic for Head {
    #[hdl_gen]
    fn update(&mut self) {
        for c in 0..3 {
            self.mac[c].clock.next = self.clock.val();
            self.mac[c].en.next = self.en.val();
            self.mac[c].first.next = self.first.val();
            self.mac[c].bias.next = self.bias[c].val();
            self.mac[c].w.next = self.w[c].val();
            self.mac[c].x.next = self.x.val();
            self.saturate[c].v.next = self.mac[c].acc.val();
            self.saturated[c].clock.next = self.clock.val();
            self.saturated[c].d.next = self.saturate[c].out.val();
            self.out[c].next = self.saturated[c].q.val();
        }
        self.amp1.next = 0.into();
        self.amp2.next = 0.into();
        self.sum1.next = 0.into();
        self.sum2.next = 0.into();
        for s in 0..2 {
            self.a1[s].clock.next = self.clock.val();
            self.a2[s].clock.next = self.clock.val();
            self.t1[s].clock.next = self.clock.val();
            self.t2[s].clock.next = self.clock.val();
            self.a1[s].d.next = self.a1[s].q.val();
            self.a2[s].d.next = self.a2[s].q.val();
            self.t1[s].d.next = self.t1[s].q.val();
            self.t2[s].d.next = self.t2[s].q.val();
            if self.set.val() == (s == 1) {
                self.amp1.next = self.a1[s].q.val();
                self.amp2.next = self.a2[s].q.val();
                self.sum1.next = self.t1[s].q.val() + self.saturated[1].q.val();
                self.sum2.next = self.t2[s].q.val() + self.saturated[2].q.val();
                if self.done.val() {
                    self.t1[s].d.next = self.t1[s].q.val() + self.saturated[1].q.val();
                    self.t2[s].d.next = self.t2[s].q.val() + self.saturated[2].q.val();
                    if self.step_first.val() {
                        self.a1[s].d.next = self.saturated[1].q.val();
                        self.a2[s].d.next = self.saturated[2].q.val();
                        self.t1[s].d.next = self.saturated[1].q.val();
                        self.t2[s].d.next = self.saturated[2].q.val();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::prim::{sx, tc};

    /// Two decoder steps of one set: outputs are bias + sum w x, saturated;
    /// the amplitude is the first step's, the sum runs over both.
    #[test]
    fn accumulates_saturates_and_sums() {
        let head_max = (1 << 9) - 1;
        let widths = crate::rtl::Widths::new(crate::fixed::Format::new(8).unwrap(), 2, 3);
        let saturation = Narrow {
            offset: 0,
            shift: 0,
            lo: -head_max,
            hi: head_max,
        };
        let mut b = Head::new(widths, Dsp::Inferred, [5, -7, 100], saturation);
        b.connect_all();
        check_all(&b).unwrap();
        let w = [[3i64, -1, 50], [2, 4, 60]];
        let steps = [[10i64, -20], [1, 1]];
        let mut outs = Vec::new();
        for (t, x) in steps.iter().enumerate() {
            for (k, xk) in x.iter().enumerate() {
                b.en.next = true;
                b.first.next = k == 0;
                b.x.next = tc(*xk);
                for (port, wc) in b.w.iter_mut().zip(w[k]) {
                    port.next = tc(wc);
                }
                b.clock.next = Clock { clk: true };
                assert!(simulate(&mut b, 100));
                b.clock.next = Clock { clk: false };
                assert!(simulate(&mut b, 100));
            }
            b.en.next = false;
            // The last term lands MAC_LATENCY edges after it was presented.
            for _ in 1..HEAD_LATENCY {
                b.clock.next = Clock { clk: true };
                assert!(simulate(&mut b, 100));
                b.clock.next = Clock { clk: false };
                assert!(simulate(&mut b, 100));
            }
            b.done.next = true;
            b.set.next = true;
            b.step_first.next = t == 0;
            b.step_last.next = t == 1;
            assert!(simulate(&mut b, 100));
            let o: Vec<i64> = (0..3).map(|c| sx(b.out[c].val())).collect();
            if t == 1 {
                assert_eq!(sx(b.amp1.val()), outs[1]);
                assert_eq!(sx(b.sum1.val()), outs[1] + o[1]);
                assert_eq!(sx(b.sum2.val()), outs[2] + o[2]);
            }
            outs.extend(o);
            b.clock.next = Clock { clk: true };
            assert!(simulate(&mut b, 100));
            b.done.next = false;
            b.clock.next = Clock { clk: false };
            assert!(simulate(&mut b, 100));
        }
        let bias = [5i64, -7, 100];
        for (t, x) in steps.iter().enumerate() {
            for c in 0..3 {
                let a = bias[c] + x[0] * w[0][c] + x[1] * w[1][c];
                assert_eq!(
                    outs[t * 3 + c],
                    a.clamp(-head_max, head_max),
                    "step {t} channel {c}"
                );
            }
        }
        assert_eq!(outs[2], -head_max, "channel 2 saturates");
    }
}
