//! Reading a VCD for `flimgru wave`: the signal hierarchy of a waveform
//! and one signal's value changes. Any VCD is read; those the testbench
//! writes (`flimgru sim --vcd`, [`super::testbench`]) count time as
//! 10 x cycle (the settled values before the rising edge) and
//! 10 x cycle + 5 (after it). A hostile file is refused, not followed: the
//! header is walked with an explicit scope stack.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

struct VarInfo {
    path: String,
    width: u32,
    code: vcd::IdCode,
}

/// Deepest scope nesting read from a VCD (the engine's is below 10).
pub const MAX_SCOPE_DEPTH: usize = 1024;

/// Read a VCD's header: the signals with their hierarchical paths. Walks
/// the header's commands with an explicit scope stack (the `vcd` crate's
/// `parse_header` recurses once per nested scope, which overflows the
/// stack on a hostile file), refusing nesting deeper than
/// [`MAX_SCOPE_DEPTH`].
fn read_header(
    path: &Path,
) -> Result<(vcd::Parser<std::io::BufReader<std::fs::File>>, Vec<VarInfo>)> {
    let name = path.display();
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
    let mut parser = vcd::Parser::new(std::io::BufReader::new(f));
    let mut vars = Vec::new();
    // The current scope path and where each open scope's name starts.
    let mut prefix = String::new();
    let mut starts: Vec<usize> = Vec::new();
    loop {
        let cmd = match parser.next() {
            Some(c) => c.with_context(|| format!("{name} is not a VCD file"))?,
            None => bail!("{name} is not a VCD file: it ends before $enddefinitions"),
        };
        match cmd {
            vcd::Command::Enddefinitions => break,
            vcd::Command::ScopeDef(_, id) => {
                if starts.len() >= MAX_SCOPE_DEPTH {
                    bail!("{name}: scopes nested deeper than {MAX_SCOPE_DEPTH} levels");
                }
                starts.push(prefix.len());
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(&id);
            }
            vcd::Command::Upscope => {
                let Some(at) = starts.pop() else {
                    bail!("{name} is not a VCD file: $upscope without an open $scope");
                };
                prefix.truncate(at);
            }
            vcd::Command::VarDef(_, size, code, reference, _) => vars.push(VarInfo {
                path: if prefix.is_empty() {
                    reference
                } else {
                    format!("{prefix}.{reference}")
                },
                width: size,
                code,
            }),
            vcd::Command::Comment(_)
            | vcd::Command::Date(_)
            | vcd::Command::Version(_)
            | vcd::Command::Timescale(..) => {}
            other => bail!("{name} is not a VCD file: {other:?} before $enddefinitions"),
        }
    }
    if !starts.is_empty() {
        bail!("{name} is not a VCD file: $scope without $upscope");
    }
    Ok((parser, vars))
}

/// The signal hierarchy of a VCD: one `path width` line per signal.
pub fn signal_list(vcd_path: &Path) -> Result<String> {
    let (_, vars) = read_header(vcd_path)?;
    let mut s = String::new();
    for v in vars {
        writeln!(s, "{} {}", v.path, v.width).ok();
    }
    Ok(s)
}

/// Find a signal: an exact hierarchical path (`uut.gru.slot.q`), or else
/// the one signal whose path below the top scope is `signal` (`gru.slot.q`)
/// or ends in `.signal` (`slot.q`). A name several signals match
/// (`clock`: `uut.clock` and every block's clock) is refused with the
/// matches listed, rather than one of them picked.
fn find<'a>(vars: &'a [VarInfo], signal: &str) -> Result<&'a VarInfo> {
    if let Some(v) = vars.iter().find(|v| v.path == signal) {
        return Ok(v);
    }
    let suffix = format!(".{signal}");
    let mut hits: Vec<&VarInfo> = vars.iter().filter(|v| v.path.ends_with(&suffix)).collect();
    // Shallowest first: the likeliest meant is listed first.
    hits.sort_by_key(|v| v.path.matches('.').count());
    match hits.len() {
        0 => bail!("no signal {signal:?} in the VCD (try --list)"),
        _ if hits.iter().all(|v| v.code == hits[0].code) => Ok(hits[0]),
        n => {
            const SHOWN: usize = 20;
            let mut list: Vec<&str> = hits.iter().take(SHOWN).map(|v| v.path.as_str()).collect();
            if n > SHOWN {
                list.push("...");
            }
            bail!(
                "signal {signal:?} is ambiguous: {n} signals match ({}); give the full path (see --list)",
                list.join(", ")
            )
        }
    }
}

/// Value changes of `signal` with time in `from..=to` (all when None): one
/// `time value` line each, vectors in hex (x/z kept), the value at `from`
/// first. VCDs written by the testbench count time as 10 x cycle (the
/// settled values before the rising edge) and 10 x cycle + 5 (after it).
pub fn changes(
    vcd_path: &Path,
    signal: &str,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<String> {
    let changes = change_values(vcd_path, signal, from, to)?;
    let mut s = String::new();
    for (t, v) in changes {
        writeln!(s, "{t} {v}").ok();
    }
    Ok(s)
}

/// The value changes of [`changes`] as (time, value) pairs.
pub fn change_values(
    vcd_path: &Path,
    signal: &str,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Vec<(u64, String)>> {
    let (parser, vars) = read_header(vcd_path)?;
    let var = find(&vars, signal)?;
    let (code, width) = (var.code, var.width);
    let from = from.unwrap_or(0);
    let to = to.unwrap_or(u64::MAX);
    let mut now = 0u64;
    let mut last: Option<String> = None;
    let mut before: Option<String> = None;
    let mut out = Vec::new();
    let mut values: HashMap<u64, String> = HashMap::new();
    for cmd in parser {
        let cmd = cmd.with_context(|| format!("reading {}", vcd_path.display()))?;
        let value = match cmd {
            vcd::Command::Timestamp(t) => {
                now = t;
                if now > to {
                    break;
                }
                continue;
            }
            vcd::Command::ChangeScalar(c, v) if c == code => v.to_string(),
            vcd::Command::ChangeVector(c, v) if c == code => vector_hex(&v, width),
            vcd::Command::ChangeString(c, v) if c == code => v,
            _ => continue,
        };
        if now < from {
            before = Some(value);
            continue;
        }
        if last.as_deref() == Some(value.as_str()) {
            continue;
        }
        if out.is_empty() && now > from {
            if let Some(b) = before.take() {
                out.push((from, b.clone()));
                last = Some(b);
                if last.as_deref() == Some(value.as_str()) {
                    continue;
                }
            }
        }
        values.insert(now, value.clone());
        last = Some(value.clone());
        out.push((now, value));
    }
    if out.is_empty() {
        if let Some(b) = before {
            out.push((from, b));
        }
    }
    Ok(out)
}

fn vector_hex(v: &vcd::Vector, width: u32) -> String {
    let bits: Vec<vcd::Value> = v.iter().collect();
    if bits
        .iter()
        .any(|b| !matches!(b, vcd::Value::V0 | vcd::Value::V1))
    {
        return bits.iter().map(|b| b.to_string()).collect();
    }
    let mut n: u128 = 0;
    for b in &bits {
        n = (n << 1) | matches!(b, vcd::Value::V1) as u128;
    }
    let digits = (width as usize).div_ceil(4).max(1);
    format!("{n:0digits$x}")
}
