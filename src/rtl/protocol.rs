//! The engine's stream protocol, once for every driver: the rust-hdl
//! testbench ([`super::testbench`]), the Verilator/Icarus co-simulation
//! (`crate::export::cosim`) and the board's byte protocol
//! (`crate::boards::protocol`).
//!
//! Input: one beat per gate, the counts of gate k of the P pixels of a
//! group (lane l = pixel mod P), G beats per group, each count clamped to
//! [`COUNT_MAX`], the last group padded with empty histograms
//! ([`Beats`]). Output: one result beat per pixel, padding pixels
//! included, in input order ([`RESULT_FIELDS`], collected by [`Results`]).

use crate::fixed::contract::COUNT_MAX;
use crate::fixed::PixelCodes;
use anyhow::{bail, Result};
use ndarray::ArrayView2;
use rust_hdl::prelude::{Bits, Synth};

/// The result port's pixel index (counts from 0 at power-up).
pub type PixelIndex = Bits<32>;
/// The result port's tau1 and tau2 codes.
pub type TauCode = Bits<12>;
/// The result port's fraction code.
pub type FractionCode = Bits<16>;

/// The result port: `out_valid`, `out_ready` and one payload signal
/// `out_<name>` of `width` bits per field, in port order. The rust-hdl
/// blocks that carry a result (extract, the result stage, the engine top,
/// the board bridge) declare these signals with the types above. They are
/// separate fields rather than a `LogicInterface` bundle because rust-hdl
/// names a bundle's signals `bundle$field` in the Verilog, which would
/// rename the exported ports.
pub const RESULT_FIELDS: [(&str, usize); 4] = [
    ("pixel", PixelIndex::BITS),
    ("tau1", TauCode::BITS),
    ("tau2", TauCode::BITS),
    ("fraction", FractionCode::BITS),
];

/// The input beats of histograms `[n, G]` on `lanes` (P) lanes.
#[derive(Clone, Copy, Debug)]
pub struct Beats<'a> {
    counts: ArrayView2<'a, u32>,
    lanes: usize,
}

impl<'a> Beats<'a> {
    /// `lanes` must be at least 1.
    pub fn new(counts: ArrayView2<'a, u32>, lanes: usize) -> Beats<'a> {
        assert!(lanes >= 1, "an engine has at least one lane");
        Beats { counts, lanes }
    }

    /// Histograms (pixels) given.
    pub fn pixels(&self) -> usize {
        self.counts.nrows()
    }

    /// Groups of P pixels, the last one padded.
    pub fn groups(&self) -> usize {
        self.pixels().div_ceil(self.lanes)
    }

    /// Beats in all: G per group.
    pub fn len(&self) -> usize {
        self.groups() * self.counts.ncols()
    }

    /// No histograms, no beats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Results the engine answers with: one per pixel of every group,
    /// padding included.
    pub fn results(&self) -> usize {
        self.groups() * self.lanes
    }

    /// The count lane `lane` carries in beat `beat`: pixel
    /// `(beat / G) P + lane` at gate `beat % G`, clamped to [`COUNT_MAX`];
    /// 0 for a padding pixel.
    pub fn count(&self, beat: usize, lane: usize) -> u16 {
        let g = self.counts.ncols();
        let (group, gate) = (beat / g, beat % g);
        let pixel = group * self.lanes + lane;
        if pixel < self.pixels() {
            self.counts[[pixel, gate]].min(COUNT_MAX) as u16
        } else {
            0
        }
    }

    /// The P counts of beat `beat`, lane 0 first.
    pub fn beat(&self, beat: usize) -> impl Iterator<Item = u16> + 'a {
        let beats = *self;
        (0..self.lanes).map(move |l| beats.count(beat, l))
    }
}

/// The result beats as the result port delivers them, put back in input
/// order.
#[derive(Clone, Debug)]
pub struct Results {
    codes: Vec<PixelCodes>,
    seen: Vec<bool>,
    order: Vec<u64>,
}

impl Results {
    /// For `pixels` histograms, expecting `results` beats (padding
    /// included, [`Beats::results`]).
    pub fn new(pixels: usize, results: usize) -> Results {
        Results {
            codes: vec![PixelCodes::default(); pixels],
            seen: vec![false; pixels],
            order: Vec::with_capacity(results),
        }
    }

    /// One delivered result beat. A padding pixel's result is kept in the
    /// delivery order only; a pixel delivered twice is an error.
    pub fn push(&mut self, pixel: u64, codes: PixelCodes) -> Result<()> {
        self.order.push(pixel);
        let i = pixel as usize;
        if i < self.codes.len() {
            if self.seen[i] {
                bail!("pixel {i} was delivered twice");
            }
            self.seen[i] = true;
            self.codes[i] = codes;
        }
        Ok(())
    }

    /// Result beats delivered so far.
    pub fn delivered(&self) -> usize {
        self.order.len()
    }

    /// The codes in input order (index = pixel) and the pixel indices in
    /// delivery order (padding included).
    pub fn finish(self) -> (Vec<PixelCodes>, Vec<u64>) {
        (self.codes, self.order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn beats_are_gate_major_clamped_and_padded() {
        let c = array![[1u32, 2, 3], [0x1234, 70_000, 5], [9, 8, 7]];
        let b = Beats::new(c.view(), 2);
        assert_eq!((b.groups(), b.len(), b.results()), (2, 6, 4));
        let all: Vec<Vec<u16>> = (0..b.len()).map(|k| b.beat(k).collect()).collect();
        assert_eq!(
            all,
            [[1, 0x1234], [2, 0xffff], [3, 5], [9, 0], [8, 0], [7, 0]]
        );
    }

    #[test]
    fn results_come_back_in_input_order_once_each() {
        let code = |t: u32| PixelCodes {
            tau1: t,
            tau2: t,
            fraction: t,
        };
        let mut r = Results::new(3, 4);
        for i in [1u64, 0, 3, 2] {
            r.push(i, code(i as u32 + 10)).unwrap();
        }
        assert_eq!(r.delivered(), 4);
        let e = r.clone().push(0, code(0)).unwrap_err().to_string();
        assert!(e.contains("pixel 0 was delivered twice"), "{e}");
        let (codes, order) = r.finish();
        assert_eq!(codes, [code(10), code(11), code(12)]);
        assert_eq!(order, [1, 0, 3, 2]);
    }

    #[test]
    fn the_result_port_widths_are_the_signal_types() {
        let widths: Vec<usize> = RESULT_FIELDS.iter().map(|f| f.1).collect();
        assert_eq!(widths, [32, 12, 12, 16]);
    }
}
