//! The byte bridge between a byte stream (UART or parallel port) and the
//! engine's streams (docs/boards.md, "Protocol").
//!
//! Input: bytes arrive as 16-bit little-endian counts, gate-major per
//! group exactly as the engine's beats: for gate k of a group, the counts
//! of lanes 0..P-1 (2P bytes), then gate k + 1. Every 2P bytes make one
//! beat, held on `beat_*` until the engine takes it (`in_ready` is low
//! meanwhile).
//!
//! Output: each engine result becomes a 12-byte record, sent on
//! `out_*` (valid/ready): 0xA5, pixel index (u32 LE), tau1 (u16 LE), tau2
//! (u16 LE), fraction (u16 LE), XOR of the ten bytes after the sync byte.
//!
//! `pending` counts pixels whose group is complete and whose record is not
//! yet sent; `busy` is high while it is non-zero or a group or record is
//! part-way.

use super::protocol::{RECORD_BYTES, SYNC};
use crate::rtl::protocol::{FractionCode, PixelIndex, TauCode};
use crate::rtl::Count;
use rust_hdl::prelude::*;

#[derive(LogicBlock)]
pub struct Bridge {
    pub clock: Signal<In, Clock>,
    // Byte stream in.
    pub in_valid: Signal<In, Bit>,
    pub in_ready: Signal<Out, Bit>,
    pub in_data: Signal<In, Bits<8>>,
    // Byte stream out.
    pub out_valid: Signal<Out, Bit>,
    pub out_ready: Signal<In, Bit>,
    pub out_data: Signal<Out, Bits<8>>,
    // To the engine's input.
    pub beat_valid: Signal<Out, Bit>,
    pub beat_ready: Signal<In, Bit>,
    pub beat_count: Vec<Signal<Out, Count>>,
    // From the engine's result stream.
    pub res_valid: Signal<In, Bit>,
    pub res_ready: Signal<Out, Bit>,
    pub res_pixel: Signal<In, PixelIndex>,
    pub res_tau1: Signal<In, TauCode>,
    pub res_tau2: Signal<In, TauCode>,
    pub res_fraction: Signal<In, FractionCode>,
    // Status.
    pub busy: Signal<Out, Bit>,
    pub pending: Signal<Out, Bits<16>>,
    lo: DFF<Bits<8>>,
    half: DFF<Bit>,
    word: DFF<Bits<8>>,
    full: DFF<Bit>,
    lane: Vec<DFF<Count>>,
    gate: DFF<Bits<16>>,
    waiting: DFF<Bits<16>>,
    sending: DFF<Bit>,
    record: DFF<Bits<88>>,
    pos: DFF<Bits<4>>,
    check: DFF<Bits<8>>,
    take: Signal<Local, Bit>,
    group_done: Signal<Local, Bit>,
    record_done: Signal<Local, Bit>,
    out_byte: Signal<Local, Bits<8>>,
    last_word: Constant<Bits<8>>,
    last_gate: Constant<Bits<16>>,
    lanes: Constant<Bits<16>>,
    lanes_less_one: Constant<Bits<16>>,
    last_pos: Constant<Bits<4>>,
    sync: Constant<Bits<88>>,
    _lanes: usize,
    _gates: usize,
}

