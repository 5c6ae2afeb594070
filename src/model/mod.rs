//! The float GRU Seq2Seq (teacher and student are configurations of it),
//! its trainer and its model files.

pub mod gru;
pub mod loss;
pub mod seq2seq;
pub mod stream;
pub mod train;

pub use gru::{CandidateActivation, GateActivation, Gru};
pub use seq2seq::{time_major, Seq2Seq, Seq2SeqConfig, Workspace, CHANNELS};
pub use train::{train, TrainConfig, TrainData};
