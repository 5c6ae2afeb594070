//! The engine top: ingest -> preproc -> gru (encoder, decoder, head) ->
//! extract -> result stream, built from a [`CircuitSpec`] (a quantised model,
//! its gate grid, P, M and the multiplier form). Ports:
//! - `in_valid`/`in_ready`/`in_count[l]`: one beat per gate, the counts of
//!   gate k of the P pixels of a group (lane l = pixel index mod P);
//! - `out_valid`/`out_ready`/`out_pixel`/`out_tau1`/`out_tau2`/`out_fraction`:
//!   one beat per pixel, in input order (the result port,
//!   [`super::protocol::RESULT_FIELDS`]);
//! - `dbg_valid`/`dbg_group`/`dbg_step`/`dbg_channel[3 l + c]`: the decoded
//!   head channels of every decoder step (a monitor port, no back-pressure).

use super::extract::Extract;
use super::gru::{Gru, Shape};
use super::ingest::Ingest;
use super::preproc::Preproc;
use super::protocol::{FractionCode, PixelIndex, TauCode};
use super::spec::CircuitSpec;
use super::stream::ResultStage;
use super::{Acc, Addr, Count};
use crate::fixed::{Golden, PixelCodes};
use anyhow::Result;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Engine {
    pub clock: Signal<In, Clock>,
    pub in_valid: Signal<In, Bit>,
    pub in_ready: Signal<Out, Bit>,
    pub in_count: Vec<Signal<In, Count>>,
    pub out_valid: Signal<Out, Bit>,
    pub out_ready: Signal<In, Bit>,
    pub out_pixel: Signal<Out, PixelIndex>,
    pub out_tau1: Signal<Out, TauCode>,
    pub out_tau2: Signal<Out, TauCode>,
    pub out_fraction: Signal<Out, FractionCode>,
    pub dbg_valid: Signal<Out, Bit>,
    pub dbg_group: Signal<Out, Bits<32>>,
    pub dbg_step: Signal<Out, Addr>,
    pub dbg_channel: Vec<Signal<Out, Acc>>,
    pub ingest: Ingest,
    pub preproc: Preproc,
    pub gru: Gru,
    pub extract: Extract,
    pub result: ResultStage,
    _spec: CircuitSpec,
    _shape: Shape,
}

impl Engine {
    /// Build the circuit a checked [`CircuitSpec`] describes (made by
    /// [`CircuitSpec::engine`]; the spec did every check).
    pub fn new(spec: &CircuitSpec) -> Result<Engine> {
        let (model, gates, p) = (spec.model(), spec.gates(), spec.lanes());
        let golden = Golden::new(model, spec.grid())?;
        let gru = Gru::new(model, gates, p, spec.macs(), spec.dsp());
        let shape = gru._shape;
        let mut e = Engine {
            clock: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            in_count: super::many(p),
            out_valid: Default::default(),
            out_ready: Default::default(),
            out_pixel: Default::default(),
            out_tau1: Default::default(),
            out_tau2: Default::default(),
            out_fraction: Default::default(),
            dbg_valid: Default::default(),
            dbg_group: Default::default(),
            dbg_step: Default::default(),
            dbg_channel: super::many(3 * p),
            ingest: Ingest::new(p, gates, spec.grid().baseline_gates),
            // The divider makes input codes: activations, Wa bits.
            preproc: Preproc::new(p, gates, spec.format(), spec.grid().baseline_gates),
            gru,
            extract: Extract::new(p, &golden.thresholds),
            result: ResultStage::default(),
            _spec: spec.clone(),
            _shape: shape,
        };
        e.connect_all();
        Ok(e)
    }

    /// The build this circuit was made from.
    pub fn spec(&self) -> &CircuitSpec {
        &self._spec
    }

    pub fn shape(&self) -> Shape {
        self._shape
    }

    pub fn lanes(&self) -> usize {
        self._spec.lanes()
    }

    pub fn gates(&self) -> usize {
        self._shape.gates
    }

