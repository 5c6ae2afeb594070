//! UART transmitter, 8N1, LSB first, `divisor` clock cycles per bit, with
//! a valid/ready byte input: a byte is taken when `valid` and `ready` are
//! both high, and `ready` stays low until its stop bit has been sent. The
//! line is driven from a register (stored inverted, so the power-up value
//! 0 is an idle, high line). A frame lasts 10 bits plus one idle cycle.

use super::check_divisor;
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct UartTx {
    pub clock: Signal<In, Clock>,
    pub data: Signal<In, Bits<8>>,
    pub valid: Signal<In, Bit>,
    pub ready: Signal<Out, Bit>,
    /// The serial line (idle high).
    pub tx: Signal<Out, Bit>,
    busy: DFF<Bit>,
    count: DFF<Bits<16>>,
    sent: DFF<Bits<4>>,
    /// Bits still to send, the current one in bit 0: start, 8 data, stop.
    shift: DFF<Bits<10>>,
    /// The line, inverted (1 = low).
    low: DFF<Bit>,
    period: Constant<Bits<16>>,
    stop_bit: Constant<Bits<4>>,
    stop: Constant<Bits<10>>,
    _divisor: u32,
}

impl UartTx {
    /// A transmitter with `divisor` clock cycles per bit (2..=65535).
    pub fn new(divisor: u32) -> Result<UartTx> {
        check_divisor(divisor)?;
        Ok(UartTx {
            clock: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            ready: Default::default(),
            tx: Default::default(),
            busy: Default::default(),
            count: Default::default(),
            sent: Default::default(),
            shift: Default::default(),
            low: Default::default(),
            period: Constant::new((divisor as u64 - 1).into()),
            stop_bit: Constant::new(9.into()),
            stop: Constant::new((1u64 << 9).into()),
            _divisor: divisor,
        })
    }

    pub fn divisor(&self) -> u32 {
        self._divisor
    }
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, busy, count, sent, shift, low);
        self.ready.next = !self.busy.q.val();
        self.tx.next = !self.low.q.val();
        self.low.d.next = false;
        if !self.busy.q.val() {
            if self.valid.val() {
                self.busy.d.next = true;
                self.shift.d.next = (bit_cast::<10, 8>(self.data.val()) << 1) | self.stop.val();
                self.count.d.next = self.period.val();
                self.sent.d.next = 0.into();
            }
        } else {
            self.low.d.next = !self.shift.q.val().get_bit(0);
            if self.count.q.val().any() {
                self.count.d.next = self.count.q.val() - 1;
            } else {
                self.count.d.next = self.period.val();
                self.shift.d.next = self.shift.q.val() >> 1;
                self.sent.d.next = self.sent.q.val() + 1;
                if self.sent.q.val() == self.stop_bit.val() {
                    self.busy.d.next = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_start_data_stop_with_exact_bit_times() {
        for div in [2u32, 5, 9] {
            let mut t = UartTx::new(div).unwrap();
            t.connect_all();
            let bytes = [0xa5u8, 0x00, 0xff, 0x3c];
            let (mut next, mut line) = (0usize, Vec::new());
            for _ in 0..(bytes.len() as u32 * (10 * div + 1) + 20) {
                t.valid.next = next < bytes.len();
                t.data.next = (bytes[next.min(bytes.len() - 1)] as u64).into();
                t.clock.next = Clock { clk: false };
                assert!(simulate(&mut t, 100));
                line.push(t.tx.val());
                if t.valid.val() && t.ready.val() {
                    next += 1;
                }
                t.clock.next = Clock { clk: true };
                assert!(simulate(&mut t, 100));
            }
            assert_eq!(next, bytes.len());
            // Decode the recorded line by bit times.
            let mut got = Vec::new();
            let mut i = 0;
            while i < line.len() {
                if line[i] {
                    i += 1;
                    continue;
                }
                let bit = |k: usize| line[i + k * div as usize];
                // The whole start bit is low, and every bit holds for `div` cycles.
                for k in 0..10usize {
                    let s = i + k * div as usize;
                    assert!(line[s..s + div as usize].iter().all(|&l| l == bit(k)));
                }
                assert!(bit(9), "stop bit");
                got.push((1..9).rev().fold(0u8, |a, k| a << 1 | bit(k) as u8));
                i += 10 * div as usize;
            }
            assert_eq!(got, bytes, "divisor {div}");
        }
    }
}
