//! The precision budget (docs/precision.md): every estimator on one test
//! set, beside the Poisson MLE with the IRF known (the practical bound),
//! so the table shows where lifetime precision goes between the float
//! teacher, the float student and the hardware student.
//!
//! One command regenerates it: `flimgru precision --out docs/precision.md`
//! (rows from `configs/precision.json`).

use crate::data::irf::Irf;
use crate::data::simulate::{simulate_with_irfs, SimSpec};
use crate::data::{targets, Dataset, Truth};
use crate::engine::{EngineKind, Runner};
use crate::eval::per_pixel;
use crate::fixed::contract::{Format, Narrowing};
use crate::fixed::{Golden, QuantModel};
use crate::lifetime::extract::extract_batch;
use crate::lifetime::extract::full_decay_tau;
use crate::lifetime::metrics::{f_value, precision_score, ChannelMetrics, ErrStats, PHOTON_BINS};
use crate::lifetime::mle::{fit_mle, fit_mle_irf_unknown, MleModel};
use crate::lifetime::Lifetimes;
use crate::model_file::ModelFile;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Lifetimes (ns) and photon counts of the F-value grid.
pub const F_TAUS: [f64; 4] = [0.5, 1.0, 2.0, 3.0];
pub const F_PHOTONS: [f64; 3] = [300.0, 1000.0, 5000.0];
/// Largest test set (pixels).
const MAX_PIXELS: usize = 1 << 20;

/// One network row of the budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowSpec {
    pub label: String,
    pub model: PathBuf,
    /// `None`: fixed for a quantised model, float otherwise.
    #[serde(default)]
    pub engine: Option<EngineKind>,
    /// Run the quantised model with one quantisation point widened.
    #[serde(default)]
    pub widen: Option<Widen>,
}

/// One quantisation point of a quantised student widened to `bits`, every
/// other point kept at the student's own width: the per-point rows of the
/// budget. Activation points run the student's weight codes in a format
/// with `bits`-bit activations and round every other point back onto the
/// student's grid ([`Narrowing`]); "weights" re-quantises the student's
/// latent float weights on `bits` bits with every activation point
/// narrowed; "extraction" decodes the student's head outputs and runs the
/// extraction in f64; "none" is the probe with nothing widened (the
/// student up to double rounding) and "all" the latent weights with every
/// point on `bits` bits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Widen {
    pub point: String,
    pub bits: u32,
    /// For a float model: post-training quantisation of its weights onto
    /// this width first (the student every other point stays at).
    #[serde(default)]
    pub ptq_bits: Option<u32>,
    /// With `ptq_bits`: the PTQ student's activation and state width Wa
    /// (mixed precision, e.g. 12 for W8A12); absent: Wa = Ww.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptq_act_bits: Option<u32>,
}

impl Widen {
    /// The PTQ format of a float model's row (`None`: the model's own codes).
    fn ptq_format(&self) -> Result<Option<Format>> {
        match (self.ptq_bits, self.ptq_act_bits) {
            (None, None) => Ok(None),
            (None, Some(a)) => bail!("ptq_act_bits = {a} needs ptq_bits (the PTQ weight width)"),
            (Some(w), a) => Format::mixed(w, a.unwrap_or(w)).map(Some),
        }
    }
}

/// The points [`Widen`] takes.
pub const WIDEN_POINTS: [&str; 10] = [
    "none",
    "input",
    "weights",
    "state",
    "gates",
    "reset",
    "candidate",
    "head",
    "extraction",
    "all",
];

/// What the budget measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionConfig {
    pub rows: Vec<RowSpec>,
    /// Pixels of the mixed test set (the first row's data spec).
    pub pixels: usize,
    /// Mono-exponential pixels per F-value point.
    pub f_pixels: usize,
    pub seed: u64,
    /// Also fit the mono pixels with the IRF unknown (a slow row: a 6-D
    /// fit per pixel; parametric IRF priors only).
    #[serde(default)]
    pub mle_irf_unknown: bool,
}

