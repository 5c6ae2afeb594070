//! The report of a synth run: `report.json` (the [`SynthReport`], read
//! back by `flimgru synth --table`) and its markdown rendering
//! `report.md`, the table rows of docs/hardware.md, the seed table of a
//! sweep, and the frame times at the post-route Fmax.

use super::nextpnr::does_not_fit;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Sensors whose full-frame time the report gives: (name, width, height).
pub const SENSORS: [(&str, usize, usize); 3] = [
    ("32x32", 32, 32),
    ("192x128", 192, 128),
    ("500x500", 500, 500),
];

/// One resource: used (and available, when place-and-route ran).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Resource {
    pub used: u64,
    pub available: Option<u64>,
}

/// A frame time at the post-route Fmax.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FrameTime {
    pub sensor: String,
    pub pixels: usize,
    pub seconds: f64,
}

/// One seed's place-and-route.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedRun {
    pub seed: u64,
    /// Post-route Fmax of the engine clock; None when not routed.
    pub fmax_mhz: Option<f64>,
    /// Why there is no Fmax: nextpnr's does-not-fit reason, or the time
    /// limit that stopped it.
    pub failure: Option<String>,
    pub pnr_seconds: f64,
    /// Where its logs and report are, relative to the run's directory
    /// ("." for a single seed).
    pub dir: String,
}

/// The report of one run (`report.json`; `report.md` is its rendering).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SynthReport {
    pub board: String,
    pub family: String,
    pub device: String,
    pub package: String,
    pub model: String,
    pub model_checksum: String,
    /// The model's weight width Ww (the circuit's W).
    pub bits: u32,
    /// The activation width Wa when it differs from Ww (a mixed model, as
    /// model files write it); absent: uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act_bits: Option<u32>,
    pub lanes: usize,
    pub macs: usize,
    pub hidden: usize,
    pub gates: usize,
    /// The clock the board top runs the engine at (its PLL's output).
    pub clock_mhz: f64,
    pub yosys: String,
    pub nextpnr: Option<String>,
    /// yosys `stat` cell counts of the synthesised netlist.
    pub cells: BTreeMap<String, u64>,
    /// The family's headline resources under common names: `LUT`
    /// (ECP5: TRELLIS_COMB slots = LUT4s incl. carry halves; iCE40: logic
    /// cells; Xilinx: LUT1..LUT6), `FF`, `MULT` (MULT18X18D, SB_MAC16,
    /// DSP48E1), `BRAM` (DP16KD, SB_RAM40_4K, RAMB18/36 in 18 kbit units),
    /// with the device's capacity after place-and-route.
    pub resources: BTreeMap<String, Resource>,
    /// Post-route maximum frequency of the engine clock (None: no open
    /// place-and-route for the family).
    pub fmax_mhz: Option<f64>,
    /// Fmax >= the board clock.
    pub timing_met: Option<bool>,
    /// nextpnr's reason when the design does not fit the device.
    pub pnr_error: Option<String>,
    /// Engine cycles per pixel (cycle model, all P lanes counted).
    pub cycles_per_pixel: f64,
    /// Fmax / cycles_per_pixel (= Fmax P / cycles per pixel per lane).
    pub pixels_per_second: Option<f64>,
    pub frames: Vec<FrameTime>,
    pub synth_seconds: f64,
    pub pnr_seconds: Option<f64>,
    pub command: String,
    /// The placement seed of this report's place-and-route (None: yosys
    /// only, or a report written before seeds were recorded).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Every seed of the run, in the order asked for (one entry for a
    /// single seed; empty without place-and-route).
    #[serde(default)]
    pub seeds: Vec<SeedRun>,
    /// How many lane multipliers the DSP floorplan pinned (0: none).
    #[serde(default)]
    pub pinned_multipliers: usize,
}

/// One line per seed, as a sweep prints them while it runs.
pub fn seed_line(s: &SeedRun) -> String {
    match (s.fmax_mhz, &s.failure) {
        (Some(f), _) => format!("seed {}: {f:.1} MHz ({:.0} s)", s.seed, s.pnr_seconds),
        (None, Some(why)) => format!("seed {}: {why} ({:.0} s)", s.seed, s.pnr_seconds),
        (None, None) => format!("seed {}: no Fmax ({:.0} s)", s.seed, s.pnr_seconds),
    }
}

