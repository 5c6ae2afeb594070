//! Drive a whole board top in rust-hdl's simulator the way a host program
//! drives the board: bytes into the UART line (bit-banged at the board's
//! divisor) or through the parallel port's four-phase handshake, records
//! out of the UART line or the parallel port, with the protocol's window
//! of [`MAX_GROUPS_IN_FLIGHT`] unanswered groups. The oscillator pin is
//! toggled directly (the PLL's simulation model passes it through), so a
//! simulated cycle is one engine clock cycle.

use super::parallel::ParallelHost;
use super::protocol::{MAX_GROUPS_IN_FLIGHT, RECORD_BYTES};
use super::{BoardTop, HostPins};
use anyhow::{bail, Result};
use rust_hdl::prelude::*;

/// Which port the host uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Uart,
    Parallel,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct SimOutcome {
    /// Bytes the board sent back.
    pub bytes: Vec<u8>,
    /// Clock cycles simulated.
    pub cycles: u64,
    /// Whether the error LED came on.
    pub error: bool,
    /// Whether the busy LED was on at the end.
    pub busy_at_end: bool,
    /// Whether the PLL-locked indication was on at the end.
    pub locked: bool,
    /// Heartbeat LED changes seen.
    pub heartbeat_toggles: u64,
}

/// Host side of the UART: a bit-banged transmitter and a receiver that
/// samples the board's line in the middle of each bit.
struct UartHost {
    divisor: u64,
    // Transmit.
    tx_byte: Option<(u8, u64)>, // byte, cycles into its frame
    // Receive.
    rx_at: Option<u64>, // cycles since the start edge
    rx_shift: u8,
    rx: Vec<u8>,
}

impl UartHost {
    /// The level of the host's transmit line this cycle; advances one cycle.
    fn tx_level(&mut self) -> bool {
        let Some((b, t)) = self.tx_byte else {
            return true;
        };
        let bit = t / self.divisor;
        let level = match bit {
            0 => false,
            1..=8 => b >> (bit - 1) & 1 == 1,
            _ => true,
        };
        // One frame: start, 8 data, stop (10 bits).
        self.tx_byte = if t + 1 >= 10 * self.divisor {
            None
        } else {
            Some((b, t + 1))
        };
        level
    }

    /// Sample the board's transmit line (one call per cycle).
    fn rx_sample(&mut self, line: bool) -> Result<()> {
        match self.rx_at {
            None => {
                if !line {
                    self.rx_at = Some(0);
                }
            }
            Some(t) => {
                let t = t + 1;
                self.rx_at = Some(t);
                let half = self.divisor / 2;
                if t >= half && (t - half).is_multiple_of(self.divisor) {
                    let bit = (t - half) / self.divisor;
                    match bit {
                        0 if line => {
                            bail!("the board's UART line: a start bit shorter than half a bit")
                        }
                        1..=8 => self.rx_shift = self.rx_shift >> 1 | (line as u8) << 7,
                        9 => {
                            if !line {
                                bail!("the board's UART line: framing error (stop bit low) after {} bytes", self.rx.len());
                            }
                            self.rx.push(self.rx_shift);
                            self.rx_at = None;
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// Send `input` (a whole number of groups of `group_bytes`, as
/// [`super::encode_histograms`] makes) through `port` and run until
/// `records` result records have come back (or `max_cycles`).
pub fn run<T: BoardTop>(
    top: &mut T,
    port: Port,
    input: &[u8],
    group_bytes: usize,
    records: usize,
    max_cycles: u64,
) -> Result<SimOutcome> {
    let s = *top.settings();
    if port == Port::Parallel && !s.board.has_parallel_port() {
        bail!("{} has no parallel port", s.board);
    }
    let lanes = s.layout.lanes;
    let want_bytes = records * RECORD_BYTES;
    let mut uart = UartHost {
        divisor: s.divisor as u64,
        tx_byte: None,
        rx_at: None,
        rx_shift: 0,
        rx: Vec::new(),
    };
    let mut par = ParallelHost::new(if port == Port::Parallel {
        input.to_vec()
    } else {
        Vec::new()
    });
    let mut pins = HostPins {
        par_select: port == Port::Parallel,
        ..Default::default()
    };
    // The host may start byte i once the records of all groups up to
    // i / group_bytes - MAX_GROUPS_IN_FLIGHT have arrived.
    let may_start = |i: usize, received: usize| -> bool {
        let g = i / group_bytes.max(1);
        let answered_groups = (g + 1).saturating_sub(MAX_GROUPS_IN_FLIGHT);
        received >= answered_groups * lanes
    };
    let (mut sent, mut cycle) = (0usize, 0u64);
    let (mut error, mut toggles, mut last_hb) = (false, 0u64, false);
    let mut last: super::TopPins = Default::default();
    // After the last record, a few cycles more (the host keeps answering
    // handshakes) so the busy indication can clear.
    let mut tail = 0;
    loop {
        let received_bytes = match port {
            Port::Uart => uart.rx.len(),
            Port::Parallel => par.rx.len(),
        };
        if received_bytes >= want_bytes {
            tail += 1;
            if tail > 32 {
                break;
            }
        } else if cycle >= max_cycles {
            bail!(
                "{}: {received_bytes} of {want_bytes} result bytes after {cycle} cycles ({sent} of {} input bytes sent)",
                s.board,
                input.len()
            );
        }
        let received = received_bytes / RECORD_BYTES;
        if port == Port::Uart {
            if uart.tx_byte.is_none() && sent < input.len() && may_start(sent, received) {
                uart.tx_byte = Some((input[sent], 0));
                sent += 1;
            }
            pins.uart_rx = uart.tx_level();
        } else {
            pins.par_in_data = par.in_data;
            pins.par_in_valid = par.in_valid;
            pins.par_out_ready = par.out_ready;
        }
        top.drive(&pins);
        top.clock(false);
        if !simulate(top, 10_000) {
            bail!("{}: the logic did not settle at cycle {cycle}", s.board);
        }
        let p = top.sense();
        last = p;
        error |= p.error;
        if p.heartbeat != last_hb {
            toggles += 1;
            last_hb = p.heartbeat;
        }
        match port {
            Port::Uart => uart.rx_sample(p.uart_tx)?,
            Port::Parallel => {
                let ok = may_start(par.sent, received);
                par.step(p.par_in_ready, p.par_out_valid, p.par_out_data, ok);
                sent = par.sent;
            }
        }
        top.clock(true);
        if !simulate(top, 10_000) {
            bail!("{}: the logic did not settle at cycle {cycle}", s.board);
        }
        if tail == 0 {
            cycle += 1;
        }
    }
    let bytes = match port {
        Port::Uart => uart.rx,
        Port::Parallel => par.rx,
    };
    Ok(SimOutcome {
        bytes,
        cycles: cycle,
        error: error || last.error,
        busy_at_end: last.busy,
        locked: last.locked,
        heartbeat_toggles: toggles,
    })
}
