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
pub mod protocol;
pub mod sim;
pub mod spec;
pub mod stream;
pub mod testbench;
pub mod wave;

pub use cycles::{cycles_per_pixel, CycleModel};
pub use engine::Engine;
pub use prim::Dsp;
pub use spec::{CircuitSpec, Layout, MAX_LANES};

use rust_hdl::prelude::*;

/// State, input, gate and operand codes (Wa <= 16 bits plus sign and the
/// gate's one = 2^(Wa-1) and differences h - c), two's complement. The
/// port types are sized for 16 bits; the arithmetic primitives compute at
/// the [`Widths`] of the actual (Ww, Wa), so synthesis drops the unused
/// bits.
pub type Code = Bits<18>;
/// Weight codes pre-shifted by their tensor exponent (code << e, e <= 3);
/// the MAC units read [`Widths::weight`] of the 20 bits.
pub type Wt = Bits<20>;
/// Accumulators and head outputs (contract: at most Ww + Wa + 3 + 10 = 45 bits).
pub type Acc = Bits<48>;
/// Memory addresses.
pub type Addr = Bits<16>;
/// Raw photon counts (the 16-bit ingest width).
pub type Count = Bits<16>;

/// The widths the contract needs at one (Ww, Wa, H) (docs/fixed-point.md):
/// the hand-written primitives of [`prim`] read their operands and keep
/// their accumulators at these widths, whatever the 16-bit port types
/// carry. Weights are Ww wide, everything the GRU step computes Wa.
/// In the contract's range no value is lost; the Rust models wrap exactly
/// as the Verilog does, so simulation and silicon agree even outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Widths {
    /// Operand codes: states and inputs (Wa bits), gates 0..=2^(Wa-1) and
    /// differences h - c (Wa + 1 bits).
    pub code: u32,
    /// Weight and bias codes shifted by their exponent: Ww + the largest
    /// exponent of the tensors the MAC units read (at most E_MAX = 3), so
    /// a model whose tensors all have e = 0 (the 16-bit student) keeps a
    /// W = 16 weight inside one 18-bit DSP port.
    pub weight: u32,
    /// Accumulators: the contract's A = Ww + Wa + 3 + ceil(log2(H + 2)).
    pub acc: u32,
    /// The streamed products z (h - c) + (c << (Wa - 1)) and r h: 2Wa + 3.
    pub product: u32,
}

impl Widths {
    /// `exponent`: the largest weight exponent (codes in [-QMAX, QMAX]
    /// shifted by it fit W + exponent bits signed).
    pub fn new(fmt: crate::fixed::Format, hidden: usize, exponent: u32) -> Widths {
        assert!(
            exponent <= crate::fixed::contract::E_MAX,
            "exponent {exponent}"
        );
        Widths {
            code: fmt.operand_bits(),
            weight: fmt.bits + exponent,
            acc: fmt.acc_bits(hidden),
            product: fmt.state_product_bits(),
        }
    }
}

/// `n` default values (ports, registers, sub-blocks).
pub(crate) fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}
