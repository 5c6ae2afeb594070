//! Gate-grid matching: rebinning, alignment, the identity case, refusals.

use flimgru::data::grid_match::{
    find_anchor, match_to_grid, match_to_grid_with, reference_anchor_ns, Anchor, MatchOptions,
};
use flimgru::data::{ForwardModel, GateGrid, Irf, SimSpec};
use ndarray::Array2;

/// Noise-free expected counts `[n, G]` of one decay with the IRF at `centre`.
fn expected(grid: &GateGrid, centre: f64, n: usize, photons: f64) -> Array2<f32> {
    let mut fm = ForwardModel::new(grid, 12.5).unwrap();
    fm.set_irf(&Irf::gaussian(centre, 0.25).unwrap()).unwrap();
    let mut p = vec![0.0; grid.gates];
    fm.histogram(0.6, 2.4, 0.4, 0.01, &mut p).unwrap();
    Array2::from_shape_fn((n, grid.gates), |(i, k)| {
        (p[k] * photons * (1.0 + i as f64 * 0.1)) as f32
    })
}

fn peak_normalised(v: ndarray::ArrayView1<f32>) -> Vec<f64> {
    let m = v.iter().cloned().fold(0.0f32, f32::max) as f64;
    v.iter().map(|&x| x as f64 / m).collect()
}

#[test]
fn spad_256_by_48p8_onto_paper_grid() {
    let src_grid = GateGrid::new(256, 0.0488).unwrap();
    let src = expected(&src_grid, 1.2, 6, 1e5);
    let tgt = GateGrid::PAPER;
    let reference = expected(&tgt, 1.0, 1, 1e5);
    let target_peak = find_anchor(reference.view(), tgt.dt_ns, tgt.dt_ns, Anchor::Peak).unwrap();
    let (out, rep) = match_to_grid(src.view(), 0.0488, &tgt, target_peak).unwrap();
    assert_eq!(out.dim(), (6, 135));
    assert!(!rep.integer_rebin);
    assert!((rep.rebin_factor - 0.09 / 0.0488).abs() < 1e-12);
    assert!((rep.shift_ns + 0.2).abs() < 0.03, "{rep}");
    assert_eq!(rep.padded_start + rep.padded_end, 0, "{rep}");
    let text = rep.to_string();
    assert!(
        text.contains("fractional rebinning") && text.contains("shift"),
        "{text}"
    );
    // Same shape as the decay simulated on the target grid directly.
    let a = peak_normalised(out.row(0));
    let b = peak_normalised(reference.row(0));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| (x - y).abs() == worst)
        .unwrap();
    assert!(
        worst < 0.05,
        "worst gate {at} differs by {worst} of the peak; {rep}\n{:?}\n{:?}",
        &a[..25],
        &b[..25]
    );
    // Photons are conserved over the covered window (no padding here).
    let inside: f64 = out.row(0).iter().map(|&v| v as f64).sum();
    let t0 = rep.crop_start_ns;
    let covered: f64 = src
        .row(0)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (lo, hi) = (i as f64 * 0.0488, (i + 1) as f64 * 0.0488);
            let ov = (hi.min(t0 + tgt.window_ns()) - lo.max(t0)).max(0.0) / 0.0488;
            v as f64 * ov
        })
        .sum();
    assert!(
        (inside - covered).abs() < 1e-3 * covered,
        "{inside} {covered}"
    );
}

#[test]
fn one_to_one_is_the_identity() {
    let spec = SimSpec::default();
    let d = flimgru::data::simulate(&spec, 300, 7).unwrap();
    let c = d.counts.mapv(|v| v as f32);
    let g = spec.grid;
    let peak = find_anchor(c.view(), g.dt_ns, g.dt_ns, Anchor::Peak).unwrap();
    let (out, rep) = match_to_grid(c.view(), g.dt_ns, &g, peak).unwrap();
    assert!(rep.integer_rebin);
    assert_eq!(rep.shift_ns, 0.0, "{rep}");
    assert_eq!(out, c);
    assert!(rep.to_string().contains("no rebinning"), "{rep}");
    // A target within half a gate of the found peak is still the identity.
    let (out, _) = match_to_grid(c.view(), g.dt_ns, &g, peak + 0.4 * g.dt_ns).unwrap();
    assert_eq!(out, c);
}

#[test]
fn integer_factor_sums_whole_bins() {
    let n = 300;
    let src = Array2::from_shape_fn((2, n), |(p, i)| {
        let t = i as f64 * 0.045;
        ((if t > 1.5 {
            1000.0 * (-(t - 1.5) / 1.5).exp()
        } else {
            2.0
        }) + (p + i % 5) as f64)
            .round() as f32
    });
    let g = GateGrid::PAPER;
    let (out, rep) = match_to_grid(src.view(), 0.045, &g, 1.0).unwrap();
    assert!(
        rep.integer_rebin && rep.rebin_factor.round() == 2.0,
        "{rep}"
    );
    let s0 = (rep.crop_start_ns / 0.045).round() as usize;
    for p in 0..2 {
        for j in 0..g.gates {
            assert_eq!(out[[p, j]], src[[p, s0 + 2 * j]] + src[[p, s0 + 2 * j + 1]]);
        }
    }
    assert!(rep.to_string().contains("summed 2 bins per gate"), "{rep}");
}

