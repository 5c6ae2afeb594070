//! flimgru: fluorescence lifetime imaging on FPGAs.
//!
//! The crate follows the flow of data: photons and histograms ([`data`]),
//! the float GRU Seq2Seq and its trainer ([`model`]), lifetimes from the
//! network's channels and the classical baselines ([`lifetime`]), the
//! fixed-point contract with its golden model, PTQ and QAT ([`fixed`]), the
//! compression study ([`compress`]), the rust-hdl circuits of the contract
//! ([`rtl`]), their Verilog export ([`export`]) and the FPGA board top
//! levels around them ([`boards`]). [`engine`] runs a model
//! file in float or in the contract; [`eval`] and [`map`] put it beside
//! the classical methods and draw lifetime images; [`app`] holds the
//! command-line subcommands as library calls, [`bench`] the throughput
//! measurements. [`output`] is the one policy every written file follows.

pub mod app;
pub mod bench;
pub mod boards;
pub mod build;
pub mod compress;
pub mod data;
pub mod engine;
pub mod eval;
pub mod export;
pub mod fixed;
pub mod lifetime;
pub mod map;
pub mod model;
pub mod model_file;
pub mod ome;
pub mod output;
pub mod precision;
pub mod recipe;
pub mod rtl;
pub mod synth;
