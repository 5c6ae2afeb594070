//! Host side of the board byte protocol (docs/boards.md, "Protocol"):
//! what a host program sends to a board and how it reads the answers.
//!
//! Host -> board: 16-bit little-endian photon counts (clamped to 65535),
//! gate-major per group of P pixels, exactly the engine's input beats
//! ([`crate::rtl::protocol::Beats`]):
//! for group g, for gate k = 0..G-1, for lane l = 0..P-1, the count of
//! pixel gP + l at gate k. The last group is padded with empty
//! histograms. Nothing else (no header, no framing): the board counts
//! bytes, so a host that loses sync must reconfigure (or power-cycle) the
//! board.
//!
//! Board -> host: one 12-byte record per pixel (padding pixels of the
//! last group included), in input order:
//! `0xA5, pixel (u32 LE), tau1 (u16 LE), tau2 (u16 LE), fraction (u16 LE), xor`
//! where `xor` is the XOR of the ten bytes after the sync byte. Pixel
//! indices count from 0 at power-up and keep counting across images.
//!
//! Flow control over the UART (which has none): the host keeps at most
//! [`MAX_GROUPS_IN_FLIGHT`] groups unanswered, i.e. it starts sending
//! group g only after it has received every record of group g - 2. Then
//! the engine's input never stalls and no byte is lost, whatever the
//! engine's speed (see docs/boards.md for why two).

use crate::fixed::PixelCodes;
use crate::rtl::protocol::Beats;
use anyhow::{bail, Result};
use ndarray::ArrayView2;

/// First byte of every result record.
pub const SYNC: u8 = 0xA5;
/// Bytes per result record.
pub const RECORD_BYTES: usize = 12;
/// Groups of P pixels a host may have sent and not yet had answered.
pub const MAX_GROUPS_IN_FLIGHT: usize = 2;

/// One decoded result record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelResult {
    /// Pixel index since power-up (a padding pixel's index too).
    pub pixel: u64,
    pub codes: PixelCodes,
}

/// Bytes per group of `lanes` pixels on `gates` gates.
pub fn group_bytes(lanes: usize, gates: usize) -> usize {
    2 * lanes * gates
}

/// The byte stream for histograms `counts` (`[n, G]`) on an engine of
/// `lanes` (P) lanes: gate-major per group, 16-bit little-endian counts
/// clamped to 65535, the last group padded with empty histograms.
pub fn encode_histograms(counts: ArrayView2<u32>, lanes: usize) -> Vec<u8> {
    let lanes = lanes.max(1);
    let beats = Beats::new(counts, lanes);
    let mut out = Vec::with_capacity(beats.groups() * group_bytes(lanes, counts.ncols()));
    for b in 0..beats.len() {
        for c in beats.beat(b) {
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
    out
}

/// Parse result records; an error names the offset and what is wrong
/// (a missing sync byte, a bad checksum, a code out of range, a partial
/// record at the end).
pub fn decode_results(bytes: &[u8]) -> Result<Vec<PixelResult>> {
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        bail!(
            "{} bytes is not a whole number of {RECORD_BYTES}-byte records (a partial record of {} bytes at the end)",
            bytes.len(),
            bytes.len() % RECORD_BYTES
        );
    }
    let mut out = Vec::with_capacity(bytes.len() / RECORD_BYTES);
    for (r, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let at = r * RECORD_BYTES;
        if rec[0] != SYNC {
            bail!(
                "record {r} (byte offset {at}) starts with {:#04x}, not the sync byte {SYNC:#04x}",
                rec[0]
            );
        }
        let xor = rec[1..11].iter().fold(0u8, |a, &b| a ^ b);
        if xor != rec[11] {
            bail!(
                "record {r} (byte offset {at}): checksum {:#04x}, the bytes give {xor:#04x}",
                rec[11]
            );
        }
        let u16_at = |i: usize| u16::from_le_bytes([rec[i], rec[i + 1]]) as u32;
        let pixel = u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]) as u64;
        let (tau1, tau2) = (u16_at(5), u16_at(7));
        if tau1 >= 1 << 12 || tau2 >= 1 << 12 {
            bail!("record {r} (byte offset {at}): tau code {tau1} / {tau2} does not fit 12 bits");
        }
        out.push(PixelResult {
            pixel,
            codes: PixelCodes {
                tau1,
                tau2,
                fraction: u16_at(9),
            },
        });
    }
    Ok(out)
}

/// The record the board sends for one result (the inverse of
/// [`decode_results`]; used by tests and host-side simulators).
pub fn encode_record(r: &PixelResult) -> [u8; RECORD_BYTES] {
    let mut b = [0u8; RECORD_BYTES];
    b[0] = SYNC;
    b[1..5].copy_from_slice(&(r.pixel as u32).to_le_bytes());
    b[5..7].copy_from_slice(&(r.codes.tau1 as u16).to_le_bytes());
    b[7..9].copy_from_slice(&(r.codes.tau2 as u16).to_le_bytes());
    b[9..11].copy_from_slice(&(r.codes.fraction as u16).to_le_bytes());
    b[11] = b[1..11].iter().fold(0u8, |a, &x| a ^ x);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn histograms_are_gate_major_little_endian_clamped_and_padded() {
        let c = array![[1u32, 2, 3], [0x1234, 70_000, 5], [9, 8, 7]];
        let b = encode_histograms(c.view(), 2);
        assert_eq!(b.len(), 2 * group_bytes(2, 3));
        // Group 0, gate 0: pixel 0 then pixel 1.
        assert_eq!(&b[..4], &[1, 0, 0x34, 0x12]);
        // Group 0, gate 1: pixel 1's count is clamped.
        assert_eq!(&b[4..8], &[2, 0, 0xff, 0xff]);
        // Group 1: pixel 2 and a padding pixel.
        assert_eq!(&b[12..16], &[9, 0, 0, 0]);
        assert_eq!(encode_histograms(c.view(), 1).len(), 18);
    }

    #[test]
    fn records_round_trip_and_damage_is_reported() {
        let rs: Vec<PixelResult> = (0..5u64)
            .map(|i| PixelResult {
                pixel: i * 1_000_003,
                codes: PixelCodes {
                    tau1: (i * 811 % 4096) as u32,
                    tau2: 4095,
                    fraction: (i * 30_000 % 65_536) as u32,
                },
            })
            .collect();
        let bytes: Vec<u8> = rs.iter().flat_map(encode_record).collect();
        assert_eq!(decode_results(&bytes).unwrap(), rs);
        let mut bad = bytes.clone();
        bad[12] = 0;
        let e = decode_results(&bad).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("sync"), "{e}");
        let mut bad = bytes.clone();
        bad[15] ^= 4;
        let e = decode_results(&bad).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = decode_results(&bytes[..30]).unwrap_err().to_string();
        assert!(e.contains("partial record of 6 bytes"), "{e}");
    }
}
