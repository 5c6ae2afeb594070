//! The cycle model of the engine's schedule (see `gru.rs`), checked
//! against simulation by tests/rtl_cycles.rs.

use super::extract::extract_lane_cycles;
use super::gru::slot_cycles;
use super::preproc::preproc_cycles;

/// Steady-state timing of one configuration with back-to-back pixels
/// (input always valid, output always ready).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct CycleModel {
    pub hidden: usize,
    pub gates: usize,
    pub macs: usize,
    pub lanes: usize,
    pub bits: u32,
    /// Cycles of one slot: 3H / M passes of H + 1 terms, plus 8 (7-cycle drain, 1-cycle boundary).
    pub slot: usize,
    /// GRU cycles per group of P pixels: 2 G slots (two sets interleaved).
    pub gru_per_group: usize,
    /// Preprocessing cycles per group (ingest of the next group overlaps it).
    pub front_per_group: usize,
    /// Extraction cycles per group (P lanes one after another).
    pub extract_per_group: usize,
    /// The steady-state period per group: the slowest of the three.
    pub cycles_per_group: usize,
    /// MACs per pixel counted as in REFERENCE.md: 6 G H (H + 1).
    pub macs_per_pixel: usize,
}

impl CycleModel {
    pub fn new(hidden: usize, gates: usize, macs: usize, lanes: usize, bits: u32) -> CycleModel {
        let (h, g) = (hidden, gates);
        let slot = slot_cycles(h, macs);
        let gru = 2 * g * slot;
        // The divide pass of group n and the peak pass of group n + 1 hand
        // over in one cycle (measured: tests/rtl_cycles.rs).
        let front = preproc_cycles(g, bits) - 1;
        let extract = lanes * extract_lane_cycles() + 1;
        CycleModel {
            hidden,
            gates,
            macs,
            lanes,
            bits,
            slot,
            gru_per_group: gru,
            front_per_group: front,
            extract_per_group: extract,
            cycles_per_group: gru.max(front).max(extract),
            macs_per_pixel: 6 * g * h * (h + 1),
        }
    }

    /// Whether the GRU (the multipliers) sets the pace.
    pub fn compute_bound(&self) -> bool {
        self.gru_per_group >= self.front_per_group && self.gru_per_group >= self.extract_per_group
    }

    pub fn cycles_per_pixel(&self) -> f64 {
        self.cycles_per_group as f64 / self.lanes as f64
    }

    /// The multiplier bound MACs / (M P) per pixel.
    pub fn bound_per_pixel(&self) -> f64 {
        self.macs_per_pixel as f64 / (self.macs * self.lanes) as f64
    }

    /// Fraction of cycles the M P MAC units are busy with counted MACs.
    pub fn utilisation(&self) -> f64 {
        self.bound_per_pixel() / self.cycles_per_pixel()
    }
}

/// Predicted steady-state cycles per pixel for (H, G, M, P) at the widest
/// format (W = 16; W only matters when preprocessing sets the pace).
pub fn cycles_per_pixel(h: usize, g: usize, m: usize, p: usize) -> f64 {
    CycleModel::new(h, g, m, p, 16).cycles_per_pixel()
}

/// Multipliers per lane besides the M MAC units: the reset product, the
/// state update and the three head channels.
pub const EXTRA_MULTIPLIERS_PER_LANE: usize = 5;

/// The docs/hardware.md table: cycles per pixel and multiplier utilisation
/// of the 32-unit student on the paper's 135-gate grid.
pub fn hardware_table(bits: u32) -> String {
    let mut s = String::from(
        "| M (MACs/lane) | P (lanes) | cycles/pixel | multiplier bound MACs/(M P) | utilisation of the M P MACs | multipliers (M P + 5 P) | speed-up vs HLS (110,297) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for m in [1, 32, 96] {
        for p in [1, 4, 16] {
            let c = CycleModel::new(32, 135, m, p, bits);
            s.push_str(&format!(
                "| {m} | {p} | {:.1} | {:.1} | {:.1} % | {} | {:.1}x |\n",
                c.cycles_per_pixel(),
                c.bound_per_pixel(),
                100.0 * c.utilisation(),
                (m + EXTRA_MULTIPLIERS_PER_LANE) * p,
                110_297.0 / c.cycles_per_pixel()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_meets_the_utilisation_target() {
        for m in [1, 32, 96] {
            for p in [1, 4, 16] {
                let c = CycleModel::new(32, 135, m, p, 8);
                assert!(c.compute_bound(), "{c:?}");
                assert!(c.cycles_per_pixel() <= 1.25 * c.bound_per_pixel(), "{c:?}");
            }
        }
        assert_eq!(CycleModel::new(32, 135, 96, 1, 8).slot, 41);
    }
}
