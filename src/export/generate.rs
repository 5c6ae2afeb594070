//! rust-hdl's own Verilog generator (`ModuleDefines`), fed syntax trees
//! whose loops are already unrolled ([`super::unroll`]).
//!
//! `generate_verilog` walks the block hierarchy with a `Probe` that asks
//! every block for its `hdl()`. [`Unrolling`] sits between the walk and
//! rust-hdl's `ModuleDefines`: it forwards every call unchanged except
//! that the block handed to `visit_start_scope` is a [`Fixed`] view whose
//! `hdl()` is the unrolled code of the real block.

use super::unroll::unroll;
use anyhow::{anyhow, Result};
use rust_hdl::core::atom::Atom;
use rust_hdl::prelude::*;

/// rust-hdl's Verilog of `uut` with loops unrolled before code generation
/// (checked for undriven inputs and combinational loops first).
pub fn generate<U: Block>(uut: &U) -> Result<String> {
    check_all(uut).map_err(|e| anyhow!("the circuit does not check: {e:?}"))?;
    let mut probe = Unrolling {
        inner: ModuleDefines::default(),
    };
    uut.accept("top", &mut probe);
    Ok(probe.inner.defines())
}

struct Unrolling {
    inner: ModuleDefines,
}

impl Probe for Unrolling {
    fn visit_start_scope(&mut self, name: &str, node: &dyn Block) {
        let fixed = Fixed {
            node,
            code: unroll(node.hdl()),
        };
        self.inner.visit_start_scope(name, &fixed);
    }
    fn visit_start_namespace(&mut self, name: &str, node: &dyn Block) {
        self.inner.visit_start_namespace(name, node);
    }
    fn visit_atom(&mut self, name: &str, signal: &dyn Atom) {
        self.inner.visit_atom(name, signal);
    }
    fn visit_end_namespace(&mut self, name: &str, node: &dyn Block) {
        self.inner.visit_end_namespace(name, node);
    }
    fn visit_end_scope(&mut self, name: &str, node: &dyn Block) {
        self.inner.visit_end_scope(name, node);
    }
}

/// A read-only view of a block with replaced code (only `hdl` and
/// `accept` are ever called on it by `ModuleDefines`).
struct Fixed<'a> {
    node: &'a dyn Block,
    code: Verilog,
}

impl Logic for Fixed<'_> {
    fn update(&mut self) {}
    fn hdl(&self) -> Verilog {
        self.code.clone()
    }
    fn timing(&self) -> Vec<TimingInfo> {
        self.node.timing()
    }
}

impl Block for Fixed<'_> {
    fn connect_all(&mut self) {}
    fn update_all(&mut self) {}
    fn has_changed(&self) -> bool {
        self.node.has_changed()
    }
    fn accept(&self, name: &str, probe: &mut dyn Probe) {
        self.node.accept(name, probe)
    }
}
