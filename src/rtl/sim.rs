//! Library entry point for `flimgru sim`: simulate the engine on
//! histograms (results in input order, optionally a VCD; `flimgru wave`
//! reads it back through [`super::wave`]).

use super::testbench::{self, Policy};
use super::CircuitSpec;
use crate::fixed::PixelCodes;
use anyhow::Result;
use ndarray::Array2;
use std::path::Path;

/// Simulate the circuit of `spec` on `counts` (`[n, G]`, G = the grid's
/// gates), back-to-back input and an always-ready output; returns the
/// codes in input order and writes the waveform to `vcd` when given.
pub fn simulate_file(
    spec: &CircuitSpec,
    counts: &Array2<u32>,
    vcd: Option<&Path>,
) -> Result<Vec<PixelCodes>> {
    let mut engine = spec.engine()?;
    let out = testbench::run(&mut engine, counts.view(), &Policy::eager(), vcd)?;
    Ok(out.codes)
}
