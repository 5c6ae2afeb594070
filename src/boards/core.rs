//! What every board top holds behind its pins and clock block: the engine,
//! the byte bridge, the UART, the parallel port, the status LEDs. One
//! clock domain (the PLL's output); every board input passes a
//! two-flip-flop synchroniser.
//!
//! - `par_select` high routes the bridge to the parallel port, low to the
//!   UART (change it only while idle);
//! - `pll_locked` (synchronised) gates the bridge's input: no byte is taken
//!   before the PLL has locked;
//! - LEDs: `led_heartbeat` toggles about every half second (bit
//!   `heartbeat_bit` of a free-running counter), `led_locked`, `led_busy`
//!   (a pixel or record in flight, a group part-way), `led_error` (sticky:
//!   a UART byte arrived while the bridge could not take it, or a UART
//!   framing error), `led_parallel` (the parallel port is selected).

use super::bridge::Bridge;
use super::parallel::{ParallelIn, ParallelOut};
use super::uart_rx::UartRx;
use super::uart_tx::UartTx;
use crate::rtl::{CircuitSpec, Engine};
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct BoardCore {
    pub clock: Signal<In, Clock>,
    pub pll_locked: Signal<In, Bit>,
    pub uart_rx: Signal<In, Bit>,
    pub uart_tx: Signal<Out, Bit>,
    pub par_select: Signal<In, Bit>,
    pub par_in_data: Signal<In, Bits<8>>,
    pub par_in_valid: Signal<In, Bit>,
    pub par_in_ready: Signal<Out, Bit>,
    pub par_out_data: Signal<Out, Bits<8>>,
    pub par_out_valid: Signal<Out, Bit>,
    pub par_out_ready: Signal<In, Bit>,
    pub led_heartbeat: Signal<Out, Bit>,
    pub led_locked: Signal<Out, Bit>,
    pub led_busy: Signal<Out, Bit>,
    pub led_error: Signal<Out, Bit>,
    pub led_parallel: Signal<Out, Bit>,
    pub engine: Engine,
    pub bridge: Bridge,
    pub uart_in: UartRx,
    pub uart_out: UartTx,
    pub par_in: ParallelIn,
    pub par_out: ParallelOut,
    select1: DFF<Bit>,
    select2: DFF<Bit>,
    locked1: DFF<Bit>,
    locked2: DFF<Bit>,
    overrun: DFF<Bit>,
    framing: DFF<Bit>,
    heartbeat: DFF<Bits<32>>,
    sel: Signal<Local, Bit>,
    live: Signal<Local, Bit>,
    heartbeat_bit: Constant<Bits<5>>,
    _lanes: usize,
}

impl BoardCore {
    /// The core around the engine of `spec`, a UART of `divisor` clock
    /// cycles per bit, and the heartbeat on counter bit `heartbeat_bit`
    /// (0..=31).
    pub fn new(spec: &CircuitSpec, divisor: u32, heartbeat_bit: u32) -> Result<BoardCore> {
        let e = Engine::new(spec)?;
        Ok(BoardCore {
            clock: Default::default(),
            pll_locked: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            par_select: Default::default(),
            par_in_data: Default::default(),
            par_in_valid: Default::default(),
            par_in_ready: Default::default(),
            par_out_data: Default::default(),
            par_out_valid: Default::default(),
            par_out_ready: Default::default(),
            led_heartbeat: Default::default(),
            led_locked: Default::default(),
            led_busy: Default::default(),
            led_error: Default::default(),
            led_parallel: Default::default(),
            bridge: Bridge::new(spec.lanes(), spec.gates()),
            engine: e,
            uart_in: UartRx::new(divisor)?,
            uart_out: UartTx::new(divisor)?,
            par_in: Default::default(),
            par_out: Default::default(),
            select1: Default::default(),
            select2: Default::default(),
            locked1: Default::default(),
            locked2: Default::default(),
            overrun: Default::default(),
            framing: Default::default(),
            heartbeat: Default::default(),
            sel: Default::default(),
            live: Default::default(),
            heartbeat_bit: Constant::new((heartbeat_bit.min(31) as u64).into()),
            _lanes: spec.lanes(),
        })
    }
}

