//! Shared by tests/export_*.rs: the shipped student, build directories.
#![allow(dead_code)]

use flimgru::data::GateGrid;
use flimgru::fixed::QuantModel;
use flimgru::model_file::ModelFile;
use std::path::{Path, PathBuf};

/// The shipped W8A12 32-unit student (models/student-w8a12.json): model,
/// grid, name.
pub fn student() -> (QuantModel, GateGrid, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/student-w8a12.json");
    let file = ModelFile::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let q = file
        .quantized
        .clone()
        .unwrap_or_else(|| panic!("{} has no quantised student", path.display()));
    (q, file.data.grid, file.name)
}

/// A fresh build directory under cargo's target tmpdir.
pub fn build_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("export")
        .join(name);
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}
