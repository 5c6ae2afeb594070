//! A DSP floorplan for the LFE5U-85F (`flimgru synth --floorplan`): each
//! lane's multipliers pinned to whole rows of MULT18X18D sites, in unit
//! order, by a `BEL` attribute on the instance (yosys keeps it on the cell,
//! nextpnr places the cell there).
//!
//! Why: the critical paths of the unconstrained runs are routes between a
//! MAC's multiplier and the fabric registers beside it, or between two
//! lanes' logic sharing a DSP row (docs/hardware.md). The 85F has three
//! rows of 52 sites (Y = 10, 34, 58, measured from nextpnr's placement of
//! 156 free multipliers), so up to three lanes of up to 52 multipliers get
//! one row each, unit u of every lane at the same X (the lanes share unit
//! u's weight ROM); a lane of more than 52 takes several rows, snaking so
//! that consecutive units stay adjacent at the turn. Otherwise the lanes
//! fill the snake one after another. Only the lanes' MAC units and their
//! reset and update products are pinned; the head's three MACs (yosys
//! drops a channel whose weights it can fold) take what is left.

use anyhow::{bail, Result};

/// The MULT18X18D rows of the LFE5U-85F (nextpnr's Y).
const ROWS: [u32; 3] = [10, 34, 58];

/// The MULT18X18D sites along one row: (X, BEL name), left to right.
const COLUMNS: [(u32, &str); 52] = {
    const X: [u32; 52] = [
        4, 5, 8, 9, 13, 14, 17, 18, 22, 23, 26, 27, 31, 32, 35, 36, 40, 41, 44, 45, 49, 50, 53, 54,
        58, 59, 62, 63, 69, 70, 73, 74, 78, 79, 82, 83, 87, 88, 91, 92, 96, 97, 100, 101, 105, 106,
        109, 110, 114, 115, 118, 119,
    ];
    const NAME: [&str; 4] = ["MULT18_0", "MULT18_1", "MULT18_4", "MULT18_5"];
    let mut c = [(0, ""); 52];
    let mut i = 0;
    while i < 52 {
        c[i] = (X[i], NAME[i % 4]);
        i += 1;
    }
    c
};

/// Site `i` of row `row` (counted from the left, or the right when
/// `reverse`), as nextpnr names it.
fn site(row: usize, i: usize, reverse: bool) -> String {
    let (x, bel) = COLUMNS[if reverse { COLUMNS.len() - 1 - i } else { i }];
    format!("X{x}/Y{}/{bel}", ROWS[row])
}

/// What one multiplier instance of the engine is, from its Verilog module
/// name (`top$core$engine$gru$lane$1$mac$7`, `...$lane$0$update_mul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Unit {
    Mac(usize),
    Reset,
    Update,
}

fn lane_unit(module: &str) -> Option<(usize, Unit)> {
    let rest = &module[module.find("$gru$lane$")? + "$gru$lane$".len()..];
    let (lane, unit) = rest.split_once('$')?;
    let lane = lane.parse().ok()?;
    let unit = match unit {
        "reset_mul" => Unit::Reset,
        "update_mul" => Unit::Update,
        u => Unit::Mac(u.strip_prefix("mac$")?.parse().ok()?),
    };
    Some((lane, unit))
}

/// The site of every pinned multiplier: lane -> its units in site order.
fn sites(lanes: &[Vec<Unit>]) -> Result<Vec<Vec<String>>> {
    let per_lane = lanes.iter().map(Vec::len).max().unwrap_or(0);
    let total: usize = lanes.iter().map(Vec::len).sum();
    let capacity = ROWS.len() * COLUMNS.len();
    if total > capacity {
        bail!("floorplan: {total} lane multipliers, the LFE5U-85F has {capacity} MULT18X18D sites");
    }
    let rows_per_lane = per_lane.div_ceil(COLUMNS.len()).max(1);
    let whole_rows = lanes.len() * rows_per_lane <= ROWS.len();
    let mut out = Vec::with_capacity(lanes.len());
    let mut next = 0;
    for (l, units) in lanes.iter().enumerate() {
        let mut lane = Vec::with_capacity(units.len());
        for i in 0..units.len() {
            let (row, i, turn) = if whole_rows {
                let r = i / COLUMNS.len();
                (l * rows_per_lane + r, i % COLUMNS.len(), r)
            } else {
                let k = next + i;
                (k / COLUMNS.len(), k % COLUMNS.len(), k / COLUMNS.len())
            };
            // Snake: odd rows of a lane (or of the whole fill) run right to
            // left.
            lane.push(site(row, i, turn % 2 == 1));
        }
        next += units.len();
        out.push(lane);
    }
    Ok(out)
}

