//! Sequential restoring divider: `quotient = min(2^qbits - 1, floor(num / den))`,
//! one quotient bit per cycle, a fixed `qbits + 1` cycles from `start` to
//! `done` whatever the data (so lockstep lanes stay in step). The contract's
//! preprocessing normalisation and the extraction's ratio and fraction are
//! all this one division.

use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Divider {
    pub clock: Signal<In, Clock>,
    /// Pulse: latch `num`, `den`, `qbits` and start.
    pub start: Signal<In, Bit>,
    pub num: Signal<In, Bits<64>>,
    pub den: Signal<In, Bits<64>>,
    /// Quotient bits, 1..=32.
    pub qbits: Signal<In, Bits<8>>,
    /// One-cycle pulse when `quotient` is valid (it stays valid until the
    /// next start).
    pub done: Signal<Out, Bit>,
    pub busy: Signal<Out, Bit>,
    pub quotient: Signal<Out, Bits<32>>,
    rem: DFF<Bits<64>>,
    numer: DFF<Bits<64>>,
    q: DFF<Bits<32>>,
    count: DFF<Bits<8>>,
    running: DFF<Bit>,
    overflow: DFF<Bit>,
    fin: DFF<Bit>,
    high: Signal<Local, Bits<64>>,
    shifted: Signal<Local, Bits<64>>,
    one32: Constant<Bits<32>>,
    one8: Constant<Bits<8>>,
}

impl Default for Divider {
    fn default() -> Self {
        Divider {
            clock: Default::default(),
            start: Default::default(),
            num: Default::default(),
            den: Default::default(),
            qbits: Default::default(),
            done: Default::default(),
            busy: Default::default(),
            quotient: Default::default(),
            rem: Default::default(),
            numer: Default::default(),
            q: Default::default(),
            count: Default::default(),
            running: Default::default(),
            overflow: Default::default(),
            fin: Default::default(),
            high: Default::default(),
            shifted: Default::default(),
            one32: Constant::new(1.into()),
            one8: Constant::new(1.into()),
        }
    }
}

impl Logic for Divider {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, rem, numer, q, count, running, overflow, fin);
        self.done.next = self.fin.q.val();
        self.busy.next = self.running.q.val();
        self.quotient.next = self.q.q.val();
        self.fin.d.next = false;
        self.high.next = self.num.val() >> self.qbits.val();
        self.shifted.next = (self.rem.q.val() << 1)
            | ((self.numer.q.val() >> (self.count.q.val() - self.one8.val())) & 1);
        if self.running.q.val() {
            if self.shifted.val() >= self.den.val() {
                self.rem.d.next = self.shifted.val() - self.den.val();
                self.q.d.next = (self.q.q.val() << 1) | self.one32.val();
            } else {
                self.rem.d.next = self.shifted.val();
                self.q.d.next = self.q.q.val() << 1;
            }
            self.count.d.next = self.count.q.val() - self.one8.val();
            if self.count.q.val() == self.one8.val() {
                self.running.d.next = false;
                self.fin.d.next = true;
                if self.overflow.q.val() {
                    self.q.d.next = (self.one32.val() << self.qbits.val()) - self.one32.val();
                }
            }
        }
        if self.start.val() {
            self.rem.d.next = self.high.val();
            self.overflow.d.next = self.high.val() >= self.den.val();
            self.numer.d.next = self.num.val();
            self.q.d.next = 0.into();
            self.count.d.next = self.qbits.val();
            self.running.d.next = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn divide(d: &mut Divider, num: u64, den: u64, qbits: u64) -> (u64, usize) {
        d.num.next = num.into();
        d.den.next = den.into();
        d.qbits.next = qbits.into();
        d.start.next = true;
        let mut cycles = 0;
        loop {
            d.clock.next = Clock { clk: true };
            assert!(simulate(d, 100));
            d.start.next = false;
            d.clock.next = Clock { clk: false };
            assert!(simulate(d, 100));
            cycles += 1;
            if d.done.val() {
                return (d.quotient.val().to_u64(), cycles);
            }
            assert!(cycles < 100);
        }
    }

    #[test]
    fn divides_and_saturates_in_fixed_time() {
        let mut d = Divider::default();
        d.connect_all();
        check_all(&d).unwrap();
        let cases = [
            (100u64, 7u64, 8u64),
            (0, 5, 8),
            (255, 1, 8),
            (256, 1, 8),
            (1 << 40, 3, 24),
            ((1u64 << 50) + 12345, 1 << 30, 24),
            (65535 * 2 * 128 + 999, 2 * 999, 8),
            (7, 0, 8),
        ];
        for (num, den, qb) in cases {
            let (q, cycles) = divide(&mut d, num, den, qb);
            let want = num
                .checked_div(den)
                .map_or((1 << qb) - 1, |q| q.min((1 << qb) - 1));
            assert_eq!(q, want, "{num}/{den} in {qb} bits");
            assert_eq!(cycles, qb as usize + 1);
        }
    }
}
