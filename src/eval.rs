//! Evaluation: the network's accuracy beside the classical baselines a user
//! would run instead (RLD, Poisson MLE with the IRF), on fresh simulated
//! pixels drawn from the model's own data spec.

use crate::data::irf::Irf;
use crate::data::simulate::{simulate_with_irfs, SimSpec};
use crate::data::{targets, Dataset};
use crate::engine::{EngineKind, Runner};
use crate::lifetime::extract::extract_paper_batch;
use crate::lifetime::metrics::{f_value, rms_f_value, AccuracyTable, MethodMetrics, F_POINTS};
use crate::lifetime::mle::{fit_mle, MleModel};
use crate::lifetime::rld::{rld_bi, rld_mono};
use crate::lifetime::Lifetimes;
use crate::model_file::ModelFile;
use anyhow::{bail, Result};
use ndarray::Axis;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What to evaluate on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Pixels for the network and RLD rows.
    pub pixels: usize,
    /// Of those, how many the (slow) MLE fits.
    pub mle_pixels: usize,
    /// Mono-exponential pixels per F-value point.
    pub f_pixels: usize,
    pub seed: u64,
    /// Engine of the network rows (None: fixed for a quantised model file,
    /// float otherwise).
    #[serde(default)]
    pub engine: Option<EngineKind>,
    /// The IRF centre range (ns) of every set instead of the model's spec's
    /// (to see how precision depends on where the IRF sits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irf_centre_ns: Option<(f64, f64)>,
}

impl EvalConfig {
    /// The model's data spec with this evaluation's overrides, checked.
    pub fn spec_of(&self, model: &ModelFile) -> Result<SimSpec> {
        let mut spec = model.data.clone();
        if let Some(c) = self.irf_centre_ns {
            if spec.irf.measured.is_some() {
                bail!(
                    "--irf-centre: the model's spec uses a measured IRF, which has no centre range"
                );
            }
            spec.irf.centre_ns = c;
        }
        spec.validate()
            .map_err(|e| anyhow::anyhow!("the evaluation's data spec: {e:#}"))?;
        Ok(spec)
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            pixels: 20_000,
            mle_pixels: 1_000,
            f_pixels: 500,
            seed: 12_345,
            engine: None,
            irf_centre_ns: None,
        }
    }
}

/// F-value of one method at one (tau, photons) point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FPoint {
    pub method: String,
    pub tau_ns: f64,
    pub photons: f64,
    /// `None` when the estimates spread is undefined (fewer than 2 finite).
    pub f_value: Option<f64>,
    /// The same with the bias in: sqrt(N) RMS(tau - true) / tau. F alone
    /// rewards an estimator that pulls its estimates together; this one
    /// does not.
    #[serde(default)]
    pub rms_f_value: Option<f64>,
}

/// The full evaluation report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: String,
    pub config: EvalConfig,
    pub table: AccuracyTable,
    pub f_values: Vec<FPoint>,
}

impl Evaluation {
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Accuracy of {} on {} simulated pixels (seed {}; MLE on the first {})\n\n",
            self.model, self.config.pixels, self.config.seed, self.config.mle_pixels
        );
        s += &self.table.to_markdown();
        s += "\n## F-value (mono-exponential, sqrt(N) std(tau)/tau; 1 is the ideal)\n\n";
        s += "F with bias: sqrt(N) RMS(tau - true)/tau, the same spread with the bias in.\n\n";
        s += "| method | tau (ns) | photons | F | F with bias |\n|---|---|---|---|---|\n";
        let two = |v: Option<f64>| v.map_or("-".to_string(), |f| format!("{f:.2}"));
        for p in &self.f_values {
            s += &format!(
                "| {} | {:.2} | {:.0} | {} | {} |\n",
                p.method,
                p.tau_ns,
                p.photons,
                two(p.f_value),
                two(p.rms_f_value)
            );
        }
        s
    }
}

/// Lifetimes by the network (corrected and the paper's rule), with the
/// channels it predicted and its throughput.
struct NetworkRun {
    corrected: Vec<Lifetimes>,
    paper: Vec<Lifetimes>,
    channels: ndarray::Array3<f32>,
    pixels_per_second: f64,
}

fn run_network(engine: &Runner, data: &Dataset) -> Result<NetworkRun> {
    let counts = data.counts.mapv(|c| c as f32);
    let t0 = Instant::now();
    let corrected = engine.lifetimes(counts.view())?;
    let pixels_per_second = data.truth.len() as f64 / t0.elapsed().as_secs_f64();
    // Channels (decoded, for the fixed engine) for the paper's metrics and rule.
    let (_, channels) = engine.lifetimes_and_channels(counts.view())?;
    let paper = extract_paper_batch(channels.view(), data.grid.dt_ns);
    Ok(NetworkRun {
        corrected,
        paper,
        channels,
        pixels_per_second,
    })
}