impl PrecisionConfig {
    pub fn load(path: &Path) -> Result<PrecisionConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read precision config {}", path.display()))?;
        let c: PrecisionConfig = serde_json::from_str(&text)
            .with_context(|| format!("precision config {} is malformed", path.display()))?;
        c.validate()
            .with_context(|| format!("precision config {}", path.display()))?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        if self.rows.is_empty() {
            bail!("no rows: name at least one model");
        }
        if !(1..=MAX_PIXELS).contains(&self.pixels) {
            bail!(
                "pixels = {} is out of range (1..={MAX_PIXELS})",
                self.pixels
            );
        }
        if !(2..=MAX_PIXELS).contains(&self.f_pixels) {
            bail!(
                "f_pixels = {} is out of range (2..={MAX_PIXELS})",
                self.f_pixels
            );
        }
        for r in &self.rows {
            if let Some(w) = &r.widen {
                if !WIDEN_POINTS.contains(&w.point.as_str()) {
                    bail!(
                        "row {:?}: widen point {:?} is not one of {}",
                        r.label,
                        w.point,
                        WIDEN_POINTS.join(", ")
                    );
                }
                Format::new(w.bits).with_context(|| format!("row {:?}: widen bits", r.label))?;
                w.ptq_format()
                    .with_context(|| format!("row {:?}: widen", r.label))?;
                if r.engine == Some(EngineKind::Float) {
                    bail!("row {:?}: a widened row runs the fixed engine", r.label);
                }
            }
        }
        Ok(())
    }
}

/// Errors of one quantity per photon bin (and overall).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    pub all: ErrStats,
    pub bins: Vec<ErrStats>,
}

fn binned(truth: &[Truth], pairs: impl Fn(&Truth, usize) -> Option<(f64, f64)>) -> Binned {
    let sel = |lo: u64, hi: u64| {
        ErrStats::from_pairs(
            truth
                .iter()
                .enumerate()
                .filter(|(_, t)| t.photons >= lo && t.photons < hi)
                .filter_map(|(i, t)| pairs(t, i)),
        )
    };
    Binned {
        all: sel(0, u64::MAX),
        bins: PHOTON_BINS.iter().map(|&(lo, hi)| sel(lo, hi)).collect(),
    }
}

/// One estimator's measured precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowResult {
    pub label: String,
    pub engine: String,
    /// F at [`F_TAUS`] x [`F_PHOTONS`] (tau-major), on the mean lifetime.
    pub f: Vec<Option<f64>>,
    /// F of tau1 on the same sets (a network that splits a mono decay into
    /// two components shows it here).
    pub f_tau1: Vec<Option<f64>>,
    /// F of the full-decay channel's lifetime ([`full_decay_tau`]; networks
    /// only): the extraction alternative that ignores the split.
    pub f_full_decay: Vec<Option<f64>>,
    /// Mono pixels: RMSE (bias) of the full-decay lifetime (networks only).
    pub mono_full_decay: Option<Binned>,
    /// Mono pixels: the lifetime (mean lifetime of the estimate).
    pub mono_tau: Binned,
    /// Bi pixels.
    pub bi_tau1: Binned,
    pub bi_tau2: Binned,
    pub bi_fraction: Binned,
    pub bi_tau_mean: Binned,
    /// Full-decay channel RMSE (networks only).
    pub ch0_rmse: Option<f64>,
    /// The recipe's validation figure on this test set (none for a row
    /// that estimates mono-exponential pixels only).
    pub score: Option<f64>,
}

/// The whole budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Budget {
    pub config: PrecisionConfig,
    pub spec: SimSpec,
    pub mono_pixels: usize,
    pub bi_pixels: usize,
    pub rows: Vec<RowResult>,
}

struct TestSet {
    data: Dataset,
    irfs: Vec<Irf>,
    /// F sets in [`F_TAUS`] x [`F_PHOTONS`] order.
    f_sets: Vec<(f64, f64, Dataset, Vec<Irf>)>,
}

fn test_set(spec: &SimSpec, config: &PrecisionConfig) -> Result<TestSet> {
    let (data, irfs) = simulate_with_irfs(spec, config.pixels, config.seed)?;
    let mut f_sets = Vec::new();
    for (i, &tau) in F_TAUS.iter().enumerate() {
        for (j, &n) in F_PHOTONS.iter().enumerate() {
            let s = spec.mono_at(tau, n);
            let seed = config.seed + 1 + (i * F_PHOTONS.len() + j) as u64;
            let (d, irf) = simulate_with_irfs(&s, config.f_pixels, seed)?;
            f_sets.push((tau, n, d, irf));
        }
    }
    Ok(TestSet { data, irfs, f_sets })
}

/// Full-decay lifetimes of a network run: of the main set and of each F set.
struct FullDecay {
    main: Vec<f64>,
    f_sets: Vec<Vec<f64>>,
}

