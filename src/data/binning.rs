//! Spatial binning of an image's histograms: each pixel's histogram
//! becomes the sum of the `(2r + 1) x (2r + 1)` square around it (cut at
//! the image's edges), as SPCImage's "binning r". It trades resolution for
//! photons, which is what a dim recording needs before any lifetime can be
//! read from it.

use anyhow::{bail, Result};
use ndarray::{Array2, ArrayView2};

/// Largest radius `flimgru map` chooses by itself (7 x 7 squares).
pub const MAX_AUTO_RADIUS: usize = 3;

/// Largest radius accepted at all (41 x 41 squares).
pub const MAX_RADIUS: usize = 20;

/// Sum each pixel's histogram over the square of radius `r` around it.
/// `counts` is `[h * w, bins]`, pixels row-major. Per bin a summed-area
/// table, so the cost does not grow with `r`.
pub fn bin_square(
    counts: ArrayView2<f32>,
    (h, w): (usize, usize),
    r: usize,
) -> Result<Array2<f32>> {
    if counts.nrows() != h * w {
        bail!(
            "binning: {} histograms for a {h} x {w} image",
            counts.nrows()
        );
    }
    if r > MAX_RADIUS {
        bail!(
            "binning {r}: at most {MAX_RADIUS} (a {0} x {0} square)",
            2 * MAX_RADIUS + 1
        );
    }
    if r == 0 {
        return Ok(counts.to_owned());
    }
    let bins = counts.ncols();
    let mut out = Array2::<f32>::zeros((h * w, bins));
    // Summed-area table in f64 (exact for photon counts), one bin at a time.
    let mut sat = vec![0.0f64; (h + 1) * (w + 1)];
    for b in 0..bins {
        for y in 0..h {
            let mut row = 0.0;
            for x in 0..w {
                row += counts[[y * w + x, b]] as f64;
                sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
            }
        }
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let s = sat[y1 * (w + 1) + x1] - sat[y0 * (w + 1) + x1] - sat[y1 * (w + 1) + x0]
                    + sat[y0 * (w + 1) + x0];
                out[[y * w + x, b]] = s as f32;
            }
        }
    }
    Ok(out)
}

/// Photons per pixel (the sum over bins).
fn photons(counts: ArrayView2<f32>) -> Vec<f64> {
    counts
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&c| c as f64).sum())
        .collect()
}

/// The binning a dim image needs: 0 when any pixel reaches `min_photons`
/// as recorded; else the smallest radius up to [`MAX_AUTO_RADIUS`] at
/// which at least 1 % of the pixels (and at least one) reach it; `None`
/// when even that radius leaves every pixel below. Returns the radius and
/// the number of pixels that reach `min_photons` with it.
pub fn auto_radius(
    counts: ArrayView2<f32>,
    shape: (usize, usize),
    min_photons: f64,
) -> Result<Option<(usize, usize)>> {
    let reach = |c: ArrayView2<f32>| photons(c).iter().filter(|&&p| p >= min_photons).count();
    let n0 = reach(counts);
    if n0 > 0 {
        return Ok(Some((0, n0)));
    }
    let need = (counts.nrows() / 100).max(1);
    for r in 1..=MAX_AUTO_RADIUS {
        let n = reach(bin_square(counts, shape, r)?.view());
        if n >= need {
            return Ok(Some((r, n)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn square_sums_match_brute_force_and_cut_at_edges() {
        let (h, w, bins) = (5, 7, 3);
        let c = Array2::from_shape_fn((h * w, bins), |(i, b)| ((i * 7 + b * 3) % 5) as f32);
        for r in 0..=3 {
            let out = bin_square(c.view(), (h, w), r).unwrap();
            for y in 0..h {
                for x in 0..w {
                    for b in 0..bins {
                        let mut s = 0.0;
                        for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                            for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                                s += c[[yy * w + xx, b]];
                            }
                        }
                        assert_eq!(out[[y * w + x, b]], s, "r {r} at ({y}, {x}) bin {b}");
                    }
                }
            }
        }
        assert!(bin_square(c.view(), (h, w + 1), 1).is_err());
        assert!(bin_square(c.view(), (h, w), MAX_RADIUS + 1).is_err());
    }

    #[test]
    fn auto_radius_bins_only_what_is_too_dim() {
        let (h, w) = (20, 20);
        // 4 photons per pixel: a 3 x 3 square has 36, a 5 x 5 one 100; at
        // radius 2 all but the 12 pixels whose cut square holds 12 or fewer
        // pixels (the 3 x 3, 3 x 4 and 4 x 3 corners) reach 50.
        let dim = Array2::<f32>::from_elem((h * w, 4), 1.0);
        assert_eq!(
            auto_radius(dim.view(), (h, w), 50.0).unwrap(),
            Some((2, 388))
        );
        // One bright pixel: no binning.
        let mut bright = dim.clone();
        bright[[0, 0]] = 60.0;
        assert_eq!(
            auto_radius(bright.view(), (h, w), 50.0).unwrap(),
            Some((0, 1))
        );
        // Too dim for 7 x 7 squares (49 photons at most).
        let dark = Array2::<f32>::from_elem((h * w, 1), 1.0);
        assert_eq!(auto_radius(dark.view(), (h, w), 50.0).unwrap(), None);
    }
}
