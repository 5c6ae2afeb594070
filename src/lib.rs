//! flimgru: fluorescence lifetime imaging on FPGAs.
//!
//! The crate follows the flow of data: photons and histograms ([`data`]),
//! the float GRU Seq2Seq and its trainer ([`model`]), lifetimes from the
//! network's channels and the classical baselines ([`lifetime`]), and the
//! evaluation that puts them side by side ([`eval`]), lifetime images
//! ([`map`]). [`app`] holds the
//! command-line subcommands as library calls, [`bench`] the throughput
//! measurements. Later layers (the fixed-point contract, the circuits, the
//! exporters) build on these.

pub mod app;
pub mod bench;
pub mod compress;
pub mod data;
pub mod engine;
pub mod eval;
pub mod fixed;
pub mod lifetime;
pub mod map;
pub mod model;
pub mod rtl;
