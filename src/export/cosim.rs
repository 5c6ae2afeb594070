//! Co-simulation of the exported Verilog: a generated plain-Verilog
//! testbench (`tb`) reads a hex stimulus file, drives the engine's input
//! stream and result stream as `crate::rtl::testbench` does (the beats of
//! `crate::rtl::protocol`: gate k of the P pixels of a group, counts
//! clamped to 65535, the last group padded with empty histograms; an
//! offered beat held until accepted, random valid gaps and ready
//! back-pressure) and writes every accepted result as a hex line, read
//! back into `crate::rtl::protocol::Results`. It runs in Verilator
//! (`--binary --timing`) or Icarus Verilog; one build serves any number
//! of runs of the same configuration.
//!
//! Files: `stim.hex`, one line per beat, P hex counts (lane 0 first);
//! `out.hex`, one line per result, `pixel tau1 tau2 fraction cycle` (hex,
//! cycle decimal), closed by `end <cycles> <results>`.

use super::tools;
use crate::fixed::PixelCodes;
use crate::rtl::protocol::{Beats, Results, RESULT_FIELDS};
use crate::rtl::testbench::Policy;
use crate::rtl::CircuitSpec;
use anyhow::{bail, Context, Result};
use ndarray::ArrayView2;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Which simulator builds and runs the testbench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simulator {
    /// `verilator --binary --timing` (fast; the default).
    Verilator,
    /// `iverilog` + `vvp` (slow; small cases).
    Icarus,
}

