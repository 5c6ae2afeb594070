//! 1BitSquared iCEBreaker (Lattice iCE40 UP5K, SG48, 12 MHz oscillator):
//! the top level around [`BoardCore`], pins as in
//! constraints/icebreaker.pcf. UART only (docs/boards.md says why).
//!
//! - `clk` (35) -> the logic clock directly at 12 MHz (the default), or
//!   through SB_PLL40_PAD for another frequency (16..=275 MHz);
//! - UART on the FT2232H (channel B): `rx` (6, FTDI to FPGA), `tx` (9,
//!   FPGA to FTDI);
//! - LEDs (active low): `ledg_n` (37, green) blinks while idle and PLL
//!   locked, stays on while busy; `ledr_n` (11, red) on after an error.

use super::core::BoardCore;
use super::pll::Pll;
use super::{Board, BoardConfig, BoardTop, HostPins, TopPins};
use crate::rtl::CircuitSpec;
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct IceBreakerTop {
    pub clk: Signal<In, Clock>,
    pub rx: Signal<In, Bit>,
    pub tx: Signal<Out, Bit>,
    pub ledr_n: Signal<Out, Bit>,
    pub ledg_n: Signal<Out, Bit>,
    pub pll: Pll,
    pub core: BoardCore,
    _cfg: super::Settings,
}

impl IceBreakerTop {
    /// The top around the engine of `spec` (its multiplier form must
    /// suit the board's FPGA family), clocked and with the UART as `cfg`
    /// asks.
    pub fn new(spec: &CircuitSpec, cfg: &BoardConfig) -> Result<IceBreakerTop> {
        let s = super::Settings::new(Board::IceBreaker, spec, cfg)?;
        let mut t = IceBreakerTop {
            clk: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            ledr_n: Default::default(),
            ledg_n: Default::default(),
            pll: Pll::new(s.pll),
            core: BoardCore::new(spec, s.divisor, s.heartbeat_bit)?,
            _cfg: s,
        };
        t.connect_all();
        Ok(t)
    }
}

impl Logic for IceBreakerTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk.val();
        self.core.clock.next = self.pll.clock_out.val();
        self.core.pll_locked.next = self.pll.locked.val();
        self.core.uart_rx.next = self.rx.val();
        self.tx.next = self.core.uart_tx.val();
        // No parallel port: its inputs are tied off (synthesis removes it).
        self.core.par_select.next = false;
        self.core.par_in_data.next = 0.into();
        self.core.par_in_valid.next = false;
        self.core.par_out_ready.next = false;
        self.ledg_n.next = !(self.core.led_locked.val()
            && (self.core.led_heartbeat.val() || self.core.led_busy.val()));
        self.ledr_n.next = !self.core.led_error.val();
    }
}

impl BoardTop for IceBreakerTop {
    fn settings(&self) -> &super::Settings {
        &self._cfg
    }
    fn drive(&mut self, p: &HostPins) {
        self.rx.next = p.uart_rx;
    }
    fn clock(&mut self, high: bool) {
        self.clk.next = Clock { clk: high };
    }
    fn sense(&self) -> TopPins {
        TopPins {
            uart_tx: self.tx.val(),
            par_in_ready: false,
            par_out_data: 0,
            par_out_valid: false,
            heartbeat: !self.ledg_n.val(),
            locked: true,
            busy: self.core.led_busy.val(),
            error: !self.ledr_n.val(),
        }
    }
}
