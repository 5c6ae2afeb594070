//! Place and route with nextpnr (YoWASP's builds): one run per placement
//! seed on the one netlist, several at once, each under an optional time
//! limit; a design that does not fit is a result, not a crash. Reads
//! nextpnr's `--report` JSON for the Fmax and the resources.

use super::report::{seed_line, Resource, SeedRun};
use super::SynthJob;
use crate::boards::Family;
use crate::export::tools;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// One seed's outcome, with nextpnr's resource counts when it placed.
pub(super) struct Placed {
    pub run: SeedRun,
    pub resources: Option<BTreeMap<String, Resource>>,
}

/// Every seed of a job placed and routed, and the nextpnr that did it.
pub(super) struct Placement {
    /// The first line of `nextpnr --version`.
    pub version: String,
    /// In the order of `job.seeds`.
    pub placed: Vec<Placed>,
}

/// Place and route every seed of the job with the family's nextpnr,
/// `job.jobs` at a time. A tool failure that is not "does not fit" fails
/// the whole run; so does a family without an open place-and-route.
pub(super) fn place_all(job: &SynthJob, dir: &Path, sweep: bool) -> Result<Placement> {
    use rayon::prelude::*;
    let family = job.board.family();
    let Some(tool) = family.nextpnr() else {
        bail!("no open place-and-route for {family}");
    };
    let exe = tools::find(tool)?;
    let version = tools::version(tool).unwrap_or_default();
    // Each worker waits on one nextpnr process; the pool bounds how many
    // run at once, and the indexed collect keeps the seeds' order.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(job.jobs.clamp(1, job.seeds.len()))
        .build()
        .context("starting the place-and-route workers")?;
    let placed = pool.install(|| {
        job.seeds
            .par_iter()
            .map(|&seed| {
                let result = place_seed(job, dir, &exe, tool, seed, sweep);
                if sweep {
                    match &result {
                        Ok(p) => eprintln!("{}", seed_line(&p.run)),
                        Err(e) => eprintln!("seed {seed}: {e:#}"),
                    }
                }
                result
            })
            .collect::<Result<Vec<Placed>>>()
    })?;
    Ok(Placement { version, placed })
}