/// The testbench for P lanes (module `tb`, instantiating `top`).
pub fn testbench(lanes: usize) -> String {
    let p = lanes;
    let mut v = String::new();
    let w = &mut v;
    writeln!(
        w,
        "// flimgru co-simulation testbench (flimgru::export::cosim), P = {p}."
    )
    .ok();
    writeln!(w, "`timescale 1ns/1ps").ok();
    writeln!(w, "module tb;").ok();
    writeln!(w, "  reg clock = 1'b0;").ok();
    writeln!(w, "  reg in_valid = 1'b0;").ok();
    writeln!(w, "  wire in_ready;").ok();
    for l in 0..p {
        writeln!(w, "  reg [15:0] cnt{l} = 16'h0;").ok();
    }
    writeln!(w, "  reg out_ready = 1'b0;").ok();
    writeln!(w, "  wire out_valid;").ok();
    for (name, width) in RESULT_FIELDS {
        writeln!(w, "  wire [{}:0] out_{name};", width - 1).ok();
    }
    writeln!(w, "  wire dbg_valid;").ok();
    writeln!(w, "  wire [31:0] dbg_group;").ok();
    writeln!(w, "  wire [15:0] dbg_step;").ok();
    for c in 0..3 * p {
        writeln!(w, "  wire [47:0] dbg{c};").ok();
    }
    writeln!(w, "  top dut(").ok();
    writeln!(
        w,
        "    .clock(clock), .in_valid(in_valid), .in_ready(in_ready),"
    )
    .ok();
    for l in 0..p {
        writeln!(w, "    .in_count${l}(cnt{l}),").ok();
    }
    let result: Vec<String> = RESULT_FIELDS
        .iter()
        .map(|(name, _)| format!(".out_{name}(out_{name})"))
        .collect();
    writeln!(
        w,
        "    .out_valid(out_valid), .out_ready(out_ready), {},",
        result.join(", ")
    )
    .ok();
    writeln!(
        w,
        "    .dbg_valid(dbg_valid), .dbg_group(dbg_group), .dbg_step(dbg_step),"
    )
    .ok();
    let dbg: Vec<String> = (0..3 * p)
        .map(|c| format!(".dbg_channel${c}(dbg{c})"))
        .collect();
    writeln!(w, "    {});", dbg.join(", ")).ok();
    w.push_str(
        r#"  reg [8*1024-1:0] stim_path;
  reg [8*1024-1:0] out_path;
  integer fin, fout, beats, total, max_cycles, vp, rp, beat, nres, cycle, r;
  reg [31:0] rng;
  reg [31:0] word;
  reg offered;
  // xorshift32: the valid/ready draws (per mille thresholds).
  function [31:0] xs(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xs = y ^ (y << 5);
    end
  endfunction
  initial begin
    if (!$value$plusargs("stim=%s", stim_path)) begin $display("tb: no +stim="); $finish; end
    if (!$value$plusargs("out=%s", out_path)) begin $display("tb: no +out="); $finish; end
    if (!$value$plusargs("beats=%d", beats)) beats = 0;
    if (!$value$plusargs("results=%d", total)) total = 0;
    if (!$value$plusargs("cycles=%d", max_cycles)) max_cycles = 1000000;
    if (!$value$plusargs("valid=%d", vp)) vp = 1000;
    if (!$value$plusargs("ready=%d", rp)) rp = 1000;
    if (!$value$plusargs("seed=%d", rng)) rng = 32'h1234567;
    if (rng == 0) rng = 32'h1234567;
    fin = $fopen(stim_path, "r");
    fout = $fopen(out_path, "w");
    if (fin == 0 || fout == 0) begin $display("tb: cannot open the stimulus or result file"); $finish; end
    beat = 0; nres = 0; cycle = 0; offered = 1'b0;
    while (nres < total && cycle < max_cycles) begin
      // Clock low: offer a beat (held until accepted), draw ready.
      if (!offered && beat < beats) begin
        rng = xs(rng);
        offered = (vp >= 1000) || ((rng % 1000) < vp);
        if (offered) begin
"#,
    );
    for l in 0..p {
        writeln!(
            w,
            "          r = $fscanf(fin, \"%h\", word); cnt{l} = word[15:0];"
        )
        .ok();
    }
    w.push_str(
        r#"        end
      end
      in_valid = offered;
      rng = xs(rng);
      out_ready = (rp >= 1000) || ((rng % 1000) < rp);
      #4;
      // Sample the handshakes before the rising edge.
      if (offered && in_ready) begin
        beat = beat + 1;
        offered = 1'b0;
      end
      if (out_valid && out_ready) begin
"#,
    );
    let result: Vec<String> = RESULT_FIELDS
        .iter()
        .map(|(name, _)| format!("out_{name}"))
        .collect();
    writeln!(
        w,
        "        $fdisplay(fout, \"{} %0d\", {}, cycle);",
        vec!["%h"; RESULT_FIELDS.len()].join(" "),
        result.join(", ")
    )
    .ok();
    w.push_str(
        r#"        nres = nres + 1;
      end
      #1 clock = 1'b1;
      #5 clock = 1'b0;
      cycle = cycle + 1;
    end
    $fdisplay(fout, "end %0d %0d", cycle, nres);
    $fclose(fout);
    $fclose(fin);
    $finish;
  end
endmodule
"#,
    );
    v
}

/// A built testbench + engine for one configuration.
#[derive(Debug, Clone)]
pub struct Build {
    pub dir: PathBuf,
    pub simulator: Simulator,
    /// The build the Verilog was exported from.
    pub spec: CircuitSpec,
    /// Seconds the build took.
    pub seconds: f64,
    exe: PathBuf,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// Results in input order (index = pixel).
    pub codes: Vec<PixelCodes>,
    /// Pixel indices in delivery order (padding lanes included).
    pub order: Vec<u64>,
    /// Cycles simulated.
    pub cycles: u64,
    /// Wall-clock seconds of the simulator run.
    pub seconds: f64,
}

/// Build `verilog` (the export of `spec`) with the testbench under `dir`.
pub fn build(verilog: &str, spec: &CircuitSpec, dir: &Path, simulator: Simulator) -> Result<Build> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let eng = dir.join("engine.v");
    let tb = dir.join("tb.v");
    crate::output::write_bytes(&eng, verilog.as_bytes())?;
    crate::output::write_bytes(&tb, testbench(spec.lanes()).as_bytes())?;
    let t0 = Instant::now();
    let exe = match simulator {
        Simulator::Verilator => {
            let verilator = tools::find("verilator")?;
            let obj = dir.join("obj");
            // Warnings are the lint test's business (tests/export_lint.rs);
            // here they must not stop the build.
            tools::run(
                Command::new(verilator)
                    .args([
                        "--binary",
                        "--timing",
                        "-Wno-fatal",
                        "-Wno-lint",
                        "-Wno-style",
                    ])
                    .args(["--top-module", "tb", "-j", "2", "-o", "tb"])
                    .arg("--Mdir")
                    .arg(&obj)
                    .arg(&tb)
                    .arg(&eng),
                "verilator build of the co-simulation testbench",
            )?;
            obj.join("tb")
        }
        Simulator::Icarus => {
            let iverilog = tools::find("iverilog")?;
            tools::find("vvp")?;
            let out = dir.join("tb.vvp");
            tools::run(
                Command::new(iverilog)
                    .args(["-g2005", "-s", "tb", "-o"])
                    .arg(&out)
                    .arg(&tb)
                    .arg(&eng),
                "iverilog build of the co-simulation testbench",
            )?;
            out
        }
    };
    Ok(Build {
        dir: dir.to_path_buf(),
        simulator,
        spec: spec.clone(),
        seconds: t0.elapsed().as_secs_f64(),
        exe,
    })
}

