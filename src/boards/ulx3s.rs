//! Radiona ULX3S (Lattice ECP5 LFE5U-85F, CABGA381, 25 MHz oscillator):
//! the top level around [`BoardCore`], pins as in constraints/ulx3s.lpf.
//!
//! - `clk_25mhz` (G2) -> EHXPLLL -> the logic clock;
//! - UART on the FT231X: `ftdi_txd` (M1, FTDI to FPGA), `ftdi_rxd` (L4,
//!   FPGA to FTDI);
//! - DIP switch 1 `sw0` (E8): on = parallel port, off = UART;
//! - LEDs `led0`..`led4` (B2 C2 C1 D2 D1): heartbeat, PLL locked, busy,
//!   error, parallel port selected;
//! - parallel port on header J1: input channel on the gp row, output
//!   channel on the gn row (docs/boards.md has the pin table).

use super::core::BoardCore;
use super::pll::Pll;
use super::{Board, BoardConfig, BoardTop, HostPins, TopPins};
use crate::rtl::CircuitSpec;
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Ulx3sTop {
    pub clk_25mhz: Signal<In, Clock>,
    pub ftdi_txd: Signal<In, Bit>,
    pub ftdi_rxd: Signal<Out, Bit>,
    pub sw0: Signal<In, Bit>,
    pub led0: Signal<Out, Bit>,
    pub led1: Signal<Out, Bit>,
    pub led2: Signal<Out, Bit>,
    pub led3: Signal<Out, Bit>,
    pub led4: Signal<Out, Bit>,
    pub par_in_data: Signal<In, Bits<8>>,
    pub par_in_valid: Signal<In, Bit>,
    pub par_in_ready: Signal<Out, Bit>,
    pub par_out_data: Signal<Out, Bits<8>>,
    pub par_out_valid: Signal<Out, Bit>,
    pub par_out_ready: Signal<In, Bit>,
    pub pll: Pll,
    pub core: BoardCore,
    _cfg: super::Settings,
}

impl Ulx3sTop {
    /// The top around the engine of `spec` (its multiplier form must
    /// suit the board's FPGA family), clocked and with the UART as `cfg`
    /// asks.
    pub fn new(spec: &CircuitSpec, cfg: &BoardConfig) -> Result<Ulx3sTop> {
        let s = super::Settings::new(Board::Ulx3s, spec, cfg)?;
        let mut t = Ulx3sTop {
            clk_25mhz: Default::default(),
            ftdi_txd: Default::default(),
            ftdi_rxd: Default::default(),
            sw0: Default::default(),
            led0: Default::default(),
            led1: Default::default(),
            led2: Default::default(),
            led3: Default::default(),
            led4: Default::default(),
            par_in_data: Default::default(),
            par_in_valid: Default::default(),
            par_in_ready: Default::default(),
            par_out_data: Default::default(),
            par_out_valid: Default::default(),
            par_out_ready: Default::default(),
            pll: Pll::new(s.pll),
            core: BoardCore::new(spec, s.divisor, s.heartbeat_bit)?,
            _cfg: s,
        };
        t.connect_all();
        Ok(t)
    }
}

impl Logic for Ulx3sTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_25mhz.val();
        self.core.clock.next = self.pll.clock_out.val();
        self.core.pll_locked.next = self.pll.locked.val();
        self.core.uart_rx.next = self.ftdi_txd.val();
        self.ftdi_rxd.next = self.core.uart_tx.val();
        self.core.par_select.next = self.sw0.val();
        self.core.par_in_data.next = self.par_in_data.val();
        self.core.par_in_valid.next = self.par_in_valid.val();
        self.par_in_ready.next = self.core.par_in_ready.val();
        self.par_out_data.next = self.core.par_out_data.val();
        self.par_out_valid.next = self.core.par_out_valid.val();
        self.core.par_out_ready.next = self.par_out_ready.val();
        self.led0.next = self.core.led_heartbeat.val();
        self.led1.next = self.core.led_locked.val();
        self.led2.next = self.core.led_busy.val();
        self.led3.next = self.core.led_error.val();
        self.led4.next = self.core.led_parallel.val();
    }
}

impl BoardTop for Ulx3sTop {
    fn settings(&self) -> &super::Settings {
        &self._cfg
    }
    fn drive(&mut self, p: &HostPins) {
        self.ftdi_txd.next = p.uart_rx;
        self.sw0.next = p.par_select;
        self.par_in_data.next = (p.par_in_data as u64).into();
        self.par_in_valid.next = p.par_in_valid;
        self.par_out_ready.next = p.par_out_ready;
    }
    fn clock(&mut self, high: bool) {
        self.clk_25mhz.next = Clock { clk: high };
    }
    fn sense(&self) -> TopPins {
        TopPins {
            uart_tx: self.ftdi_rxd.val(),
            par_in_ready: self.par_in_ready.val(),
            par_out_data: self.par_out_data.val().to_u64() as u8,
            par_out_valid: self.par_out_valid.val(),
            heartbeat: self.led0.val(),
            locked: self.led1.val(),
            busy: self.led2.val(),
            error: self.led3.val(),
        }
    }
}
