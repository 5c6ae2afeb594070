//! Byte-wide parallel port on GPIO pins: one input and one output
//! channel, each 8 data bits + valid + ready, with a four-phase
//! (return-to-zero) handshake so the other side needs no access to the
//! board's clock (docs/boards.md, "Parallel port"):
//!
//! - sender: put the byte on `data`, then (at least one board clock
//!   period later) raise `valid`;
//! - receiver: take the byte, raise `ready`;
//! - sender: drop `valid` (it may change `data` once it sees `ready`);
//! - receiver: drop `ready`; the next byte may start.
//!
//! The board's inputs (`valid` and `data` of the input channel, `ready`
//! of the output channel) pass two-flip-flop synchronisers; its outputs
//! come from registers. `enable` low parks a channel (it ignores the
//! host and raises nothing).

use rust_hdl::prelude::*;

/// Host -> board: the pins in, a valid/ready byte stream out.
#[derive(LogicBlock, Default)]
pub struct ParallelIn {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub pin_data: Signal<In, Bits<8>>,
    pub pin_valid: Signal<In, Bit>,
    pub pin_ready: Signal<Out, Bit>,
    pub out_valid: Signal<Out, Bit>,
    pub out_ready: Signal<In, Bit>,
    pub out_data: Signal<Out, Bits<8>>,
    valid1: DFF<Bit>,
    valid2: DFF<Bit>,
    data1: DFF<Bits<8>>,
    data2: DFF<Bits<8>>,
    hold: DFF<Bit>,
    held: DFF<Bits<8>>,
    ack: DFF<Bit>,
}

impl Logic for ParallelIn {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, valid1, valid2, data1, data2, hold, held, ack);
        self.valid1.d.next = self.pin_valid.val();
        self.valid2.d.next = self.valid1.q.val();
        self.data1.d.next = self.pin_data.val();
        self.data2.d.next = self.data1.q.val();
        self.pin_ready.next = self.ack.q.val();
        self.out_valid.next = self.hold.q.val();
        self.out_data.next = self.held.q.val();
        if !self.hold.q.val() && !self.ack.q.val() && self.valid2.q.val() && self.enable.val() {
            self.hold.d.next = true;
            self.held.d.next = self.data2.q.val();
        }
        if self.hold.q.val() && self.out_ready.val() {
            self.hold.d.next = false;
            self.ack.d.next = true;
        }
        if self.ack.q.val() && !self.valid2.q.val() {
            self.ack.d.next = false;
        }
    }
}

/// Board -> host: a valid/ready byte stream in, the pins out. A byte is
/// taken from the stream (`in_ready` high for one cycle) in the cycle
/// after the host's acknowledgement is seen: `in_ready` is a register, so
/// the pins' synchroniser near the I/O ring and the bridge's record
/// logic are two paths (one path across the die was the critical path of
/// the ULX3S top at P = 3, docs/hardware.md). The host drops `ready` only
/// after it sees `valid` fall, at least three cycles later, so the byte is
/// taken before a new one can load.
#[derive(LogicBlock, Default)]
pub struct ParallelOut {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub in_valid: Signal<In, Bit>,
    pub in_ready: Signal<Out, Bit>,
    pub in_data: Signal<In, Bits<8>>,
    pub pin_data: Signal<Out, Bits<8>>,
    pub pin_valid: Signal<Out, Bit>,
    pub pin_ready: Signal<In, Bit>,
    ready1: DFF<Bit>,
    ready2: DFF<Bit>,
    held: DFF<Bits<8>>,
    loaded: DFF<Bit>,
    valid: DFF<Bit>,
    taken: DFF<Bit>,
}

impl Logic for ParallelOut {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, ready1, ready2, held, loaded, valid, taken);
        self.ready1.d.next = self.pin_ready.val();
        self.ready2.d.next = self.ready1.q.val();
        self.pin_data.next = self.held.q.val();
        self.pin_valid.next = self.valid.q.val();
        self.taken.d.next = self.valid.q.val() && self.ready2.q.val();
        self.in_ready.next = self.taken.q.val();
        if !self.loaded.q.val() && !self.ready2.q.val() && self.in_valid.val() && self.enable.val()
        {
            self.loaded.d.next = true;
            self.held.d.next = self.in_data.val();
        }
        if self.loaded.q.val() && !self.valid.q.val() && !self.ready2.q.val() {
            self.valid.d.next = true;
        }
        if self.valid.q.val() && self.ready2.q.val() {
            self.valid.d.next = false;
            self.loaded.d.next = false;
        }
    }
}

/// A host-side model of the four-phase protocol, one step per board
/// clock cycle (used by the board simulations and the tests): sends
/// `tx` bytes to a [`ParallelIn`] and collects bytes from a
/// [`ParallelOut`].
#[derive(Clone, Debug, Default)]
pub struct ParallelHost {
    pub tx: Vec<u8>,
    pub sent: usize,
    pub rx: Vec<u8>,
    /// Pins the host drives.
    pub in_data: u8,
    pub in_valid: bool,
    pub out_ready: bool,
    phase: u8,
}

impl ParallelHost {
    /// A host that will send `tx`.
    pub fn new(tx: Vec<u8>) -> ParallelHost {
        ParallelHost {
            tx,
            ..Default::default()
        }
    }

    /// One step: sees the board's pins (`in_ready`, `out_valid`,
    /// `out_data`) as sampled this cycle and sets the pins it drives for
    /// the next cycle. `may_send`: whether the host may start a new byte.
    pub fn step(&mut self, in_ready: bool, out_valid: bool, out_data: u8, may_send: bool) {
        // Input channel: data first, valid one step later.
        match self.phase {
            0 if self.sent < self.tx.len() && may_send && !in_ready => {
                self.in_data = self.tx[self.sent];
                self.phase = 1;
            }
            1 => {
                self.in_valid = true;
                self.phase = 2;
            }
            2 if in_ready => {
                self.in_valid = false;
                self.sent += 1;
                self.phase = 0;
            }
            _ => {}
        }
        // Output channel.
        if out_valid && !self.out_ready {
            self.rx.push(out_data);
            self.out_ready = true;
        } else if !out_valid && self.out_ready {
            self.out_ready = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_phase_loopback_through_both_channels() {
        // Host -> ParallelIn -> ParallelOut -> host; the host starts
        // bytes after random pauses.
        use rand::{Rng, SeedableRng};
        let mut pin = ParallelIn::default();
        let mut pout = ParallelOut::default();
        pin.connect_all();
        pout.connect_all();
        let mut host = ParallelHost {
            tx: (0..=255u8).rev().chain([0, 255, 0x5a]).collect(),
            ..Default::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for _ in 0..20_000 {
            pin.enable.next = true;
            pout.enable.next = true;
            pin.pin_data.next = (host.in_data as u64).into();
            pin.pin_valid.next = host.in_valid;
            pout.pin_ready.next = host.out_ready;
            for clk in [false, true] {
                pin.clock.next = Clock { clk };
                pout.clock.next = Clock { clk };
                for _ in 0..3 {
                    pout.in_valid.next = pin.out_valid.val();
                    pout.in_data.next = pin.out_data.val();
                    pin.out_ready.next = pout.in_ready.val();
                    assert!(simulate(&mut pin, 100));
                    assert!(simulate(&mut pout, 100));
                }
                if !clk {
                    host.step(
                        pin.pin_ready.val(),
                        pout.pin_valid.val(),
                        pout.pin_data.val().to_u64() as u8,
                        rng.gen_bool(0.5),
                    );
                }
            }
        }
        assert_eq!(host.rx, host.tx);
    }
}