/// nextpnr on the netlist `dir/synth.json` with one seed, in `dir` (single
/// seed) or `dir/seed-<s>/`.
fn place_seed(
    job: &SynthJob,
    dir: &Path,
    exe: &Path,
    tool: &str,
    seed: u64,
    sweep: bool,
) -> Result<Placed> {
    let family = job.board.family();
    let rel = if sweep {
        format!("seed-{seed}")
    } else {
        ".".to_string()
    };
    let work = dir.join(&rel);
    if sweep {
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        // The YoWASP sandbox is given the working directory: the netlist
        // goes in beside the seed's outputs (a hard link where possible).
        let netlist = work.join("synth.json");
        std::fs::remove_file(&netlist).ok();
        if std::fs::hard_link(dir.join("synth.json"), &netlist).is_err() {
            std::fs::copy(dir.join("synth.json"), &netlist)
                .with_context(|| format!("copying the netlist to {}", netlist.display()))?;
        }
    }
    for old in ["nextpnr.json", "nextpnr.log", "report.json", "report.md"] {
        let path = work.join(old);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the earlier {}", path.display()))?;
        }
    }
    let board = job.board;
    let constraints_name = Path::new(board.constraints())
        .file_name()
        .expect("constraint paths name a file");
    let constraints = work.join(constraints_name);
    crate::output::write_bytes(&constraints, board.constraints_text().as_bytes())?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(&work);
    // The part and package, the constraint file and the device-side output.
    match family {
        Family::Ecp5 => {
            cmd.args(["--85k", "--package", board.package(), "--speed", "6"])
                .arg("--lpf")
                .arg(constraints_name)
                .args(["--textcfg", "top.config"]);
        }
        Family::Ice40 => {
            cmd.args(["--up5k", "--package", "sg48"])
                .arg("--pcf")
                .arg(constraints_name)
                .args(["--asc", "top.asc"]);
        }
        Family::Xilinx7 => bail!("no open place-and-route for {family}"),
    }
    cmd.args(["--json", "synth.json", "--report", "nextpnr.json"])
        .args(["--freq", &format!("{}", job.board_config.clock_mhz)])
        .args(["--seed", &seed.to_string()])
        .arg("--timing-allow-fail")
        .args(if job.router2 {
            &["--router", "router2"][..]
        } else {
            &[]
        })
        .args(
            job.density
                .map(|d| ["--placer-heap-beta".to_string(), d.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(["--log", "nextpnr.log"]);
    let t = Instant::now();
    let ended = tools::run_limited(&mut cmd, tool, &work.join("nextpnr.out"), job.pnr_limit);
    let pnr_seconds = t.elapsed().as_secs_f64();
    let mut run = SeedRun {
        seed,
        fmax_mhz: None,
        failure: None,
        pnr_seconds,
        dir: rel,
    };
    match ended {
        Ok(tools::Ended::Finished) => {
            let (fmax, used) = read_nextpnr_report(&work.join("nextpnr.json"), family)?;
            run.fmax_mhz = Some(fmax);
            Ok(Placed {
                run,
                resources: Some(used),
            })
        }
        Ok(tools::Ended::TimedOut) => {
            let limit = job.pnr_limit.expect("only a limit times out");
            run.failure = Some(format!(
                "not routed: stopped at the {} s limit",
                limit.as_secs_f64()
            ));
            Ok(Placed {
                run,
                resources: None,
            })
        }
        Err(e) => {
            // A design that does not fit is a result, not a crash: keep
            // yosys's counts and nextpnr's reason.
            let log = std::fs::read_to_string(work.join("nextpnr.log")).unwrap_or_default();
            let reason = log
                .lines()
                .find(|l| l.starts_with("ERROR:"))
                .map(str::to_string);
            match reason {
                Some(r) if does_not_fit(&r) => {
                    run.failure = Some(r);
                    Ok(Placed {
                        run,
                        resources: None,
                    })
                }
                _ => Err(e.context(format!("seed {seed}"))),
            }
        }
    }
}

/// nextpnr's ways of saying the device is too small.
pub(super) fn does_not_fit(error: &str) -> bool {
    let e = error.to_lowercase();
    [
        "no bels remaining",
        "unable to place",
        "but device only has",
        "too many",
        "not enough",
        "exceeds",
    ]
    .iter()
    .any(|k| e.contains(k))
}

/// nextpnr's `--report` JSON.
fn read_nextpnr_report(path: &Path, family: Family) -> Result<(f64, BTreeMap<String, Resource>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let fmax = v
        .get("fmax")
        .and_then(|f| f.as_object())
        .with_context(|| format!("{}: no fmax section", path.display()))?
        .values()
        .filter_map(|c| c.get("achieved").and_then(|a| a.as_f64()))
        .fold(f64::INFINITY, f64::min);
    if !fmax.is_finite() {
        bail!(
            "{}: no clock domain with an achieved frequency",
            path.display()
        );
    }
    let util = v
        .get("utilization")
        .and_then(|u| u.as_object())
        .with_context(|| format!("{}: no utilization section", path.display()))?;
    let get = |name: &str| -> Resource {
        let e = util.get(name);
        Resource {
            used: e
                .and_then(|e| e.get("used"))
                .and_then(|u| u.as_u64())
                .unwrap_or(0),
            available: e.and_then(|e| e.get("available")).and_then(|u| u.as_u64()),
        }
    };
    // The headline resources under nextpnr's names, and the family's extra
    // memory (ECP5: distributed RAM; iCE40: the UP5K's SPRAM).
    let names: [(&str, &str); 5] = match family {
        Family::Ecp5 => [
            ("LUT", "TRELLIS_COMB"),
            ("FF", "TRELLIS_FF"),
            ("MULT", "MULT18X18D"),
            ("BRAM", "DP16KD"),
            ("LUTRAM", "TRELLIS_RAMW"),
        ],
        Family::Ice40 => [
            ("LUT", "ICESTORM_LC"),
            ("FF", "ICESTORM_LC"),
            ("MULT", "ICESTORM_DSP"),
            ("BRAM", "ICESTORM_RAM"),
            ("SPRAM", "ICESTORM_SPRAM"),
        ],
        Family::Xilinx7 => bail!("no nextpnr report for {family}"),
    };
    let r: BTreeMap<String, Resource> =
        names.iter().map(|(k, n)| (k.to_string(), get(n))).collect();
    Ok((fmax, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_device_is_told_apart_from_a_failure() {
        assert!(does_not_fit(
            "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'MULT18X18D'"
        ));
        assert!(does_not_fit(
            "ERROR: Design uses 50 SB_RAM40_4K, but device only has 30"
        ));
        assert!(!does_not_fit("ERROR: Failed to parse JSON file."));
    }
}
