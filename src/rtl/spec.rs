//! One description of a build: [`CircuitSpec`] holds the quantised model,
//! its gate grid and the [`Layout`] (P lanes, M multipliers per lane) with
//! the multiplier form ([`Dsp`]), checked once when it is made. The engine
//! ([`CircuitSpec::engine`]), the cycle model ([`CircuitSpec::cycles`]),
//! the export's file name and header, the board tops and the synth jobs
//! are all made from it, so no two of them can disagree on a parameter.
//!
//! The widths are not a parameter: they are the model's
//! ([`CircuitSpec::format`], weights Ww and activations Wa). A circuit of
//! another width than its model's codes does not exist, so there is
//! nothing to choose and nothing to check against; a mixed-precision
//! model (Ww < Wa) gets its own file names from [`Format::name`].

use super::cycles::CycleModel;
use super::engine::Engine;
use super::prim::Dsp;
use crate::data::GateGrid;
use crate::fixed::contract::{self, Format};
use crate::fixed::QuantModel;
use anyhow::{bail, Result};
use std::sync::Arc;

/// Largest number of lanes the engine builds.
pub const MAX_LANES: usize = 64;

/// The circuit's choices beyond the model: pixel lanes P and multipliers
/// (MAC units) per lane M. Everything else of a build follows from the
/// model, its grid and the multiplier form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub lanes: usize,
    pub macs: usize,
}

/// A checked build: model, gate grid, layout and multiplier form. Cloning
/// is cheap (the model is shared).
#[derive(Clone, Debug)]
pub struct CircuitSpec {
    model: Arc<QuantModel>,
    grid: GateGrid,
    layout: Layout,
    dsp: Dsp,
}

impl CircuitSpec {
    /// Check `layout` against `model` on `grid`; the error says what to
    /// change. The one place that refuses a configuration: every builder
    /// (engine, export, board tops, synth, `flimgru sim`) starts here.
    pub fn new(
        model: impl Into<Arc<QuantModel>>,
        grid: GateGrid,
        layout: Layout,
        dsp: Dsp,
    ) -> Result<CircuitSpec> {
        let model = model.into();
        let fmt = model.format();
        let widths = contract::MIN_BITS..=contract::MAX_BITS;
        if !widths.contains(&fmt.bits) || !widths.contains(&fmt.act_bits) {
            if fmt.is_uniform() {
                bail!(
                    "bit width W = {} is outside {}..={}",
                    fmt.bits,
                    contract::MIN_BITS,
                    contract::MAX_BITS
                );
            }
            bail!(
                "widths {} (weights Ww = {}, activations Wa = {}) must each be in {}..={}",
                fmt.name(),
                fmt.bits,
                fmt.act_bits,
                contract::MIN_BITS,
                contract::MAX_BITS
            );
        }
        if layout.lanes == 0 || layout.lanes > MAX_LANES {
            bail!(
                "pixel lanes P = {} must be in 1..={MAX_LANES}",
                layout.lanes
            );
        }
        model.validate()?;
        let h = model.hidden;
        let m = layout.macs;
        if m == 0 || !(3 * h).is_multiple_of(m) {
            bail!(
                "M = {m} multipliers per lane must divide the 3H = {} gate rows of a GRU step (e.g. 1, {h} or {})",
                3 * h,
                3 * h
            );
        }
        let gates = grid.gates;
        if gates <= contract::BASELINE_GATES || gates > contract::MAX_GATES {
            bail!(
                "the engine needs {}..={} gates, the grid has {gates}",
                contract::BASELINE_GATES + 1,
                contract::MAX_GATES
            );
        }
        grid.check_baseline()?;
        let rom_words = 2 * (3 * h / m) * (h + 1);
        if rom_words > 1 << 16 {
            bail!(
                "M = {m} leaves {rom_words} weight words per MAC unit, more than the 16-bit ROM address; use more multipliers"
            );
        }
        Ok(CircuitSpec {
            model,
            grid,
            layout,
            dsp,
        })
    }

    /// The same build with the multipliers written for `dsp` (the same
    /// circuit cycle for cycle; only its Verilog differs, so nothing is
    /// checked again).
    pub fn with_dsp(&self, dsp: Dsp) -> CircuitSpec {
        CircuitSpec {
            dsp,
            ..self.clone()
        }
    }

    pub fn model(&self) -> &QuantModel {
        &self.model
    }

