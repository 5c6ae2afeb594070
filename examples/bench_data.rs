//! Throughput of the simulator and the Poisson MLE baseline.
//! `cargo run --release --example bench_data [sim_pixels] [mle_pixels]`
use flimgru::data::{simulate_with_irfs, SimSpec};
use flimgru::lifetime::mle::{MleFitter, MleModel};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let m: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let pps = flimgru::data::bench_simulate(n)?;
    println!(
        "simulate: {n} pixels, {pps:.0} pixels/s ({} threads)",
        rayon::current_num_threads()
    );
    let spec = SimSpec::default();
    let (d, irfs) = simulate_with_irfs(&spec, m, 7)?;
    for model in [MleModel::Mono, MleModel::Bi] {
        let mut fitter = MleFitter::new(&spec.grid, spec.period_ns)?;
        let t0 = Instant::now();
        let mut evals = 0;
        let mut conv = 0;
        for (row, irf) in d.counts.outer_iter().zip(&irfs) {
            let f = fitter.fit(row.as_slice().unwrap(), irf, model)?;
            evals += f.iterations;
            conv += f.converged as usize;
        }
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "MLE {model:?}: {m} pixels on one thread, {:.0} pixels/s, {:.0} evaluations/pixel, {conv} converged",
            m as f64 / dt,
            evals as f64 / m as f64
        );
    }
    Ok(())
}
