//! Sequential restoring divider: `quotient = min(2^qbits - 1, floor(num / den))`,
//! one quotient bit per cycle, a fixed [`divide_cycles`] from `start` to
//! `done` whatever the data (so lockstep lanes stay in step). The contract's
//! preprocessing normalisation and the extraction's ratio and fraction are
//! all this one division. The operands are latched at `start`; two load
//! cycles then align the numerator (its next bit is always bit 63, so a
//! quotient step is a shift, a compare and a subtract) and check for
//! overflow, each a separate register-to-register path (docs/hardware.md).

use super::prim::Kept;
use rust_hdl::prelude::*;

/// Cycles from `start` to `done` for `qbits` quotient bits.
pub const fn divide_cycles(qbits: usize) -> usize {
    qbits + 3
}

#[derive(Copy, Clone, Debug, PartialEq, LogicState)]
pub enum DividerState {
    Idle,
    Align,
    Check,
    Run,
}

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
    /// The control registers (`state`, `qbits_r`, `qmax`, `count`, `fin`)
    /// are [`Kept`]: the P lockstep dividers of the preprocessor have
    /// identical control, which yosys's opt_merge folded into one copy
    /// driving all of them across the die (P = 2's critical path on
    /// d1e0402: 12.6 ns, 11.1 routing).
    state: Kept<DividerState>,
    num_r: DFF<Bits<64>>,
    den_r: DFF<Bits<64>>,
    qbits_r: Kept<Bits<8>>,
    high: DFF<Bits<64>>,
    /// The bits of num below `qbits`, shifted up to bit 63.
    numer: DFF<Bits<64>>,
    /// 2^qbits - 1, the saturated quotient.
    qmax: Kept<Bits<32>>,
    rem: DFF<Bits<64>>,
    q: DFF<Bits<32>>,
    count: Kept<Bits<8>>,
    overflow: DFF<Bit>,
    fin: Kept<Bit>,
    shifted: Signal<Local, Bits<64>>,
    one32: Constant<Bits<32>>,
    one8: Constant<Bits<8>>,
    width: Constant<Bits<8>>,
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
            state: Default::default(),
            num_r: Default::default(),
            den_r: Default::default(),
            qbits_r: Default::default(),
            high: Default::default(),
            numer: Default::default(),
            qmax: Default::default(),
            rem: Default::default(),
            q: Default::default(),
            count: Default::default(),
            overflow: Default::default(),
            fin: Default::default(),
            shifted: Default::default(),
            one32: Constant::new(1.into()),
            one8: Constant::new(1.into()),
            width: Constant::new(64.into()),
        }
    }
}

impl Logic for Divider {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, num_r, den_r, high, numer, rem, q, overflow);
        self.state.clock.next = self.clock.val();
        self.state.d.next = self.state.q.val();
        self.qbits_r.clock.next = self.clock.val();
        self.qbits_r.d.next = self.qbits_r.q.val();
        self.qmax.clock.next = self.clock.val();
        self.qmax.d.next = self.qmax.q.val();
        self.count.clock.next = self.clock.val();
        self.count.d.next = self.count.q.val();
        self.fin.clock.next = self.clock.val();
        self.done.next = self.fin.q.val();
        self.busy.next = self.state.q.val() != DividerState::Idle;
        self.quotient.next = self.q.q.val();
        self.fin.d.next = false;
        self.shifted.next = (self.rem.q.val() << 1) | (self.numer.q.val() >> 63);
        match self.state.q.val() {
            DividerState::Align => {
                self.high.d.next = self.num_r.q.val() >> self.qbits_r.q.val();
                self.numer.d.next = self.num_r.q.val() << (self.width.val() - self.qbits_r.q.val());
                self.qmax.d.next = (self.one32.val() << self.qbits_r.q.val()) - self.one32.val();
                self.state.d.next = DividerState::Check;
            }
            DividerState::Check => {
                self.rem.d.next = self.high.q.val();
                self.overflow.d.next = self.high.q.val() >= self.den_r.q.val();
                self.q.d.next = 0.into();
                self.count.d.next = self.qbits_r.q.val();
                self.state.d.next = DividerState::Run;
            }
            DividerState::Run => {
                self.numer.d.next = self.numer.q.val() << 1;
                if self.shifted.val() >= self.den_r.q.val() {
                    self.rem.d.next = self.shifted.val() - self.den_r.q.val();
                    self.q.d.next = (self.q.q.val() << 1) | self.one32.val();
                } else {
                    self.rem.d.next = self.shifted.val();
                    self.q.d.next = self.q.q.val() << 1;
                }
                self.count.d.next = self.count.q.val() - self.one8.val();
                if self.count.q.val() == self.one8.val() {
                    self.state.d.next = DividerState::Idle;
                    self.fin.d.next = true;
                    if self.overflow.q.val() {
                        self.q.d.next = self.qmax.q.val();
                    }
                }
            }
            _ => {}
        }
        if self.start.val() {
            self.num_r.d.next = self.num.val();
            self.den_r.d.next = self.den.val();
            self.qbits_r.d.next = self.qbits.val();
            self.state.d.next = DividerState::Align;
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
            assert_eq!(cycles, divide_cycles(qb as usize));
        }
    }
}