#[allow(clippy::too_many_arguments)]
fn row_result(
    label: &str,
    engine: &str,
    set: &TestSet,
    est: &[Lifetimes],
    f_est: &[Vec<Lifetimes>],
    full: Option<&FullDecay>,
    ch0_rmse: Option<f64>,
) -> RowResult {
    let truth = &set.data.truth;
    let mean = |t: &Truth| t.fraction * t.tau1 + (1.0 - t.fraction) * t.tau2;
    let mut f = Vec::new();
    let mut f_tau1 = Vec::new();
    let mut f_full_decay = Vec::new();
    for (k, ((tau, _, d, _), e)) in set.f_sets.iter().zip(f_est).enumerate() {
        let photons = d.truth.iter().map(|t| t.photons as f64).sum::<f64>() / d.truth.len() as f64;
        let m: Vec<f64> = e.iter().map(|l| l.tau_mean()).collect();
        let t1: Vec<f64> = e.iter().map(|l| l.tau1).collect();
        f.push(f_value(&m, *tau, photons));
        f_tau1.push(f_value(&t1, *tau, photons));
        if let Some(fd) = full {
            f_full_decay.push(f_value(&fd.f_sets[k], *tau, photons));
        }
    }
    RowResult {
        label: label.to_string(),
        engine: engine.to_string(),
        f,
        f_tau1,
        mono_tau: binned(truth, |t, i| t.mono.then(|| (est[i].tau_mean(), t.tau1))),
        f_full_decay,
        mono_full_decay: full.map(|fd| binned(truth, |t, i| t.mono.then(|| (fd.main[i], t.tau1)))),
        bi_tau1: binned(truth, |t, i| (!t.mono).then(|| (est[i].tau1, t.tau1))),
        bi_tau2: binned(truth, |t, i| (!t.mono).then(|| (est[i].tau2, t.tau2))),
        bi_fraction: binned(truth, |t, i| {
            (!t.mono).then(|| (est[i].fraction, t.fraction))
        }),
        bi_tau_mean: binned(truth, |t, i| {
            (!t.mono).then(|| (est[i].tau_mean(), mean(t)))
        }),
        ch0_rmse,
        score: Some(precision_score(truth, est)),
    }
}

fn counts_f32(d: &Dataset) -> ndarray::Array2<f32> {
    d.counts.mapv(|c| c as f32)
}

/// A row's engine, and whether its extraction runs in f64.
fn row_engine<'a>(spec: &RowSpec, model: &'a ModelFile) -> Result<(Runner<'a>, bool)> {
    Ok(match &spec.widen {
        Some(w) => (widened_engine(model, w)?, w.point == "extraction"),
        None => (Runner::new(model, spec.engine)?, false),
    })
}

fn network_row(spec: &RowSpec, model: &ModelFile, set: &TestSet) -> Result<RowResult> {
    let (engine, float_extraction) = row_engine(spec, model)?;
    let dt = set.data.grid.dt_ns;
    let run = |counts: ndarray::ArrayView2<f32>| -> Result<(Vec<Lifetimes>, ndarray::Array3<f32>)> {
        let (l, ch) = engine.lifetimes_and_channels(counts)?;
        Ok(if float_extraction {
            (extract_batch(ch.view(), dt), ch)
        } else {
            (l, ch)
        })
    };
    let (est, ch) = run(counts_f32(&set.data).view())?;
    let target = targets(&set.data.grid, &set.data.truth);
    let ch0 = ChannelMetrics::compute(ch.view(), target.view())?.ch0_rmse;
    let taus = |ch: &ndarray::Array3<f32>| -> Vec<f64> {
        ch.outer_iter().map(|c| full_decay_tau(c, dt)).collect()
    };
    let mut f_est = Vec::new();
    let mut full = FullDecay {
        main: taus(&ch),
        f_sets: Vec::new(),
    };
    for (_, _, d, _) in &set.f_sets {
        let (l, c) = run(counts_f32(d).view())?;
        f_est.push(l);
        full.f_sets.push(taus(&c));
    }
    let kind = match engine.kind() {
        EngineKind::Float => "float",
        EngineKind::Fixed => "fixed (golden = FPGA)",
    };
    Ok(row_result(
        &spec.label,
        kind,
        set,
        &est,
        &f_est,
        Some(&full),
        ch0,
    ))
}

