//! Per-pixel results as files: the one writer `infer` and `sim` use for
//! every engine (float, golden, circuit), so their outputs compare byte
//! for byte, and library callers write them the same way.

use super::Lifetimes;
use anyhow::{bail, Result};
use ndarray::Array2;
use std::io::Write;
use std::path::Path;

/// Output formats of `flimgru infer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultFormat {
    /// Header `tau1,tau2,fraction`, one row per pixel.
    Csv,
    /// f64 `[n, 3]` or `[h, w, 3]`.
    Npy,
}

impl ResultFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(ResultFormat::Csv),
            Some("npy") => Ok(ResultFormat::Npy),
            _ => bail!("output {} must end in .csv or .npy", path.display()),
        }
    }
}

/// Write per-pixel results; the one writer every engine uses, so results of
/// different engines compare byte for byte.
pub fn write_lifetimes(
    path: &Path,
    format: ResultFormat,
    lifetimes: &[Lifetimes],
    shape: Option<(usize, usize)>,
) -> Result<()> {
    match format {
        ResultFormat::Csv => crate::output::write_with(path, |w| {
            writeln!(w, "tau1,tau2,fraction")?;
            for l in lifetimes {
                writeln!(w, "{:.6},{:.6},{:.6}", l.tau1, l.tau2, l.fraction)?;
            }
            Ok(())
        }),
        ResultFormat::Npy => {
            let flat = Array2::from_shape_fn((lifetimes.len(), 3), |(i, j)| match j {
                0 => lifetimes[i].tau1,
                1 => lifetimes[i].tau2,
                _ => lifetimes[i].fraction,
            });
            let arr = match shape {
                Some((h, w)) => flat.into_shape_with_order((h, w, 3))?.into_dyn(),
                None => flat.into_dyn(),
            };
            crate::output::write_with(path, |w| {
                use ndarray_npy::WriteNpyExt;
                Ok(arr.write_npy(w)?)
            })
        }
    }
}
