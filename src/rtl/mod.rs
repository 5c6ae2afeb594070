//! rust-hdl circuits of the fixed-point contract (in progress).