impl Build {
    /// Run `counts` (`[n, G]`) through the built engine under `policy`
    /// (valid/ready probabilities; the seed drives the testbench's own
    /// generator). `tag` names the run's files under the build directory.
    pub fn run(&self, counts: ArrayView2<u32>, policy: &Policy, tag: &str) -> Result<Run> {
        let (n, g) = counts.dim();
        if g != self.spec.gates() {
            bail!(
                "histograms have {g} gates, the build is for {}",
                self.spec.gates()
            );
        }
        let p = self.spec.lanes();
        let beats = Beats::new(counts, p);
        let total = beats.results();
        let mut stim = String::with_capacity(beats.len() * p * 5);
        for b in 0..beats.len() {
            let row: Vec<String> = beats.beat(b).map(|c| format!("{c:x}")).collect();
            stim.push_str(&row.join(" "));
            stim.push('\n');
        }
        let stim_path = self.dir.join(format!("{tag}.stim.hex"));
        let out_path = self.dir.join(format!("{tag}.out.hex"));
        crate::output::write_bytes(&stim_path, stim.as_bytes())?;
        std::fs::remove_file(&out_path).ok();
        let max_cycles = policy.cycle_limit(&self.spec.cycles(), beats.groups());
        let permille = |x: f64| ((x.clamp(0.0, 1.0) * 1000.0).round() as u32).max(1);
        let seed = (policy.seed as u32 ^ (policy.seed >> 32) as u32).max(1);
        let args = vec![
            format!("+stim={}", stim_path.display()),
            format!("+out={}", out_path.display()),
            format!("+beats={}", beats.len()),
            format!("+results={total}"),
            format!("+cycles={max_cycles}"),
            format!("+valid={}", permille(policy.valid)),
            format!("+ready={}", permille(policy.ready)),
            format!("+seed={seed}"),
        ];
        let t0 = Instant::now();
        let mut cmd = match self.simulator {
            Simulator::Verilator => Command::new(&self.exe),
            Simulator::Icarus => {
                let mut c = Command::new(tools::find("vvp")?);
                c.arg("-n").arg(&self.exe);
                c
            }
        };
        tools::run(cmd.args(&args), "the co-simulation testbench")?;
        let seconds = t0.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(&out_path)
            .with_context(|| format!("the testbench wrote no {}", out_path.display()))?;
        let mut results = Results::new(n, total);
        let mut cycles = None;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"end") {
                cycles = f.get(1).and_then(|c| c.parse::<u64>().ok());
                break;
            }
            if f.len() != RESULT_FIELDS.len() + 1 {
                bail!("{}: malformed result line {line:?}", out_path.display());
            }
            let hex = |s: &str| {
                u64::from_str_radix(s, 16)
                    .with_context(|| format!("{}: bad hex {s:?} in {line:?}", out_path.display()))
            };
            let codes = PixelCodes {
                tau1: hex(f[1])? as u32,
                tau2: hex(f[2])? as u32,
                fraction: hex(f[3])? as u32,
            };
            results.push(hex(f[0])?, codes)?;
        }
        let Some(cycles) = cycles else {
            bail!(
                "{}: the testbench did not finish its result file",
                out_path.display()
            );
        };
        if results.delivered() < total {
            bail!(
                "the exported engine delivered {} of {total} results in {cycles} cycles (hung?)",
                results.delivered()
            );
        }
        let (codes, order) = results.finish();
        Ok(Run {
            codes,
            order,
            cycles,
            seconds,
        })
    }
}

/// The first difference between a run and the golden codes (results in
/// input order, no pixel missing), or None.
pub fn compare(run: &Run, want: &[PixelCodes]) -> Option<String> {
    let expected: Vec<u64> = (0..run.order.len() as u64).collect();
    if run.order != expected {
        let i = run
            .order
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Some(format!(
            "results delivered out of order: result {i} is pixel {}",
            run.order[i]
        ));
    }
    for (i, w) in want.iter().enumerate() {
        if run.codes[i] != *w {
            return Some(format!(
                "pixel {i}: exported Verilog {:?}, golden {:?}",
                run.codes[i], w
            ));
        }
    }
    None
}
