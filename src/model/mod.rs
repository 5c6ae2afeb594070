//! The float GRU Seq2Seq, its trainer and model files.