    pub fn grid(&self) -> &GateGrid {
        &self.grid
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn dsp(&self) -> Dsp {
        self.dsp
    }

    /// Pixel lanes P.
    pub fn lanes(&self) -> usize {
        self.layout.lanes
    }

    /// Multipliers per lane M.
    pub fn macs(&self) -> usize {
        self.layout.macs
    }

    /// Hidden size H (the model's).
    pub fn hidden(&self) -> usize {
        self.model.hidden
    }

    /// Gates G (the grid's).
    pub fn gates(&self) -> usize {
        self.grid.gates
    }

    /// The widths, the model's own: weights Ww (`bits`) and activations
    /// and state Wa (`act_bits`).
    pub fn format(&self) -> Format {
        self.model.format()
    }

    /// The cycle model of this build. Its width is Wa: the one stage whose
    /// time depends on a width is the preprocessing divider, which makes
    /// the input codes, activations.
    pub fn cycles(&self) -> CycleModel {
        CycleModel::new(
            self.hidden(),
            self.gates(),
            self.macs(),
            self.lanes(),
            self.format().act_bits,
        )
    }

    /// Build the rust-hdl circuit.
    pub fn engine(&self) -> Result<Engine> {
        Engine::new(self)
    }

    /// `w8_p1_m96`: the widths as [`Format::name`] writes them (`w8a16`
    /// for a mixed model), lanes and multipliers; the part of every file
    /// and directory name that says which circuit it holds.
    pub fn name(&self) -> String {
        format!(
            "{}_p{}_m{}",
            self.format().name().to_lowercase(),
            self.lanes(),
            self.macs()
        )
    }

    /// The export's file stem: `flimgru_w8_p1_m96`, with `_ecp5` for the
    /// ECP5 multipliers (the Verilog differs; the circuit does not).
    pub fn file_stem(&self) -> String {
        format!(
            "flimgru_{}{}",
            self.name(),
            match self.dsp {
                Dsp::Inferred => "",
                Dsp::Ecp5 => "_ecp5",
            }
        )
    }

    /// The export's file name: [`CircuitSpec::file_stem`] and `.v`.
    pub fn file_name(&self) -> String {
        format!("{}.v", self.file_stem())
    }

    /// The widths as the Verilog headers print them after `W (bits)`:
    /// `8` for the uniform contract, both widths for a mixed one.
    pub fn width_label(&self) -> String {
        let f = self.format();
        if f.is_uniform() {
            f.bits.to_string()
        } else {
            format!(
                "{} (weights Ww {}, activations Wa {})",
                f.name(),
                f.bits,
                f.act_bits
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::testbench;

    #[test]
    fn names_follow_the_model_format_and_layout() {
        let grid = GateGrid::new(11, 0.2).unwrap();
        let model = testbench::random_model(8, 32, 1);
        let layout = Layout { lanes: 1, macs: 96 };
        let s = CircuitSpec::new(model, grid, layout, Dsp::Inferred).unwrap();
        assert_eq!(s.file_name(), "flimgru_w8_p1_m96.v");
        assert_eq!(s.with_dsp(Dsp::Ecp5).file_stem(), "flimgru_w8_p1_m96_ecp5");
        assert_eq!(s.width_label(), "8");
        assert_eq!(s.cycles(), CycleModel::new(32, 11, 96, 1, 8));
        // Mixed precision: both widths in the name and the label; the
        // preprocessing divider makes Wa-bit codes.
        let fmt = Format::mixed(8, 16).unwrap();
        let s = CircuitSpec::new(
            testbench::random_model_in(fmt, 32, 1),
            grid,
            layout,
            Dsp::Inferred,
        )
        .unwrap();
        assert_eq!(s.file_name(), "flimgru_w8a16_p1_m96.v");
        assert_eq!(s.width_label(), "W8A16 (weights Ww 8, activations Wa 16)");
        assert_eq!(s.cycles(), CycleModel::new(32, 11, 96, 1, 16));
    }

    #[test]
    fn a_baseline_window_beyond_the_contract_is_refused_by_name() {
        let grid = GateGrid::new(40, 0.2).unwrap();
        let model = testbench::random_model(8, 8, 1);
        let layout = Layout { lanes: 1, macs: 24 };
        let two = grid.with_baseline_gates(2).unwrap();
        assert!(CircuitSpec::new(model.clone(), two, layout, Dsp::Inferred).is_ok());
        let wide = GateGrid {
            baseline_gates: 65,
            ..grid
        };
        let e = CircuitSpec::new(model, wide, layout, Dsp::Inferred).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("baseline_gates") && msg.contains("65"),
            "{msg}"
        );
    }
}
