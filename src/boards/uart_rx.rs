//! UART receiver, 8N1, LSB first, `divisor` clock cycles per bit.
//!
//! The line passes a two-flip-flop synchroniser (stored inverted, so the
//! registers' power-up value 0 means an idle, high line). A start bit is
//! taken when the synchronised line is low; it is checked again half a bit
//! later (a shorter low pulse is ignored), then the 8 data bits and the
//! stop bit are sampled in the middle of each bit. A complete byte shows
//! as a one-cycle `valid` strobe with `data`; a low stop bit instead gives
//! a one-cycle `frame_error` strobe and no byte. There is no buffer: the
//! consumer takes `data` in the cycle of `valid` (it stays on `data` until
//! the next byte ends).

use super::check_divisor;
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct UartRx {
    pub clock: Signal<In, Clock>,
    /// The serial line (idle high).
    pub rx: Signal<In, Bit>,
    pub data: Signal<Out, Bits<8>>,
    pub valid: Signal<Out, Bit>,
    pub frame_error: Signal<Out, Bit>,
    /// Synchroniser, inverted (1 = line low).
    low1: DFF<Bit>,
    low2: DFF<Bit>,
    busy: DFF<Bit>,
    count: DFF<Bits<16>>,
    bit_index: DFF<Bits<4>>,
    shift: DFF<Bits<8>>,
    strobe: DFF<Bit>,
    ferr: DFF<Bit>,
    /// Cycles from the detected start edge to the middle of the start bit, minus one.
    half: Constant<Bits<16>>,
    /// Cycles per bit minus one.
    period: Constant<Bits<16>>,
    stop_bit: Constant<Bits<4>>,
    msb: Constant<Bits<8>>,
    _divisor: u32,
}

impl UartRx {
    /// A receiver with `divisor` clock cycles per bit (2..=65535).
    pub fn new(divisor: u32) -> Result<UartRx> {
        check_divisor(divisor)?;
        Ok(UartRx {
            clock: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            frame_error: Default::default(),
            low1: Default::default(),
            low2: Default::default(),
            busy: Default::default(),
            count: Default::default(),
            bit_index: Default::default(),
            shift: Default::default(),
            strobe: Default::default(),
            ferr: Default::default(),
            half: Constant::new((divisor as u64 / 2 - 1).into()),
            period: Constant::new((divisor as u64 - 1).into()),
            stop_bit: Constant::new(9.into()),
            msb: Constant::new(0x80.into()),
            _divisor: divisor,
        })
    }

    pub fn divisor(&self) -> u32 {
        self._divisor
    }
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, low1, low2, busy, count, bit_index, shift, strobe, ferr);
        self.low1.d.next = !self.rx.val();
        self.low2.d.next = self.low1.q.val();
        self.strobe.d.next = false;
        self.ferr.d.next = false;
        self.valid.next = self.strobe.q.val();
        self.frame_error.next = self.ferr.q.val();
        self.data.next = self.shift.q.val();
        if !self.busy.q.val() {
            if self.low2.q.val() {
                self.busy.d.next = true;
                self.count.d.next = self.half.val();
                self.bit_index.d.next = 0.into();
            }
        } else if self.count.q.val().any() {
            self.count.d.next = self.count.q.val() - 1;
        } else {
            self.count.d.next = self.period.val();
            self.bit_index.d.next = self.bit_index.q.val() + 1;
            if !self.bit_index.q.val().any() {
                // Middle of the start bit: a glitch if the line is high again.
                if !self.low2.q.val() {
                    self.busy.d.next = false;
                }
            } else if self.bit_index.q.val() == self.stop_bit.val() {
                self.busy.d.next = false;
                if self.low2.q.val() {
                    self.ferr.d.next = true;
                } else {
                    self.strobe.d.next = true;
                }
            } else if self.low2.q.val() {
                self.shift.d.next = self.shift.q.val() >> 1;
            } else {
                self.shift.d.next = (self.shift.q.val() >> 1) | self.msb.val();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive `bits` (one level per bit, `div` cycles each, then idle) and
    /// collect the strobes.
    fn receive(div: u32, levels: &[bool], idle: usize) -> (Vec<u8>, usize) {
        let mut r = UartRx::new(div).unwrap();
        r.connect_all();
        let mut line: Vec<bool> = vec![true; 7];
        for &l in levels {
            line.extend(std::iter::repeat_n(l, div as usize));
        }
        line.extend(std::iter::repeat_n(true, idle));
        let (mut got, mut errors) = (Vec::new(), 0);
        for l in line {
            r.rx.next = l;
            r.clock.next = Clock { clk: false };
            assert!(simulate(&mut r, 100));
            if r.valid.val() {
                got.push(r.data.val().to_u64() as u8);
            }
            if r.frame_error.val() {
                errors += 1;
            }
            r.clock.next = Clock { clk: true };
            assert!(simulate(&mut r, 100));
        }
        (got, errors)
    }

    fn frame(b: u8, stop: bool) -> Vec<bool> {
        let mut v = vec![false];
        v.extend((0..8).map(|i| b >> i & 1 == 1));
        v.push(stop);
        v
    }

    #[test]
    fn receives_bytes_at_several_divisors() {
        for div in [2u32, 3, 4, 7, 16] {
            let bytes = [0x00u8, 0xff, 0xa5, 0x5a, 0x01, 0x80];
            let levels: Vec<bool> = bytes.iter().flat_map(|&b| frame(b, true)).collect();
            let (got, errors) = receive(div, &levels, 3 * div as usize);
            assert_eq!(got, bytes, "divisor {div}");
            assert_eq!(errors, 0);
        }
    }

    #[test]
    fn a_low_stop_bit_is_a_framing_error_and_a_glitch_is_no_start() {
        let mut levels = frame(0x42, false);
        levels.extend([true, true]);
        levels.extend(frame(0x17, true));
        let (got, errors) = receive(8, &levels, 40);
        assert_eq!(got, [0x17]);
        assert_eq!(errors, 1);
        // A low pulse shorter than half a bit starts nothing.
        let mut r = UartRx::new(8).unwrap();
        r.connect_all();
        for i in 0..100 {
            r.rx.next = !(10..12).contains(&i);
            r.clock.next = Clock { clk: i % 2 == 1 };
            assert!(simulate(&mut r, 100));
            assert!(!r.valid.val() && !r.frame_error.val());
        }
        assert!(UartRx::new(1).is_err());
    }
}