/// The board top's Verilog with a `(* BEL = "..." *)` attribute on each
/// lane multiplier; returns it and the number pinned. A top whose lanes'
/// multipliers are not `MULT18X18D` instances (no `--dsp ecp5`) is an error.
pub fn pin_lane_multipliers(verilog: &str) -> Result<(String, usize)> {
    // Where each lane multiplier's instance line is.
    let lines: Vec<&str> = verilog.lines().collect();
    let mut module = "";
    let mut found: Vec<(usize, usize, Unit)> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if let Some(m) = line.strip_prefix("module ") {
            module = m.split('(').next().unwrap_or(m).trim();
        } else if line.trim_start().starts_with("MULT18X18D #(") {
            if let Some((lane, unit)) = lane_unit(module) {
                found.push((n, lane, unit));
            }
        }
    }
    if found.is_empty() {
        bail!("floorplan: the top has no lane multiplier as a MULT18X18D instance (the ECP5 form, Dsp::Ecp5)");
    }
    let lane_count = found.iter().map(|f| f.1).max().unwrap_or(0) + 1;
    let mut lanes: Vec<Vec<Unit>> = vec![Vec::new(); lane_count];
    for &(_, lane, unit) in &found {
        lanes[lane].push(unit);
    }
    // Site order within a lane: the first half of the MACs, the reset and
    // update products (read by every MAC through the lane's operand copies),
    // the second half.
    for units in &mut lanes {
        units.sort();
        let macs = units.iter().filter(|u| matches!(u, Unit::Mac(_))).count();
        let others: Vec<Unit> = units.split_off(macs);
        let tail = units.split_off(macs / 2);
        units.extend(others);
        units.extend(tail);
    }
    let sites = sites(&lanes)?;
    let mut bel = std::collections::HashMap::new();
    for (l, units) in lanes.iter().enumerate() {
        for (u, s) in units.iter().zip(&sites[l]) {
            bel.insert((l, *u), s.clone());
        }
    }
    let mut out = String::with_capacity(verilog.len() + 64 * found.len());
    let mut at = found.iter().peekable();
    for (n, line) in lines.iter().enumerate() {
        if let Some(&(_, lane, unit)) = at.next_if(|f| f.0 == n) {
            let indent = &line[..line.len() - line.trim_start().len()];
            out += &format!("{indent}(* BEL = \"{}\" *)\n", bel[&(lane, unit)]);
        }
        out += line;
        out.push('\n');
    }
    Ok((out, found.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(lanes: usize, macs: usize) -> String {
        let mut v = String::from("module top(clock);\nendmodule\n");
        for l in 0..lanes {
            let mut names: Vec<String> = (0..macs).map(|u| format!("mac${u}")).collect();
            names.extend(["reset_mul", "update_mul", "head$mac$0"].map(String::from));
            for n in names {
                v += &format!("module top$core$engine$gru$lane${l}${n}(clock);\n    MULT18X18D #(\n    ) mult ();\nendmodule\n");
            }
        }
        v
    }

    fn pinned(v: &str) -> Vec<(String, String)> {
        let mut module = String::new();
        let mut out = Vec::new();
        let mut pending = None;
        for line in v.lines() {
            if let Some(m) = line.strip_prefix("module ") {
                module = m.split('(').next().unwrap().to_string();
            } else if let Some(b) = line.trim().strip_prefix("(* BEL = \"") {
                pending = Some(b.trim_end_matches("\" *)").to_string());
            } else if line.trim().starts_with("MULT18X18D") {
                if let Some(b) = pending.take() {
                    out.push((module.clone(), b));
                }
            }
        }
        out
    }

    #[test]
    fn three_lanes_of_48_get_a_row_each_with_units_aligned() {
        let (v, n) = pin_lane_multipliers(&top(3, 48)).unwrap();
        assert_eq!(n, 150, "48 MACs + reset + update per lane; the head floats");
        let p = pinned(&v);
        let bel = |m: &str| p.iter().find(|(x, _)| x.ends_with(m)).unwrap().1.clone();
        assert_eq!(bel("lane$0$mac$0"), "X4/Y10/MULT18_0");
        assert_eq!(bel("lane$1$mac$0"), "X4/Y34/MULT18_0");
        assert_eq!(bel("lane$2$mac$47"), "X115/Y58/MULT18_1", "site 49");
        assert_eq!(bel("lane$1$reset_mul"), "X58/Y34/MULT18_0", "site 24");
        assert_eq!(bel("lane$1$mac$24"), "X62/Y34/MULT18_4", "site 26");
        let mut all: Vec<&String> = p.iter().map(|(_, b)| b).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 150, "no site used twice");
        assert!(!v.contains("head$mac$0(clock);\n    (* BEL"));
    }

    #[test]
    fn one_lane_of_96_snakes_over_two_rows() {
        let (v, n) = pin_lane_multipliers(&top(1, 96)).unwrap();
        assert_eq!(n, 98);
        let p = pinned(&v);
        let bel = |m: &str| p.iter().find(|(x, _)| x.ends_with(m)).unwrap().1.clone();
        // Site 51 is the row's right end, site 52 the next row's right end.
        assert_eq!(bel("lane$0$mac$49"), "X119/Y10/MULT18_5");
        assert_eq!(bel("lane$0$mac$50"), "X119/Y34/MULT18_5");
        assert_eq!(bel("lane$0$mac$95"), "X17/Y34/MULT18_4");
    }

    #[test]
    fn four_lanes_fill_the_snake_one_after_another() {
        let (v, n) = pin_lane_multipliers(&top(4, 32)).unwrap();
        assert_eq!(n, 136);
        let p = pinned(&v);
        let bel = |m: &str| p.iter().find(|(x, _)| x.ends_with(m)).unwrap().1.clone();
        assert_eq!(bel("lane$0$mac$0"), "X4/Y10/MULT18_0");
        assert_eq!(bel("lane$1$mac$0"), "X82/Y10/MULT18_4", "site 34 of row 0");
        assert_eq!(
            bel("lane$3$mac$31"),
            "X74/Y58/MULT18_5",
            "site 135 of the snake"
        );
    }

    #[test]
    fn a_top_that_does_not_fit_or_has_no_ecp5_multipliers_is_refused() {
        let e = pin_lane_multipliers(&top(4, 48)).unwrap_err().to_string();
        assert!(
            e.contains("200 lane multipliers") && e.contains("156"),
            "{e}"
        );
        let e = pin_lane_multipliers("module top(clock);\nendmodule\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no lane multiplier"), "{e}");
    }
}