    /// The result port's payload as the simulation holds it now: the pixel
    /// index and its codes (a beat when `out_valid` and `out_ready`).
    pub fn result_beat(&self) -> (u64, PixelCodes) {
        (
            self.out_pixel.val().to_u64(),
            PixelCodes {
                tau1: self.out_tau1.val().to_u64() as u32,
                tau2: self.out_tau2.val().to_u64() as u32,
                fraction: self.out_fraction.val().to_u64() as u32,
            },
        )
    }
}

impl Logic for Engine {
    #[hdl_gen]
    fn update(&mut self) {
        self.ingest.clock.next = self.clock.val();
        self.preproc.clock.next = self.clock.val();
        self.gru.clock.next = self.clock.val();
        self.extract.clock.next = self.clock.val();
        self.result.clock.next = self.clock.val();
        // Ingest.
        self.ingest.valid.next = self.in_valid.val();
        self.in_ready.next = self.ingest.ready.val();
        self.ingest.release.next = self.preproc.release.val();
        self.ingest.raddr.next = self.preproc.raddr.val();
        self.preproc.full.next = self.ingest.full.val();
        self.preproc.x_free0.next = self.gru.x_free0.val();
        self.preproc.x_free1.next = self.gru.x_free1.val();
        self.gru.x_we.next = self.preproc.x_we.val();
        self.gru.x_set.next = self.preproc.x_set.val();
        self.gru.x_addr.next = self.preproc.x_addr.val();
        self.gru.x_done.next = self.preproc.x_done.val();
        self.gru.ext_busy.next = self.extract.busy.val();
        self.extract.load.next = self.gru.ext_load.val();
        for l in 0..self.in_count.len() {
            self.ingest.count[l].next = self.in_count[l].val();
            self.preproc.rdata[l].next = self.ingest.rdata[l].val();
            self.preproc.s0[l].next = self.ingest.s0[l].val();
            self.gru.x_data[l].next = self.preproc.x_data[l].val();
            self.extract.amp1[l].next = self.gru.amp1[l].val();
            self.extract.amp2[l].next = self.gru.amp2[l].val();
            self.extract.sum1[l].next = self.gru.sum1[l].val();
            self.extract.sum2[l].next = self.gru.sum2[l].val();
        }
        // Results.
        self.result.in_valid.next = self.extract.out_valid.val();
        self.extract.out_ready.next = self.result.in_ready.val();
        self.result.in_pixel.next = self.extract.out_pixel.val();
        self.result.in_tau1.next = self.extract.out_tau1.val();
        self.result.in_tau2.next = self.extract.out_tau2.val();
        self.result.in_fraction.next = self.extract.out_fraction.val();
        self.result.out_ready.next = self.out_ready.val();
        self.out_valid.next = self.result.out_valid.val();
        self.out_pixel.next = self.result.out_pixel.val();
        self.out_tau1.next = self.result.out_tau1.val();
        self.out_tau2.next = self.result.out_tau2.val();
        self.out_fraction.next = self.result.out_fraction.val();
        // Debug channels.
        self.dbg_valid.next = self.gru.dbg_valid.val();
        self.dbg_group.next = self.gru.dbg_group.val();
        self.dbg_step.next = self.gru.dbg_step.val();
        for i in 0..self.dbg_channel.len() {
            self.dbg_channel[i].next = self.gru.dbg_channel[i].val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::GateGrid;
    use crate::rtl::spec::Layout;
    use crate::rtl::testbench::{self, Policy};
    use crate::rtl::Dsp;

    #[test]
    fn one_group_matches_the_golden_model() {
        let model = testbench::random_model(8, 2, 12);
        let grid = GateGrid::new(11, 0.5).unwrap();
        let counts = testbench::corner_histograms(11, 1, 4);
        let layout = Layout { lanes: 8, macs: 2 };
        let spec = CircuitSpec::new(model.clone(), grid, layout, Dsp::Inferred).unwrap();
        let out = testbench::check(&spec, counts.view(), &Policy::eager()).unwrap();
        assert_eq!(out.order, (0..8).collect::<Vec<_>>());
        let e = CircuitSpec::new(model, grid, Layout { macs: 4, ..layout }, Dsp::Inferred)
            .err()
            .unwrap();
        assert!(e.to_string().contains("must divide the 3H = 6"), "{e}");
    }
}
