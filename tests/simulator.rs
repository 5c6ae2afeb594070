//! Simulator: reproducibility, statistics, spec validation, and the MLE
//! baseline's precision on simulated pixels.

use flimgru::data::irf::IrfSpec;
use flimgru::data::{simulate, simulate_with_irfs, SimSpec};
use flimgru::lifetime::mle::{MleFitter, MleModel};

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let spec = SimSpec::default();
    let n = 2500; // spans three chunks, the last partial
    let a = in_pool(1, || simulate(&spec, n, 42).unwrap());
    let b = in_pool(2, || simulate(&spec, n, 42).unwrap());
    let c = in_pool(2, || simulate(&spec, n, 43).unwrap());
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.truth, b.truth);
    assert_ne!(a.counts, c.counts);
}

#[test]
fn truth_is_consistent_and_in_range() {
    let spec = SimSpec::default();
    let d = simulate(&spec, 4000, 1).unwrap();
    assert_eq!(d.counts.dim(), (4000, 135));
    let mut mono = 0;
    for (row, t) in d.counts.outer_iter().zip(&d.truth) {
        assert_eq!(row.iter().map(|&c| c as u64).sum::<u64>(), t.photons);
        assert!(t.tau1 >= 0.05 && t.tau2 <= 3.0 && t.tau1 <= t.tau2);
        assert!((50.0..=5000.0).contains(&t.expected_photons));
        assert!((0.0..=0.05).contains(&t.background));
        assert!((0.5..=1.5).contains(&t.irf_centre));
        assert!((0.15..=0.40).contains(&t.irf_fwhm));
        if t.mono {
            mono += 1;
            assert_eq!((t.fraction, t.tau2), (1.0, t.tau1));
        } else {
            assert!((0.0..=1.0).contains(&t.fraction));
        }
    }
    let share = mono as f64 / 4000.0;
    assert!((share - 0.2).abs() < 0.03, "mono share {share}");
    let tails = d.truth.iter().filter(|t| t.irf_tail > 0.0).count() as f64 / 4000.0;
    assert!((tails - 0.5).abs() < 0.04, "SPAD-tail share {tails}");
}

#[test]
fn total_photons_are_poisson() {
    let spec = SimSpec {
        photons: (1000.0, 1000.0),
        ..Default::default()
    };
    let d = simulate(&spec, 3000, 9).unwrap();
    let n: Vec<f64> = d.truth.iter().map(|t| t.photons as f64).collect();
    let m = n.iter().sum::<f64>() / n.len() as f64;
    let v = n.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n.len() - 1) as f64;
    assert!((m - 1000.0).abs() < 2.0, "mean {m}");
    assert!((v / m - 1.0).abs() < 0.12, "variance/mean {}", v / m);
}

#[test]
fn invalid_specs_are_rejected() {
    let bad = [
        SimSpec {
            tau_ns: (3.0, 0.05),
            ..Default::default()
        },
        SimSpec {
            tau_ns: (-1.0, 3.0),
            ..Default::default()
        },
        SimSpec {
            tau_ns: (f64::NAN, 3.0),
            ..Default::default()
        },
        SimSpec {
            photons: (0.0, 100.0),
            ..Default::default()
        },
        SimSpec {
            fraction: (0.0, 1.5),
            ..Default::default()
        },
        SimSpec {
            mono_fraction: -0.1,
            ..Default::default()
        },
        SimSpec {
            background: (0.1, 0.0),
            ..Default::default()
        },
        SimSpec {
            period_ns: 10.0,
            ..Default::default()
        },
        SimSpec {
            irf: IrfSpec {
                tail_tau_ns: (0.0, 0.1),
                ..Default::default()
            },
            ..Default::default()
        },
    ];
    for s in &bad {
        let e = s.validate().unwrap_err().to_string();
        assert!(simulate(s, 10, 0).is_err(), "accepted: {e}");
    }
    assert!(SimSpec::default().validate().is_ok());
    // serde round trip with defaults filled in
    let s: SimSpec = serde_json::from_str(r#"{"mono_fraction": 0.5}"#).unwrap();
    assert_eq!(s.mono_fraction, 0.5);
    assert_eq!(s.tau_ns, (0.05, 3.0));
}

#[test]
fn zero_pixels_is_an_empty_dataset() {
    let d = simulate(&SimSpec::default(), 0, 0).unwrap();
    assert_eq!(d.counts.dim(), (0, 135));
}

/// F = sqrt(N) std(tau_est) / tau over 200 mono pixels of 3000 photons.
#[test]
fn mle_f_value_on_mono_pixels() {
    let tau = 1.5;
    let spec = SimSpec {
        tau_ns: (tau, tau),
        mono_fraction: 1.0,
        photons: (3000.0, 3000.0),
        background: (0.0, 0.01),
        ..Default::default()
    };
    let (d, irfs) = simulate_with_irfs(&spec, 200, 11).unwrap();
    let mut fitter = MleFitter::new(&spec.grid, spec.period_ns).unwrap();
    let est: Vec<f64> = d
        .counts
        .outer_iter()
        .zip(&irfs)
        .map(|(row, irf)| {
            fitter
                .fit(row.as_slice().unwrap(), irf, MleModel::Mono)
                .unwrap()
                .lifetimes
                .tau1
        })
        .collect();
    let m = est.iter().sum::<f64>() / est.len() as f64;
    let sd = (est.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (est.len() - 1) as f64).sqrt();
    let n = d.truth.iter().map(|t| t.photons as f64).sum::<f64>() / 200.0;
    let f = n.sqrt() * sd / tau;
    eprintln!("MLE mono: mean tau {m:.4}, F = {f:.3}");
    assert!((m / tau - 1.0).abs() < 0.02, "bias: mean {m}");
    assert!((0.9..=2.0).contains(&f), "F-value {f}");
}

/// A separate long-lifetime range (a short and a long component, as in
/// NAD(P)H): bi pixels take one lifetime from each range, mono pixels
/// from their hull; a bad range is refused by name.
#[test]
fn long_lifetime_range_draws_one_component_from_each() {
    let spec = SimSpec {
        tau_ns: (0.2, 0.8),
        long_tau_ns: Some((1.5, 4.0)),
        ..SimSpec::default()
    };
    let d = simulate(&spec, 3000, 11).unwrap();
    let (mut mono_long, mut mono_short) = (false, false);
    for t in &d.truth {
        if t.mono {
            assert!((0.2..=4.0).contains(&t.tau1));
            mono_long |= t.tau1 > 1.5;
            mono_short |= t.tau1 < 0.8;
        } else {
            assert!((0.2..=0.8).contains(&t.tau1), "{t:?}");
            assert!((1.5..=4.0).contains(&t.tau2), "{t:?}");
        }
    }
    assert!(mono_long && mono_short);
    let bad = SimSpec {
        long_tau_ns: Some((0.0, 2.0)),
        ..SimSpec::default()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("long_tau_ns"), "{e}");
}
