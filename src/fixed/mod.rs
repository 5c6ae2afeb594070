//! The fixed-point contract (docs/fixed-point.md) and everything that
//! follows it exactly: quantised weights, the golden model, and the
//! quantisation-aware trainer whose forward pass is the golden model.

pub mod contract;
pub mod golden;
pub mod qat;
pub mod quant;
pub mod rounding;

pub use contract::Format;
pub use golden::{Golden, PixelCodes, LANES};
pub use quant::{fake_quantise, QuantModel, QuantTensor, ScaleRule};
