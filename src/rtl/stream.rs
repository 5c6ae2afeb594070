//! Valid/ready stream stage for the result stream: a one-entry pipeline
//! register (the upstream may push when the stage is empty or being
//! drained in the same cycle). Nothing is lost, duplicated or reordered:
//! a beat moves only when valid and ready are both high.

use super::protocol::{FractionCode, PixelIndex, TauCode};
use rust_hdl::prelude::*;

#[derive(LogicBlock, Default)]
pub struct ResultStage {
    pub clock: Signal<In, Clock>,
    pub in_valid: Signal<In, Bit>,
    pub in_ready: Signal<Out, Bit>,
    pub in_pixel: Signal<In, PixelIndex>,
    pub in_tau1: Signal<In, TauCode>,
    pub in_tau2: Signal<In, TauCode>,
    pub in_fraction: Signal<In, FractionCode>,
    pub out_valid: Signal<Out, Bit>,
    pub out_ready: Signal<In, Bit>,
    pub out_pixel: Signal<Out, PixelIndex>,
    pub out_tau1: Signal<Out, TauCode>,
    pub out_tau2: Signal<Out, TauCode>,
    pub out_fraction: Signal<Out, FractionCode>,
    full: DFF<Bit>,
    pixel: DFF<PixelIndex>,
    tau1: DFF<TauCode>,
    tau2: DFF<TauCode>,
    fraction: DFF<FractionCode>,
    take: Signal<Local, Bit>,
}

impl Logic for ResultStage {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, full, pixel, tau1, tau2, fraction);
        self.in_ready.next = !self.full.q.val() || self.out_ready.val();
        self.take.next = self.in_valid.val() && (!self.full.q.val() || self.out_ready.val());
        self.out_valid.next = self.full.q.val();
        self.out_pixel.next = self.pixel.q.val();
        self.out_tau1.next = self.tau1.q.val();
        self.out_tau2.next = self.tau2.q.val();
        self.out_fraction.next = self.fraction.q.val();
        if self.full.q.val() && self.out_ready.val() {
            self.full.d.next = false;
        }
        if self.take.val() {
            self.full.d.next = true;
            self.pixel.d.next = self.in_pixel.val();
            self.tau1.d.next = self.in_tau1.val();
            self.tau2.d.next = self.in_tau2.val();
            self.fraction.d.next = self.in_fraction.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn passes_every_beat_once_in_order() {
        let mut s = ResultStage::default();
        s.connect_all();
        check_all(&s).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (mut sent, mut got) = (0u64, Vec::new());
        for _ in 0..2000 {
            s.in_valid.next = sent < 300 && rng.gen_bool(0.6);
            s.in_pixel.next = sent.into();
            s.out_ready.next = rng.gen_bool(0.5);
            s.clock.next = Clock { clk: false };
            assert!(simulate(&mut s, 100));
            if s.in_valid.val() && s.in_ready.val() {
                sent += 1;
            }
            if s.out_valid.val() && s.out_ready.val() {
                got.push(s.out_pixel.val().to_u64());
            }
            s.clock.next = Clock { clk: true };
            assert!(simulate(&mut s, 100));
        }
        assert_eq!(sent, 300);
        assert_eq!(got, (0..300).collect::<Vec<_>>());
    }
}