impl Bridge {
    /// A bridge for an engine of `lanes` (P) lanes and `gates` (G) gates.
    pub fn new(lanes: usize, gates: usize) -> Bridge {
        assert!(
            (1..=256).contains(&lanes) && (1..=65536).contains(&gates),
            "bridge size"
        );
        Bridge {
            clock: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            in_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            out_data: Default::default(),
            beat_valid: Default::default(),
            beat_ready: Default::default(),
            beat_count: crate::rtl::many(lanes),
            res_valid: Default::default(),
            res_ready: Default::default(),
            res_pixel: Default::default(),
            res_tau1: Default::default(),
            res_tau2: Default::default(),
            res_fraction: Default::default(),
            busy: Default::default(),
            pending: Default::default(),
            lo: Default::default(),
            half: Default::default(),
            word: Default::default(),
            full: Default::default(),
            lane: crate::rtl::many(lanes),
            gate: Default::default(),
            waiting: Default::default(),
            sending: Default::default(),
            record: Default::default(),
            pos: Default::default(),
            check: Default::default(),
            take: Default::default(),
            group_done: Default::default(),
            record_done: Default::default(),
            out_byte: Default::default(),
            last_word: Constant::new((lanes as u64 - 1).into()),
            last_gate: Constant::new((gates as u64 - 1).into()),
            lanes: Constant::new((lanes as u64).into()),
            lanes_less_one: Constant::new((lanes as u64 - 1).into()),
            last_pos: Constant::new((RECORD_BYTES as u64 - 1).into()),
            sync: Constant::new((SYNC as u64).into()),
            _lanes: lanes,
            _gates: gates,
        }
    }
}