/// The golden engine of a [`Widen`] row.
fn widened_engine<'a>(model: &ModelFile, w: &Widen) -> Result<Runner<'a>> {
    let ptq;
    let q = match (&model.quantized, w.ptq_format()?) {
        (Some(_), Some(_)) => bail!(
            "model {} is already quantised: ptq_bits applies to float models",
            model.name
        ),
        (Some(q), None) => q,
        (None, Some(fmt)) => {
            ptq = QuantModel::from_float_in(&model.weights, fmt)?;
            &ptq
        }
        (None, None) => bail!(
            "model {} has no quantised weights to widen a point of (give ptq_bits)",
            model.name
        ),
    };
    let own = q.format();
    if w.bits < own.act_bits {
        bail!(
            "widening {} to {} bits: narrower than the model's own {}",
            w.point,
            w.bits,
            own.name()
        );
    }
    let wide = Format::new(w.bits)?;
    let grid = &model.data.grid;
    let golden = match w.point.as_str() {
        "extraction" => Golden::new(q, grid)?,
        "weights" | "all" => {
            let latent = QuantModel::from_float_in(&model.weights, wide)?;
            let keep: &[&str] = if w.point == "all" {
                &["input", "gates", "reset", "candidate", "state", "head"]
            } else {
                &[]
            };
            let n = Narrowing::to_bits_except(wide, own.act_bits, keep)?;
            Golden::new(&latent, grid)?.with_narrowing(n)?
        }
        point => {
            let mut codes = q.clone();
            codes.act_bits = Some(w.bits);
            let fmt = Format::mixed(own.bits, w.bits)?;
            let keep: &[&str] = if point == "none" { &[] } else { &[point] };
            let n = Narrowing::to_bits_except(fmt, own.act_bits, keep)?;
            Golden::new(&codes, grid)?.with_narrowing(n)?
        }
    };
    Ok(Runner::Fixed(Box::new(golden)))
}

/// The MLE row: mono fits on mono pixels and on the F sets, bi fits on bi
/// pixels, each with the pixel's own IRF (the best case for a fit).
fn mle_row(spec: &SimSpec, set: &TestSet) -> RowResult {
    let fit = |d: &Dataset, irfs: &[Irf], mono_of: &(dyn Fn(usize) -> bool + Sync)| {
        let model = |i| {
            if mono_of(i) {
                MleModel::Mono
            } else {
                MleModel::Bi
            }
        };
        per_pixel(d, d.truth.len(), |i, c| {
            fit_mle(c, &spec.grid, spec.period_ns, &irfs[i], model(i)).lifetimes
        })
        .0
    };
    let truth = &set.data.truth;
    let est = fit(&set.data, &set.irfs, &|i| truth[i].mono);
    let f_est: Vec<Vec<Lifetimes>> = set
        .f_sets
        .iter()
        .map(|(_, _, d, irfs)| fit(d, irfs, &|_| true))
        .collect();
    row_result(
        "Poisson MLE, IRF known (mono fit on mono pixels, bi on bi)",
        "f64 fit",
        set,
        &est,
        &f_est,
        None,
        None,
    )
}

/// The MLE with each pixel's IRF unknown (fitted within the simulator's
/// IRF prior, as a network must infer it): mono fits on the mono pixels
/// and the F sets only. Its F against the IRF-known row says how much of
/// a network's error floor no estimator without the IRF can avoid.
fn mle_irf_unknown_row(spec: &SimSpec, set: &TestSet) -> RowResult {
    let fit = |d: &Dataset, mono_of: &(dyn Fn(usize) -> bool + Sync)| {
        per_pixel(d, d.truth.len(), |i, c| {
            if mono_of(i) {
                fit_mle_irf_unknown(c, &spec.grid, spec.period_ns, &spec.irf).lifetimes
            } else {
                Lifetimes {
                    tau1: f64::NAN,
                    tau2: f64::NAN,
                    fraction: f64::NAN,
                }
            }
        })
        .0
    };
    let truth = &set.data.truth;
    let est = fit(&set.data, &|i| truth[i].mono);
    let f_est: Vec<Vec<Lifetimes>> = set
        .f_sets
        .iter()
        .map(|(_, _, d, _)| fit(d, &|_| true))
        .collect();
    let none = binned(truth, |_, _| None);
    RowResult {
        bi_tau1: none.clone(),
        bi_tau2: none.clone(),
        bi_fraction: none.clone(),
        bi_tau_mean: none,
        score: None,
        ..row_result(
            "Poisson MLE, IRF unknown (mono fit; the IRF's centre, width and diffusion tail fitted within the simulator's IRF ranges)",
            "f64 fit",
            set,
            &est,
            &f_est,
            None,
            None,
        )
    }
}