/// Run a per-pixel method over the first `n` pixels' raw counts in
/// parallel, timing it (pixels/s).
pub fn per_pixel<F>(data: &Dataset, n: usize, f: F) -> (Vec<Lifetimes>, f64)
where
    F: Fn(usize, &[u32]) -> Lifetimes + Sync,
{
    let t0 = Instant::now();
    let out: Vec<Lifetimes> = (0..n)
        .into_par_iter()
        .map(|i| {
            let row = data.counts.index_axis(Axis(0), i);
            let row = row.as_slice().expect("counts rows are contiguous");
            f(i, row)
        })
        .collect();
    (out, n as f64 / t0.elapsed().as_secs_f64())
}

/// The MLE fit, given each pixel's true IRF (the best case for a fit: in
/// practice the IRF is measured once per instrument).
fn mle<'a>(
    spec: &'a SimSpec,
    irfs: &'a [Irf],
    model: MleModel,
) -> impl Fn(usize, &[u32]) -> Lifetimes + Sync + 'a {
    move |i, counts| fit_mle(counts, &spec.grid, spec.period_ns, &irfs[i], model).lifetimes
}

fn rld_f32(
    f: fn(&[f32], &crate::data::GateGrid) -> Lifetimes,
    spec: &SimSpec,
) -> impl Fn(usize, &[u32]) -> Lifetimes + Sync + '_ {
    move |_, counts| {
        let c: Vec<f32> = counts.iter().map(|&v| v as f32).collect();
        f(&c, &spec.grid)
    }
}

/// Evaluate a model beside RLD and MLE.
pub fn evaluate(model: &ModelFile, config: &EvalConfig) -> Result<Evaluation> {
    if config.pixels == 0 {
        bail!("evaluation needs at least one pixel");
    }
    let spec = &config.spec_of(model)?;
    // Counts, network inputs, channels, targets and per-pixel IRFs.
    let g = spec.grid.gates;
    crate::data::simulate::check_pixel_budget("--pixels", config.pixels, g, 4 + 4 + 2 * 12 + 8)?;
    crate::data::simulate::check_pixel_budget(
        "--f-pixels",
        config.f_pixels,
        g,
        4 + 4 + 2 * 12 + 8,
    )?;
    let (data, irfs) = simulate_with_irfs(spec, config.pixels, config.seed)?;
    let engine = Runner::new(model, config.engine)?;
    let net = run_network(&engine, &data)?;
    let target = targets(&data.grid, &data.truth);
    let mut methods = vec![
        MethodMetrics::compute(
            "network",
            &data.truth,
            &net.corrected,
            Some((net.channels.view(), target.view())),
        )?
        .with_throughput(net.pixels_per_second),
        MethodMetrics::compute(
            "network, paper's trapezoid rule",
            &data.truth,
            &net.paper,
            None,
        )?,
    ];
    let (rb, rb_speed) = per_pixel(&data, config.pixels, rld_f32(rld_bi, spec));
    methods.push(
        MethodMetrics::compute("RLD bi (4 windows)", &data.truth, &rb, None)?
            .with_throughput(rb_speed),
    );
    let (rm, rm_speed) = per_pixel(&data, config.pixels, rld_f32(rld_mono, spec));
    methods.push(
        MethodMetrics::compute("RLD mono (2 windows)", &data.truth, &rm, None)?
            .with_throughput(rm_speed),
    );
    let n_mle = config.mle_pixels.min(config.pixels);
    if n_mle > 0 {
        let (mb, mb_speed) = per_pixel(&data, n_mle, mle(spec, &irfs, MleModel::Bi));
        methods.push(
            MethodMetrics::compute("MLE bi (IRF known)", &data.truth[..n_mle], &mb, None)?
                .with_throughput(mb_speed),
        );
        let sub = net.corrected[..n_mle].to_vec();
        methods.push(MethodMetrics::compute(
            "network, same pixels as MLE",
            &data.truth[..n_mle],
            &sub,
            None,
        )?);
    }
    let f_values = if config.f_pixels > 1 {
        f_values(spec, &engine, config)?
    } else {
        Vec::new()
    };
    Ok(Evaluation {
        model: model.name.clone(),
        config: config.clone(),
        table: AccuracyTable::new(methods),
        f_values,
    })
}

/// F-values on mono-exponential sets at a few (tau, N) points.
fn f_values(spec: &SimSpec, engine: &Runner, config: &EvalConfig) -> Result<Vec<FPoint>> {
    let mut out = Vec::new();
    for (k, &(tau, photons)) in F_POINTS.iter().enumerate() {
        let spec = spec.mono_at(tau, photons);
        let (data, irfs) = simulate_with_irfs(&spec, config.f_pixels, config.seed + 1 + k as u64)?;
        let net = run_network(engine, &data)?;
        let (rm, _) = per_pixel(&data, config.f_pixels, rld_f32(rld_mono, &spec));
        let (mm, _) = per_pixel(&data, config.f_pixels, mle(&spec, &irfs, MleModel::Mono));
        for (method, est) in [
            ("network", &net.corrected),
            ("RLD mono", &rm),
            ("MLE mono", &mm),
        ] {
            let taus: Vec<f64> = est.iter().map(|l| l.tau1).collect();
            out.push(FPoint {
                method: method.to_string(),
                tau_ns: tau,
                photons,
                f_value: f_value(&taus, tau, photons),
                rms_f_value: rms_f_value(&taus, tau, photons),
            });
        }
    }
    Ok(out)
}