#[test]
fn refusals_give_the_reason() {
    let g = GateGrid::PAPER;
    // Bins coarser than the gates.
    let coarse = expected(&GateGrid::new(60, 0.2).unwrap(), 1.0, 2, 1e4);
    let e = format!(
        "{:#}",
        match_to_grid(coarse.view(), 0.2, &g, 1.0).unwrap_err()
    );
    assert!(e.contains("too coarse"), "{e}");
    // A 3.6 ns window cannot fill 12.15 ns of gates.
    let short = expected(&GateGrid::new(40, 0.09).unwrap(), 1.0, 2, 1e4);
    let e = format!(
        "{:#}",
        match_to_grid(short.view(), 0.09, &g, 1.0).unwrap_err()
    );
    assert!(e.contains("window too short"), "{e}");
    // A peak late in the recording leaves too little after it.
    let late = expected(&GateGrid::new(135, 0.09).unwrap(), 6.0, 2, 1e4);
    let e = format!(
        "{:#}",
        match_to_grid(late.view(), 0.09, &g, 1.0).unwrap_err()
    );
    assert!(e.contains("window too short"), "{e}");
    // Zero photons.
    let z = Array2::<f32>::zeros((3, 135));
    let e = format!("{:#}", match_to_grid(z.view(), 0.09, &g, 1.0).unwrap_err());
    assert!(e.contains("no photons"), "{e}");
}

#[test]
fn small_padding_is_allowed_and_reported() {
    // Peak at ~1.2 ns moved to ~1.4 ns: two gates padded at the start.
    let src = expected(&GateGrid::PAPER, 1.0, 1, 1e4);
    let g = GateGrid::PAPER;
    let peak = find_anchor(src.view(), 0.09, 0.09, Anchor::Peak).unwrap();
    let (out, rep) = match_to_grid(src.view(), 0.09, &g, peak + 0.18).unwrap();
    assert_eq!((rep.padded_start, rep.padded_end), (2, 0), "{rep}");
    assert!(rep.to_string().contains("padded 2 gate(s)"), "{rep}");
    assert_eq!(out[[0, 5]], src[[0, 3]]);
    let opts = MatchOptions {
        max_pad_gates: 1,
        ..MatchOptions::default()
    };
    assert!(match_to_grid_with(src.view(), 0.09, &g, peak + 0.18, &opts).is_err());
}

#[test]
fn rising_edge_anchor_and_training_reference() {
    let spec = SimSpec::default();
    let peak = reference_anchor_ns(&spec, Anchor::Peak).unwrap();
    let edge = reference_anchor_ns(&spec, Anchor::RisingEdge).unwrap();
    // IRF centres are U[0.5, 1.5] ns: the summed peak lies a little after
    // the mean centre, the half-maximum of the rise before the peak.
    assert!(edge < peak, "{edge} {peak}");
    assert!((0.7..1.6).contains(&peak), "{peak}");
    assert!((0.4..1.3).contains(&edge), "{edge}");
}

#[test]
fn whole_period_recordings_wrap_instead_of_padding() {
    // IRF at 2 ns in a 12.49 ns = one-period recording: moving the peak to
    // the training position needs 8 gates past the end, which a periodic
    // histogram supplies from its start.
    let src_grid = GateGrid::new(256, 0.0488).unwrap();
    let src = expected(&src_grid, 2.0, 2, 1e5);
    let tgt = GateGrid::PAPER;
    let reference = expected(&tgt, 1.0, 1, 1e5);
    let target_peak = find_anchor(reference.view(), 0.09, 0.09, Anchor::Peak).unwrap();
    let e = format!(
        "{:#}",
        match_to_grid(src.view(), 0.0488, &tgt, target_peak).unwrap_err()
    );
    assert!(e.contains("window too short"), "{e}");
    let opts = MatchOptions {
        period_ns: Some(12.5),
        ..MatchOptions::default()
    };
    let (out, rep) = match_to_grid_with(src.view(), 0.0488, &tgt, target_peak, &opts).unwrap();
    assert!(rep.wrapped >= 7 && rep.padded_end == 0, "{rep}");
    assert!(rep.to_string().contains("wrapped"), "{rep}");
    let a = peak_normalised(out.row(0));
    let b = peak_normalised(reference.row(0));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.05, "worst gate differs by {worst} of the peak");
}
