//! rust-hdl circuits of the fixed-point contract (docs/fixed-point.md),
//! one block per file, co-simulated bit for bit against the golden model
//! (`crate::fixed::Golden`). docs/hardware.md describes the schedule.
//!
//! ```text
//!  counts (P per beat) -> ingest -> preproc -> gru (encoder/decoder, P lanes x M MACs,
//!  valid/ready            raw buf   divider    two interleaved pixel sets, head)
//!                                                        |
//!            result stream (pixel, tau1, tau2, fraction) <- extract (divider, threshold ROM)
//! ```

pub mod cycles;
pub mod divider;
pub mod engine;
pub mod extract;
pub mod gru;
pub mod head;
pub mod ingest;
pub mod lane;
pub mod preproc;
pub mod prim;
pub mod sim;
pub mod stream;
#[path = "../../testbench/mod.rs"]
pub mod testbench;

pub use cycles::{cycles_per_pixel, CycleModel};
pub use engine::{Engine, EngineConfig};

use rust_hdl::prelude::*;

/// State, input, gate and operand codes (W <= 16 bits plus sign and the
/// gate's one = 2^(W-1) and differences h - c), two's complement.
pub type Code = Bits<18>;
/// Weight codes pre-shifted by their tensor exponent (code << e, e <= 3).
pub type Wt = Bits<20>;
/// Accumulators and head outputs (contract: at most 2W + 3 + 10 = 45 bits).
pub type Acc = Bits<48>;
/// Memory addresses.
pub type Addr = Bits<16>;
/// Raw photon counts (the 16-bit ingest width).
pub type Count = Bits<16>;

/// `n` default values (ports, registers, sub-blocks).
pub(crate) fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}