impl Logic for Bridge {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, lo, half, word, full, gate, waiting, sending, record, pos, check);
        // Input: bytes -> 16-bit counts -> beats of P lanes.
        self.in_ready.next = !self.full.q.val();
        self.take.next = self.in_valid.val() && !self.full.q.val();
        self.beat_valid.next = self.full.q.val();
        for l in 0..self._lanes {
            self.lane[l].clock.next = self.clock.val();
            self.lane[l].d.next = self.lane[l].q.val();
            self.beat_count[l].next = self.lane[l].q.val();
            if self.take.val() && self.half.q.val() && (self.word.q.val().index() == l) {
                self.lane[l].d.next = (bit_cast::<16, 8>(self.in_data.val()) << 8)
                    | bit_cast::<16, 8>(self.lo.q.val());
            }
        }
        if self.take.val() {
            if self.half.q.val() {
                self.half.d.next = false;
                if self.word.q.val() == self.last_word.val() {
                    self.word.d.next = 0.into();
                    self.full.d.next = true;
                } else {
                    self.word.d.next = self.word.q.val() + 1;
                }
            } else {
                self.half.d.next = true;
                self.lo.d.next = self.in_data.val();
            }
        }
        self.group_done.next = false;
        if self.full.q.val() && self.beat_ready.val() {
            self.full.d.next = false;
            if self.gate.q.val() == self.last_gate.val() {
                self.gate.d.next = 0.into();
                self.group_done.next = true;
            } else {
                self.gate.d.next = self.gate.q.val() + 1;
            }
        }
        // Output: results -> 12-byte records.
        self.res_ready.next = !self.sending.q.val();
        self.out_valid.next = self.sending.q.val();
        self.out_byte.next = bit_cast::<8, 88>(self.record.q.val());
        if self.pos.q.val() == self.last_pos.val() {
            self.out_byte.next = self.check.q.val();
        }
        self.out_data.next = self.out_byte.val();
        self.record_done.next = false;
        if self.sending.q.val() {
            if self.out_ready.val() {
                self.record.d.next = self.record.q.val() >> 8;
                self.pos.d.next = self.pos.q.val() + 1;
                if self.pos.q.val().any() {
                    self.check.d.next = self.check.q.val() ^ self.out_byte.val();
                }
                if self.pos.q.val() == self.last_pos.val() {
                    self.sending.d.next = false;
                    self.pos.d.next = 0.into();
                    self.record_done.next = true;
                }
            }
        } else if self.res_valid.val() {
            self.sending.d.next = true;
            self.pos.d.next = 0.into();
            self.check.d.next = 0.into();
            self.record.d.next = self.sync.val()
                | (bit_cast::<88, 32>(self.res_pixel.val()) << 8)
                | (bit_cast::<88, 12>(self.res_tau1.val()) << 40)
                | (bit_cast::<88, 12>(self.res_tau2.val()) << 56)
                | (bit_cast::<88, 16>(self.res_fraction.val()) << 72);
        }
        // Pixels in flight.
        if self.group_done.val() {
            if self.record_done.val() {
                self.waiting.d.next = self.waiting.q.val() + self.lanes_less_one.val();
            } else {
                self.waiting.d.next = self.waiting.q.val() + self.lanes.val();
            }
        } else if self.record_done.val() {
            self.waiting.d.next = self.waiting.q.val() - 1;
        }
        self.pending.next = self.waiting.q.val();
        self.busy.next = self.waiting.q.val().any()
            || self.full.q.val()
            || self.half.q.val()
            || self.word.q.val().any()
            || self.gate.q.val().any()
            || self.sending.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boards::protocol::{decode_results, encode_histograms};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    /// Feed `bytes` (with random gaps), take beats (with random stalls),
    /// answer each completed group with one result per pixel, and collect
    /// the output bytes (random back-pressure).
    #[test]
    fn beats_and_records_round_trip() {
        for (lanes, gates) in [(1usize, 11usize), (3, 12)] {
            let n = 7;
            let counts = Array2::from_shape_fn((n, gates), |(i, k)| {
                (i as u32 * 7919 + k as u32 * 104_729) % 70_000
            });
            let bytes = encode_histograms(counts.view(), lanes);
            let mut b = Bridge::new(lanes, gates);
            b.connect_all();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(lanes as u64);
            let (mut sent, mut beats, mut out) = (0usize, Vec::<Vec<u64>>::new(), Vec::new());
            let mut results: std::collections::VecDeque<u64> = Default::default();
            let groups = n.div_ceil(lanes);
            for _ in 0..20_000 {
                b.in_valid.next = sent < bytes.len() && rng.gen_bool(0.7);
                b.in_data.next = (bytes[sent.min(bytes.len() - 1)] as u64).into();
                b.beat_ready.next = rng.gen_bool(0.5);
                b.res_valid.next = !results.is_empty();
                let r = results.front().copied().unwrap_or(0);
                b.res_pixel.next = r.into();
                b.res_tau1.next = (r * 3 % 4096).into();
                b.res_tau2.next = (r * 5 % 4096).into();
                b.res_fraction.next = (r * 9_999 % 65_536).into();
                b.out_ready.next = rng.gen_bool(0.6);
                b.clock.next = Clock { clk: false };
                assert!(simulate(&mut b, 100));
                if b.in_valid.val() && b.in_ready.val() {
                    sent += 1;
                }
                if b.beat_valid.val() && b.beat_ready.val() {
                    beats.push(b.beat_count.iter().map(|c| c.val().to_u64()).collect());
                    if beats.len() % gates == 0 {
                        let g = (beats.len() / gates - 1) as u64;
                        results.extend((0..lanes as u64).map(|l| g * lanes as u64 + l));
                    }
                }
                if b.res_valid.val() && b.res_ready.val() {
                    results.pop_front();
                }
                if b.out_valid.val() && b.out_ready.val() {
                    out.push(b.out_data.val().to_u64() as u8);
                }
                b.clock.next = Clock { clk: true };
                assert!(simulate(&mut b, 100));
            }
            assert_eq!(beats.len(), groups * gates);
            for (j, beat) in beats.iter().enumerate() {
                let (g, k) = (j / gates, j % gates);
                for (l, &c) in beat.iter().enumerate() {
                    let i = g * lanes + l;
                    let want = if i < n { counts[[i, k]].min(65_535) } else { 0 };
                    assert_eq!(c, want as u64, "group {g} gate {k} lane {l}");
                }
            }
            let recs = decode_results(&out).unwrap();
            assert_eq!(recs.len(), groups * lanes);
            for (i, r) in recs.iter().enumerate() {
                let i = i as u64;
                assert_eq!(r.pixel, i);
                assert_eq!(r.codes.tau1 as u64, i * 3 % 4096);
                assert_eq!(r.codes.tau2 as u64, i * 5 % 4096);
                assert_eq!(r.codes.fraction as u64, i * 9_999 % 65_536);
            }
            assert_eq!(b.pending.val().to_u64(), 0);
            assert!(!b.busy.val());
        }
    }
}