impl Logic for BoardCore {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, select1, select2, locked1, locked2, overrun, framing, heartbeat);
        self.engine.clock.next = self.clock.val();
        self.bridge.clock.next = self.clock.val();
        self.uart_in.clock.next = self.clock.val();
        self.uart_out.clock.next = self.clock.val();
        self.par_in.clock.next = self.clock.val();
        self.par_out.clock.next = self.clock.val();
        // Synchronisers.
        self.select1.d.next = self.par_select.val();
        self.select2.d.next = self.select1.q.val();
        self.locked1.d.next = self.pll_locked.val();
        self.locked2.d.next = self.locked1.q.val();
        self.sel.next = self.select2.q.val();
        self.live.next = self.locked2.q.val();
        // Byte sources and sinks.
        self.uart_in.rx.next = self.uart_rx.val();
        self.par_in.pin_data.next = self.par_in_data.val();
        self.par_in.pin_valid.next = self.par_in_valid.val();
        self.par_in_ready.next = self.par_in.pin_ready.val();
        self.par_in.enable.next = self.sel.val() && self.live.val();
        self.par_in.out_ready.next =
            self.sel.val() && self.live.val() && self.bridge.in_ready.val();
        self.bridge.in_valid.next = false;
        self.bridge.in_data.next = self.uart_in.data.val();
        if self.live.val() {
            if self.sel.val() {
                self.bridge.in_valid.next = self.par_in.out_valid.val();
                self.bridge.in_data.next = self.par_in.out_data.val();
            } else {
                self.bridge.in_valid.next = self.uart_in.valid.val();
            }
        }
        if self.uart_in.valid.val()
            && self.live.val()
            && !self.sel.val()
            && !self.bridge.in_ready.val()
        {
            self.overrun.d.next = true;
        }
        if self.uart_in.frame_error.val() && !self.sel.val() {
            self.framing.d.next = true;
        }
        self.uart_out.data.next = self.bridge.out_data.val();
        self.uart_out.valid.next = self.bridge.out_valid.val() && !self.sel.val();
        self.uart_tx.next = self.uart_out.tx.val();
        self.par_out.enable.next = self.sel.val();
        self.par_out.in_data.next = self.bridge.out_data.val();
        self.par_out.in_valid.next = self.bridge.out_valid.val() && self.sel.val();
        self.par_out.pin_ready.next = self.par_out_ready.val();
        self.par_out_data.next = self.par_out.pin_data.val();
        self.par_out_valid.next = self.par_out.pin_valid.val();
        self.bridge.out_ready.next = self.uart_out.ready.val();
        if self.sel.val() {
            self.bridge.out_ready.next = self.par_out.in_ready.val();
        }
        // Engine.
        self.engine.in_valid.next = self.bridge.beat_valid.val();
        self.bridge.beat_ready.next = self.engine.in_ready.val();
        for l in 0..self._lanes {
            self.engine.in_count[l].next = self.bridge.beat_count[l].val();
        }
        self.bridge.res_valid.next = self.engine.out_valid.val();
        self.engine.out_ready.next = self.bridge.res_ready.val();
        self.bridge.res_pixel.next = self.engine.out_pixel.val();
        self.bridge.res_tau1.next = self.engine.out_tau1.val();
        self.bridge.res_tau2.next = self.engine.out_tau2.val();
        self.bridge.res_fraction.next = self.engine.out_fraction.val();
        // Status.
        self.heartbeat.d.next = self.heartbeat.q.val() + 1;
        self.led_heartbeat.next = self
            .heartbeat
            .q
            .val()
            .get_bit(self.heartbeat_bit.val().index());
        self.led_locked.next = self.live.val();
        self.led_busy.next = self.bridge.busy.val();
        self.led_error.next = self.overrun.q.val() || self.framing.q.val();
        self.led_parallel.next = self.sel.val();
    }
}