/// The gate grid every row must read: the first row's (its gates and their
/// width; each row preprocesses with its own model's baseline window).
fn config_grid(models: &[ModelFile], this: &ModelFile) -> crate::data::GateGrid {
    models.first().unwrap_or(this).data.grid
}

/// Measure every row.
pub fn measure(config: &PrecisionConfig) -> Result<Budget> {
    config.validate()?;
    // Every row's model and engine are checked before any work.
    let mut models = Vec::with_capacity(config.rows.len());
    for r in &config.rows {
        let m = ModelFile::load(&r.model).with_context(|| format!("row {:?}", r.label))?;
        let grid = &config_grid(&models, &m);
        if (m.data.grid.gates, m.data.grid.dt_ns) != (grid.gates, grid.dt_ns) {
            bail!(
                "row {:?}: model {} reads {} gates of {} ns, the first row's {} of {}",
                r.label,
                r.model.display(),
                m.data.grid.gates,
                m.data.grid.dt_ns,
                grid.gates,
                grid.dt_ns
            );
        }
        row_engine(r, &m).with_context(|| format!("row {:?}", r.label))?;
        models.push(m);
    }
    let spec = models[0].data.clone();
    eprintln!("precision: simulating the test set");
    let set = test_set(&spec, config)?;
    eprintln!("precision: MLE");
    let mut rows = vec![mle_row(&spec, &set)];
    if config.mle_irf_unknown && spec.irf.measured.is_none() {
        eprintln!("precision: MLE with the IRF unknown");
        rows.push(mle_irf_unknown_row(&spec, &set));
    }
    for (r, m) in config.rows.iter().zip(&models) {
        eprintln!("precision: {}", r.label);
        rows.push(network_row(r, m, &set).with_context(|| format!("row {:?}", r.label))?);
    }
    let mono = set.data.truth.iter().filter(|t| t.mono).count();
    Ok(Budget {
        config: config.clone(),
        spec,
        mono_pixels: mono,
        bi_pixels: set.data.truth.len() - mono,
        rows,
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn rmse_bias(e: &ErrStats, digits: usize) -> String {
    match (e.rmse, e.bias) {
        (Some(r), Some(b)) => format!("{r:.digits$} ({b:+.digits$})"),
        _ => "-".into(),
    }
}

impl Budget {
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let c = &self.config;
        let _ = writeln!(
            s,
            "Test set: {} pixels of the models' simulator spec ({} mono-, {} bi-exponential; seed {}), and {} mono-exponential pixels per F-value point (no background; seeds {}..{}). No row was trained or tuned on these seeds.\n",
            c.pixels,
            self.mono_pixels,
            self.bi_pixels,
            c.seed,
            c.f_pixels,
            c.seed + 1,
            c.seed + (F_TAUS.len() * F_PHOTONS.len()) as u64
        );
        let f_table = |s: &mut String,
                       intro: &str,
                       rows: &[RowResult],
                       get: fn(&RowResult) -> &[Option<f64>]| {
            *s += intro;
            *s += "\n\n| estimator |";
            for t in F_TAUS {
                for n in F_PHOTONS {
                    let _ = write!(s, " {t} ns, {n:.0} |");
                }
            }
            *s += "\n|---|";
            *s += &"---:|".repeat(F_TAUS.len() * F_PHOTONS.len());
            *s += "\n";
            for r in rows {
                let _ = write!(s, "| {} |", r.label);
                for f in get(r) {
                    let _ = write!(s, " {} |", opt(*f, 2));
                }
                *s += "\n";
            }
        };
        f_table(
            &mut s,
            "### F-value of the mean lifetime (sqrt(N) std(tau)/tau; 1 is ideal)",
            &self.rows,
            |r| &r.f,
        );
        f_table(
            &mut s,
            "\nF of tau1 on the same sets (a network that splits a mono-exponential decay into two components is worse here than above):",
            self.network_rows(),
            |r| &r.f_tau1,
        );
        f_table(
            &mut s,
            "\nF of the full-decay channel's lifetime (tau from ch0 by the same ratio rule, `lifetime::extract::full_decay_tau`; an extraction alternative that does not depend on the split into components):",
            self.network_rows(),
            |r| &r.f_full_decay,
        );
        let bins: Vec<String> = PHOTON_BINS
            .iter()
            .map(|(lo, hi)| format!("{lo}-{hi}"))
            .collect();
        let table = |s: &mut String, title: &str, get: &dyn Fn(&RowResult) -> &Binned, digits| {
            let _ = writeln!(
                s,
                "\n### {title}: RMSE (bias) by detected photons\n\n| estimator | all | {} |\n|---|---:|{}",
                bins.join(" | "),
                "---:|".repeat(bins.len())
            );
            for r in &self.rows {
                let b = get(r);
                let _ = write!(s, "| {} | {} |", r.label, rmse_bias(&b.all, digits));
                for e in &b.bins {
                    let _ = write!(s, " {} |", rmse_bias(e, digits));
                }
                s.push('\n');
            }
        };
        table(
            &mut s,
            "Mono-exponential pixels, lifetime (ns)",
            &|r| &r.mono_tau,
            3,
        );
        table(
            &mut s,
            "Bi-exponential pixels, tau1 (ns)",
            &|r| &r.bi_tau1,
            3,
        );
        table(
            &mut s,
            "Bi-exponential pixels, tau2 (ns)",
            &|r| &r.bi_tau2,
            3,
        );
        table(
            &mut s,
            "Bi-exponential pixels, fraction",
            &|r| &r.bi_fraction,
            3,
        );
        table(
            &mut s,
            "Bi-exponential pixels, mean lifetime (ns)",
            &|r| &r.bi_tau_mean,
            3,
        );
        s += "\n### Summary\n\n| estimator | engine | score | ch0 RMSE |\n|---|---|---:|---:|\n";
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.label,
                r.engine,
                opt(r.score, 3),
                opt(r.ch0_rmse, 4)
            );
        }
        s += "\nscore: the recipe's validation figure (`lifetime::metrics::precision_score`): photon-weighted RMS relative error of the mean lifetime over all pixels, plus that of tau1 and tau2 over bi-exponential pixels with tau2 >= 2 tau1 and fraction in [0.1, 0.9]; lower is better.\n";
        s += &self.per_point_markdown();
        s
    }

    /// The rows of the configured estimators (after the MLE rows).
    fn network_rows(&self) -> &[RowResult] {
        &self.rows[self.rows.len() - self.config.rows.len()..]
    }

    /// One table per widened student: each point's score beside the
    /// student's probe with nothing widened, so the largest drop names the
    /// point where precision goes.
    fn per_point_markdown(&self) -> String {
        let mut groups: Vec<(&Path, Option<Format>, u32)> = Vec::new();
        for r in &self.config.rows {
            if let Some(w) = &r.widen {
                let key = (r.model.as_path(), w.ptq_format().ok().flatten(), w.bits);
                if !groups.contains(&key) {
                    groups.push(key);
                }
            }
        }
        let mut s = String::new();
        for (model, ptq, bits) in groups {
            let rows: Vec<(&str, &RowResult)> = self
                .config
                .rows
                .iter()
                .zip(self.network_rows())
                .filter_map(|(spec, res)| {
                    let w = spec.widen.as_ref()?;
                    (spec.model == model && w.ptq_format().ok().flatten() == ptq && w.bits == bits)
                        .then_some((w.point.as_str(), res))
                })
                .collect();
            let base = rows
                .iter()
                .find(|(p, _)| *p == "none")
                .map(|(_, r)| r.score);
            let what = match ptq {
                Some(f) => format!(
                    "{} quantised after training (PTQ) on {}",
                    model.display(),
                    f.name()
                ),
                None => format!("{} as trained (QAT)", model.display()),
            };
            let i1 = F_TAUS.iter().position(|&t| t == 1.0).unwrap_or(0) * F_PHOTONS.len();
            let _ = write!(
                s,
                "\n### Per-point budget: {what}, one point at a time on {bits} bits\n\n| point on {bits} bits | score | change vs none widened | F 1 ns, {} | F 1 ns, {} | ch0 RMSE |\n|---|---:|---:|---:|---:|---:|\n",
                F_PHOTONS[1], F_PHOTONS[2]
            );
            for (point, r) in rows {
                let change = match (base.flatten(), r.score) {
                    (Some(b), Some(v)) => format!("{:+.3}", v - b),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    s,
                    "| {point} | {} | {change} | {} | {} | {} |",
                    opt(r.score, 3),
                    opt(r.f.get(i1 + 1).copied().flatten(), 2),
                    opt(r.f.get(i1 + 2).copied().flatten(), 2),
                    opt(r.ch0_rmse, 4)
                );
            }
        }
        s
    }
}
