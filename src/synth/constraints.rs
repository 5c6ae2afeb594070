//! The board's constraint file against the board top's ports: every port
//! pinned, every pinned name a port (a typo there would silently leave a
//! pin to the placer's choice). Read before any tool runs.

use crate::boards::Family;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

/// The port names of module `top` (rust-hdl writes `module top(a,b,c);`).
fn top_ports(verilog: &str) -> Result<Vec<String>> {
    let start = verilog
        .find("module top(")
        .context("the board Verilog has no `module top(`")?;
    let rest = &verilog[start + "module top(".len()..];
    let end = rest
        .find(");")
        .context("unterminated `module top(` header")?;
    Ok(rest[..end]
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect())
}

/// The port names a constraint file pins (bit selects `x[3]` count as `x`).
fn constrained_ports(family: Family, text: &str) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let name = match family {
            Family::Ecp5 => line
                .strip_prefix("LOCATE COMP \"")
                .and_then(|r| r.split('"').next()),
            Family::Ice40 => line
                .strip_prefix("set_io ")
                .and_then(|r| r.split_whitespace().find(|w| !w.starts_with('-'))),
            Family::Xilinx7 => line.find("get_ports").and_then(|i| {
                line[i + "get_ports".len()..]
                    .trim_start()
                    .trim_start_matches(['{', '['])
                    .split(['}', ']', ' '])
                    .find(|w| !w.is_empty())
            }),
        };
        if let Some(n) = name {
            let base = n.split('[').next().unwrap_or(n).to_string();
            *names.entry(base).or_insert(0) += 1;
        }
    }
    names
}

/// Every port of the board top is pinned by the constraint file `file`
/// (its text `text`, in the family's format) and every pinned name is a
/// port of the top.
pub fn check_constraints(verilog: &str, family: Family, file: &str, text: &str) -> Result<()> {
    let ports = top_ports(verilog)?;
    let pinned = constrained_ports(family, text);
    let missing: Vec<&String> = ports.iter().filter(|p| !pinned.contains_key(*p)).collect();
    if !missing.is_empty() {
        bail!("{file} pins no location for the board top's port(s) {missing:?}");
    }
    let unknown: Vec<&String> = pinned.keys().filter(|n| !ports.contains(n)).collect();
    if !unknown.is_empty() {
        bail!("{file} pins {unknown:?}, which the board top does not have");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::Board;

    const TOP: &str = "// header\nmodule top(clock,led,uart_rx);\ninput wire clock;\nendmodule\nmodule top$x(a);\nendmodule\n";

    #[test]
    fn every_board_constraint_file_parses() {
        for board in Board::all() {
            let names = constrained_ports(board.family(), board.constraints_text());
            assert!(names.len() >= 3, "{board}: {names:?}");
        }
    }

    #[test]
    fn constraints_must_pin_exactly_the_top_ports() {
        let lpf = "LOCATE COMP \"clock\" SITE \"G2\";\nLOCATE COMP \"led[0]\" SITE \"B2\";\nLOCATE COMP \"led[1]\" SITE \"C2\";\nLOCATE COMP \"uart_rx\" SITE \"M1\";\n";
        check_constraints(TOP, Family::Ecp5, "x.lpf", lpf).unwrap();
        let e = check_constraints(
            TOP,
            Family::Ecp5,
            "x.lpf",
            &lpf.replace("uart_rx", "uart_rxd"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.lpf") && e.contains("uart_rx"), "{e}");
        let pcf = "set_io -nowarn clock 35\nset_io led[0] 11\nset_io uart_rx 6\nset_io extra 7 # not a port\n";
        let e = check_constraints(TOP, Family::Ice40, "x.pcf", pcf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        let xdc = "set_property -dict { PACKAGE_PIN E3 IOSTANDARD LVCMOS33 } [get_ports { clock }];\nset_property PACKAGE_PIN H5 [get_ports {led[0]}]\nset_property PACKAGE_PIN A9 [get_ports uart_rx]\n";
        check_constraints(TOP, Family::Xilinx7, "x.xdc", xdc).unwrap();
        assert!(check_constraints("module nope", Family::Ecp5, "x.lpf", lpf).is_err());
    }
}