/// Frame times of [`SENSORS`] at a pixel rate.
pub(super) fn frames(pixels_per_second: Option<f64>) -> Vec<FrameTime> {
    match pixels_per_second {
        Some(rate) => SENSORS
            .iter()
            .map(|&(name, w, h)| FrameTime {
                sensor: name.to_string(),
                pixels: w * h,
                seconds: (w * h) as f64 / rate,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// `report.json` and `report.md` in `dir`, each written whole or not at all.
pub(super) fn write_report(dir: &Path, report: &SynthReport) -> Result<()> {
    let json = serde_json::to_string_pretty(report)? + "\n";
    crate::output::write_bytes(&dir.join("report.json"), json.as_bytes())?;
    let md = markdown(report);
    crate::output::write_bytes(&dir.join("report.md"), md.as_bytes())
}

fn res(r: &SynthReport, k: &str) -> String {
    match r.resources.get(k) {
        Some(Resource {
            used,
            available: Some(a),
        }) => format!("{used} / {a}"),
        Some(Resource { used, .. }) => used.to_string(),
        None => "-".into(),
    }
}

/// The header of [`table_row`]'s table.
pub const TABLE_HEADER: &str = "| board | W | P | M | LUT | FF | MULT | BRAM | Fmax (MHz) | cycles/pixel | pixels/s | 32x32 | 192x128 | 500x500 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// One row of the configuration table in docs/hardware.md.
pub fn table_row(r: &SynthReport) -> String {
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let frame = |name: &str| {
        r.frames
            .iter()
            .find(|t| t.sensor == name)
            .map_or("-".to_string(), |t| seconds(t.seconds))
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |\n",
        r.board,
        widths(r),
        r.lanes,
        r.macs,
        res(r, "LUT"),
        res(r, "FF"),
        res(r, "MULT"),
        res(r, "BRAM"),
        match (&r.pnr_error, r.fmax_mhz) {
            (Some(e), _) if does_not_fit(e) => "does not fit".to_string(),
            (Some(_), _) => "not routed".to_string(),
            (None, v) => f(v, 1),
        },
        r.cycles_per_pixel,
        f(r.pixels_per_second, 0),
        frame("32x32"),
        frame("192x128"),
        frame("500x500"),
    )
}

/// The W column: `8` for a uniform build, [`Format::name`] (`W8A16`)
/// for a mixed one.
fn widths(r: &SynthReport) -> String {
    let f = crate::fixed::Format {
        bits: r.bits,
        act_bits: r.act_bits.unwrap_or(r.bits),
    };
    if f.is_uniform() {
        f.bits.to_string()
    } else {
        f.name()
    }
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// The markdown rendering of a report.
pub fn markdown(r: &SynthReport) -> String {
    let mut s = format!(
        "# flimgru synth: {} ({} {}), W = {}, P = {}, M = {}\n\n`{}`\n\n",
        r.board,
        r.device,
        r.package,
        widths(r),
        r.lanes,
        r.macs,
        r.command
    );
    s += &format!(
        "Model {} (checksum {}), H = {}, G = {}; board clock {} MHz; {}{}.\n\n",
        r.model,
        r.model_checksum,
        r.hidden,
        r.gates,
        r.clock_mhz,
        r.yosys,
        r.nextpnr
            .as_ref()
            .map(|n| format!(", {n}"))
            .unwrap_or_default()
    );
    s += TABLE_HEADER;
    s += &table_row(r);
    s += "\n";
    match &r.pnr_error {
        Some(e) if does_not_fit(e) => s += &format!("**Does not fit the {}**: nextpnr says `{e}`. The resources above are yosys's counts.\n\n", r.device),
        Some(e) => s += &format!("**No Fmax**: {e}. The resources above are yosys's counts.\n\n"),
        None => {}
    }
    if r.pinned_multipliers > 0 {
        s += &format!(
            "DSP floorplan: {} lane multipliers pinned to MULT18X18D rows (`--floorplan`).\n\n",
            r.pinned_multipliers
        );
    }
    if let Some(seed) = r.seed {
        s += &format!("Placement seed {seed}");
        if r.seeds.len() > 1 {
            s += &format!(
                ", the highest Fmax of the {} seeds below (each in its own directory with its own report)",
                r.seeds.len()
            );
        }
        s += ".\n\n";
    }
    if r.seeds.len() > 1 {
        s += &seed_table(&r.seeds, r.clock_mhz);
    }
    match (r.fmax_mhz, r.timing_met) {
        (Some(f), Some(met)) => {
            s += &format!(
                "Post-route Fmax {f:.1} MHz: the board clock of {} MHz {}. Throughput and frame times are at Fmax (pixels/s = Fmax / cycles per pixel; the cycle model of docs/hardware.md).\n\n",
                r.clock_mhz,
                if met { "is met" } else { "is NOT met (lower the PLL to <= Fmax)" }
            )
        }
        _ if r.pnr_error.is_none() => {
            s += "No open place-and-route for this family: resources are yosys's cell counts, no Fmax.\n\n"
        }
        _ => {}
    }
    s += "Cells after synthesis (yosys `stat`):\n\n| cell | count |\n|---|---:|\n";
    for (k, n) in &r.cells {
        s += &format!("| {k} | {n} |\n");
    }
    s += &format!(
        "\nyosys {:.0} s{}.\n",
        r.synth_seconds,
        r.pnr_seconds
            .map(|p| format!(", place-and-route {p:.0} s"))
            .unwrap_or_default()
    );
    s
}

/// Every seed of a sweep and the spread of their Fmax.
pub fn seed_table(seeds: &[SeedRun], clock_mhz: f64) -> String {
    let mut s = String::from("| seed | Fmax (MHz) | board clock met | place-and-route | directory |\n|---:|---:|---|---:|---|\n");
    for run in seeds {
        s += &format!(
            "| {} | {} | {} | {:.0} s | {} |\n",
            run.seed,
            run.fmax_mhz
                .map_or_else(|| "-".to_string(), |f| format!("{f:.1}")),
            match (run.fmax_mhz, &run.failure) {
                (Some(f), _) => if f >= clock_mhz { "yes" } else { "no" }.to_string(),
                (None, Some(why)) => why.clone(),
                (None, None) => "-".to_string(),
            },
            run.pnr_seconds,
            run.dir
        );
    }
    let mut routed: Vec<f64> = seeds.iter().filter_map(|r| r.fmax_mhz).collect();
    routed.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (routed.first(), routed.last()) {
        let n = routed.len();
        let median = if n % 2 == 1 {
            routed[n / 2]
        } else {
            (routed[n / 2 - 1] + routed[n / 2]) / 2.0
        };
        s += &format!(
            "\n{n} of {} seeds routed: Fmax {lo:.1} to {hi:.1} MHz (spread {:.1}), median {median:.1}.\n\n",
            seeds.len(),
            hi - lo
        );
    } else {
        s += &format!("\nNone of the {} seeds routed.\n\n", seeds.len());
    }
    s
}

/// The table of several reports (`flimgru synth --table a.json b.json`).
pub fn table(paths: &[PathBuf]) -> Result<String> {
    let mut s = TABLE_HEADER.to_string();
    for p in paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let r: SynthReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a flimgru synth report", p.display()))?;
        s += &table_row(&r);
    }
    Ok(s)
}

/// The index of the seed the top report shows: the highest Fmax, else (none
/// routed) the first.
pub fn best_seed(seeds: &[SeedRun]) -> usize {
    let mut best = 0;
    for (i, s) in seeds.iter().enumerate() {
        if s.fmax_mhz.unwrap_or(f64::NEG_INFINITY)
            > seeds[best].fmax_mhz.unwrap_or(f64::NEG_INFINITY)
        {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(seed: u64, fmax: Option<f64>) -> SeedRun {
        SeedRun {
            seed,
            fmax_mhz: fmax,
            failure: fmax
                .is_none()
                .then(|| "not routed: stopped at the 60 s limit".into()),
            pnr_seconds: 10.0,
            dir: format!("seed-{seed}"),
        }
    }

    #[test]
    fn a_sweep_shows_the_best_seed_and_the_spread_of_the_routed_ones() {
        let runs = [
            seed(4, None),
            seed(1, Some(91.7)),
            seed(2, Some(88.2)),
            seed(3, Some(103.7)),
        ];
        assert_eq!(best_seed(&runs), 3);
        let t = seed_table(&runs, 100.0);
        assert!(
            t.contains("| 4 | - | not routed: stopped at the 60 s limit |"),
            "{t}"
        );
        assert!(
            t.contains("| 3 | 103.7 | yes |") && t.contains("| 1 | 91.7 | no |"),
            "{t}"
        );
        assert!(
            t.contains("3 of 4 seeds routed: Fmax 88.2 to 103.7 MHz (spread 15.5), median 91.7."),
            "{t}"
        );
        let even = seed_table(&runs[1..3], 100.0);
        assert!(even.contains("median 90.0"), "{even}");
        let none = [seed(5, None), seed(6, None)];
        assert_eq!(best_seed(&none), 0, "none routed: the first seed's report");
        assert!(seed_table(&none, 100.0).contains("None of the 2 seeds routed."));
    }
}
