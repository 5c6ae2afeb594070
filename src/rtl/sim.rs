//! Library entry point for `flimgru sim`: simulate the engine on
//! histograms (results in input order, optionally a VCD; `flimgru wave`
//! reads it back through [`super::wave`]).

use super::testbench::{self, Policy};
use super::{Engine, EngineConfig};
use crate::data::GateGrid;
use crate::fixed::{PixelCodes, QuantModel};
use anyhow::Result;
use ndarray::Array2;
use std::path::Path;

/// Simulate the circuit for `model` (W = `config.bits`) on `counts`
/// (`[n, G]`, G = the grid's gates), back-to-back input and an always-ready
/// output; returns the codes in input order and writes the waveform to
/// `vcd` when given.
pub fn simulate_file(
    model: &QuantModel,
    grid: &GateGrid,
    config: EngineConfig,
    counts: &Array2<u32>,
    vcd: Option<&Path>,
) -> Result<Vec<PixelCodes>> {
    let mut engine = Engine::new(model, grid, config)?;
    let out = testbench::run(&mut engine, counts.view(), &Policy::eager(), vcd)?;
    Ok(out.codes)
}
