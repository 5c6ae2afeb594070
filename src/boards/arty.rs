//! Digilent Arty A7-100T (Xilinx Artix-7 xc7a100tcsg324-1, 100 MHz
//! oscillator): the top level around [`BoardCore`], pins as in
//! constraints/arty_a7.xdc.
//!
//! - `clk100mhz` (E3) -> MMCME2_BASE + BUFG -> the logic clock;
//! - UART on the FT2232HQ (channel B): `uart_txd_in` (A9, FTDI to FPGA),
//!   `uart_rxd_out` (D10, FPGA to FTDI);
//! - slide switch SW0 `sw0` (A8): up = parallel port, down = UART;
//! - LEDs LD4..LD7 `led0`..`led3` (H5 J5 T9 T10): heartbeat, MMCM locked,
//!   busy, error;
//! - parallel port on Pmod JA (input data), JB (output data) and JC
//!   (handshakes) (docs/boards.md has the pin table).

use super::core::BoardCore;
use super::pll::Pll;
use super::{Board, BoardConfig, BoardTop, HostPins, TopPins};
use crate::rtl::CircuitSpec;
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct ArtyTop {
    pub clk100mhz: Signal<In, Clock>,
    pub uart_txd_in: Signal<In, Bit>,
    pub uart_rxd_out: Signal<Out, Bit>,
    pub sw0: Signal<In, Bit>,
    pub led0: Signal<Out, Bit>,
    pub led1: Signal<Out, Bit>,
    pub led2: Signal<Out, Bit>,
    pub led3: Signal<Out, Bit>,
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

impl ArtyTop {
    /// The top around the engine of `spec` (its multiplier form must
    /// suit the board's FPGA family), clocked and with the UART as `cfg`
    /// asks.
    pub fn new(spec: &CircuitSpec, cfg: &BoardConfig) -> Result<ArtyTop> {
        let s = super::Settings::new(Board::ArtyA7, spec, cfg)?;
        let mut t = ArtyTop {
            clk100mhz: Default::default(),
            uart_txd_in: Default::default(),
            uart_rxd_out: Default::default(),
            sw0: Default::default(),
            led0: Default::default(),
            led1: Default::default(),
            led2: Default::default(),
            led3: Default::default(),
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

impl Logic for ArtyTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk100mhz.val();
        self.core.clock.next = self.pll.clock_out.val();
        self.core.pll_locked.next = self.pll.locked.val();
        self.core.uart_rx.next = self.uart_txd_in.val();
        self.uart_rxd_out.next = self.core.uart_tx.val();
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
    }
}

impl BoardTop for ArtyTop {
    fn settings(&self) -> &super::Settings {
        &self._cfg
    }
    fn drive(&mut self, p: &HostPins) {
        self.uart_txd_in.next = p.uart_rx;
        self.sw0.next = p.par_select;
        self.par_in_data.next = (p.par_in_data as u64).into();
        self.par_in_valid.next = p.par_in_valid;
        self.par_out_ready.next = p.par_out_ready;
    }
    fn clock(&mut self, high: bool) {
        self.clk100mhz.next = Clock { clk: high };
    }
    fn sense(&self) -> TopPins {
        TopPins {
            uart_tx: self.uart_rxd_out.val(),
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
