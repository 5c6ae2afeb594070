//! Verilog export of the rust-hdl engine (docs/export.md).
//!
//! [`verilog`] builds the engine (`crate::rtl::Engine`) of a
//! [`CircuitSpec`] (a quantised model, its gate grid, P, M and the
//! multiplier form; W is the model's), generates its Verilog with rust-hdl's
//! generator behind a loop-unrolling fix ([`generate`], [`unroll`]), runs
//! the documented lint post-pass ([`postpass`]) and puts a header comment
//! in front (parameters, model name, checksum of the model's codes).
//! [`cosim`] builds the exported Verilog with a generated plain-Verilog
//! testbench in Verilator (or Icarus Verilog) and runs histograms through
//! it with the stream protocol of `crate::rtl::protocol`, as
//! `crate::rtl::testbench` does in rust-hdl's simulator.
//! [`tools`] finds the external tools and says how to install a missing one.
//! yosys runs through `crate::synth::yosys`, the one runner of the flow.

pub mod cosim;
pub mod generate;
pub mod postpass;
pub mod tools;
pub mod unroll;

use crate::fixed::QuantModel;
use crate::rtl::CircuitSpec;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Name of the top-level module of the exported Verilog (rust-hdl's).
pub const TOP: &str = "top";

/// FNV-1a 64 over the model's format and every tensor (name, shape,
/// exponent, codes as little-endian i32) in `QuantModel::tensors` order:
/// the checksum printed in the exported header.
pub fn model_checksum(model: &QuantModel) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&model.bits.to_le_bytes());
    // The activation width only where it differs, so a uniform model's
    // checksum (in every committed header) is what it always was.
    let fmt = model.format();
    if !fmt.is_uniform() {
        eat(b"act_bits");
        eat(&fmt.act_bits.to_le_bytes());
    }
    eat(&(model.hidden as u64).to_le_bytes());
    for (name, t) in QuantModel::tensor_names().iter().zip(model.tensors()) {
        eat(name.as_bytes());
        eat(&(t.shape[0] as u64).to_le_bytes());
        eat(&(t.shape[1] as u64).to_le_bytes());
        eat(&t.exponent.to_le_bytes());
        for c in &t.codes {
            eat(&c.to_le_bytes());
        }
    }
    h
}

/// The lines of a header that describe the build (model `name` and its
/// checksum, W, P, M, H, G, cycles per pixel, multipliers): the same in
/// the export's header and a board top's.
pub fn build_lines(spec: &CircuitSpec, name: &str) -> String {
    format!(
        "//   model           {name}\n\
         //   model checksum  {sum:016x} (FNV-1a 64 of the quantised codes, flimgru::export::model_checksum)\n\
         //   W (bits)        {w}\n\
         //   P (lanes)       {p}\n\
         //   M (MACs/lane)   {m}\n\
         //   H (hidden)      {h}\n\
         //   G (gates)       {g} of {dt} ns\n\
         //   cycles/pixel    {cpp} (GRU-bound model, docs/hardware.md)\n\
         //   multipliers     {dsp}\n",
        sum = model_checksum(spec.model()),
        w = spec.width_label(),
        p = spec.lanes(),
        m = spec.macs(),
        h = spec.hidden(),
        g = spec.gates(),
        dt = spec.grid().dt_ns,
        cpp = spec.cycles().cycles_per_pixel(),
        dsp = spec.dsp().describe(),
    )
}

/// The header comment of an export.
pub fn header(spec: &CircuitSpec, name: &str) -> String {
    format!(
        "// flimgru engine, exported by `flimgru export` (flimgru {version}, rust-hdl 0.46 + the\n\
         // exporter's loop-unrolling fix and lint post-pass, docs/export.md). Do not edit.\n\
         //\n\
         {build}\
         //\n\
         // Top module `{TOP}`; ports (one clock domain, rising edge, no reset: registers start\n\
         // from their initial values):\n\
         //   in_valid, in_ready, in_count$0..in_count${pl} [15:0]: one beat = gate k of the P\n\
         //     pixels of a group (lane l = pixel mod P), G beats per group, a partial last group\n\
         //     padded with empty histograms;\n\
         //   out_valid, out_ready, out_pixel [31:0], out_tau1 [11:0], out_tau2 [11:0],\n\
         //     out_fraction [15:0]: one beat per pixel, in input order;\n\
         //   dbg_valid, dbg_group, dbg_step, dbg_channel$0..dbg_channel${dl} [47:0]: monitor.\n",
        version = env!("CARGO_PKG_VERSION"),
        build = build_lines(spec, name),
        pl = spec.lanes() - 1,
        dl = 3 * spec.lanes() - 1,
    )
}

/// The engine's Verilog for `spec`: header comment, then rust-hdl's
/// modules (loops unrolled, lint post-pass). `name` is the model's name
/// for the header.
pub fn verilog(spec: &CircuitSpec, name: &str) -> Result<String> {
    let engine = spec.engine()?;
    let raw = generate::generate(&engine)?;
    let body = postpass::run(&raw).context("lint post-pass of the generated Verilog")?;
    Ok(format!("{}{}", header(spec, name), body))
}

/// Write [`verilog`] to `out_dir/`[`CircuitSpec::file_name`] atomically
/// (a temporary file renamed into place); returns the path.
pub fn write_verilog(spec: &CircuitSpec, name: &str, out_dir: &Path) -> Result<PathBuf> {
    let text = verilog(spec, name)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let path = out_dir.join(spec.file_name());
    crate::output::write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

/// `verilator --lint-only -Wall` on `verilog` (written to `dir/top.v`):
/// the warning and error lines, empty when the file is lint-clean.
pub fn lint(verilog: &str, dir: &Path) -> Result<Vec<String>> {
    lint_with(verilog, &[], dir)
}

/// [`lint`] with extra files beside the top (`(name, text)`, e.g. the
/// lint-only stand-ins of vendor primitives a board top instantiates).
pub fn lint_with(verilog: &str, extra: &[(&str, &str)], dir: &Path) -> Result<Vec<String>> {
    let verilator = tools::find("verilator")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("{TOP}.v"));
    crate::output::write_bytes(&file, verilog.as_bytes())?;
    let mut cmd = std::process::Command::new(verilator);
    cmd.args(["--lint-only", "-Wall", "--top-module", TOP])
        .arg(&file);
    for (name, text) in extra {
        let path = dir.join(name);
        crate::output::write_bytes(&path, text.as_bytes())?;
        cmd.arg(path);
    }
    let out = cmd.output().context("cannot run verilator")?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let issues: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("%Warning") || l.starts_with("%Error"))
        .map(str::to_string)
        .collect();
    if !out.status.success() && issues.is_empty() {
        anyhow::bail!("verilator --lint-only failed ({}):\n{text}", out.status);
    }
    Ok(issues)
}
