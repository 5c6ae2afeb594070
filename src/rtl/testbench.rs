//! Co-simulation harness, shared by the tests (tests/rtl_*.rs) and by
//! `flimgru sim` (through `flimgru::rtl::sim`): drives the engine's input
//! stream (with random valid gaps) and result stream (with random ready
//! back-pressure) in rust-hdl's fast thread-free loop (settle, sample,
//! clock edge) with the beats of [`super::protocol`], collects the results
//! and the debug channels, compares them with the golden model bit for
//! bit, and writes a VCD of a failing case (or of every case when the
//! environment variable `FLIMGRU_VCD` names a directory). In the library,
//! not under tests/, because `flimgru sim` runs it.

use crate::data::GateGrid;
use crate::fixed::contract::COUNT_MAX;
use crate::fixed::{Golden, PixelCodes, QuantModel};
use crate::rtl::cycles::CycleModel;
use crate::rtl::prim::sx;
use crate::rtl::protocol::{Beats, Results};
use crate::rtl::{CircuitSpec, Engine};
use anyhow::{bail, Context, Result};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rust_hdl::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable naming a directory for VCDs of every co-sim run.
pub const VCD_ENV: &str = "FLIMGRU_VCD";

/// How the testbench drives the two streams.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Probability that the driver offers a beat in a cycle in which it has
    /// none pending (an offered beat stays valid until accepted).
    pub valid: f64,
    /// Probability that the result stream's ready is high in a cycle.
    pub ready: f64,
    pub seed: u64,
}

impl Policy {
    /// Cycles after which a run of `groups` groups has hung: twice the
    /// cycle model's time for them (and three more) slowed by the valid
    /// and ready rates, plus room for the pipeline to drain.
    pub fn cycle_limit(&self, model: &CycleModel, groups: usize) -> u64 {
        let slack = |x: f64| x / self.valid.max(0.05) / self.ready.max(0.05);
        (slack(((groups + 3) * model.cycles_per_group) as f64) as u64) * 2
            + 20 * model.slot as u64
            + 10_000
    }

    /// Back-to-back input, always-ready output.
    pub fn eager() -> Policy {
        Policy {
            valid: 1.0,
            ready: 1.0,
            seed: 0,
        }
    }

    /// Random gaps and back-pressure.
    pub fn random(seed: u64) -> Policy {
        Policy {
            valid: 0.6,
            ready: 0.4,
            seed,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Results in input order (index = pixel).
    pub codes: Vec<PixelCodes>,
    /// Pixel indices in the order the result stream delivered them
    /// (padding lanes of the last group included).
    pub order: Vec<u64>,
    /// Decoded head channels per pixel, `[G, 3]`.
    pub channels: Vec<Array2<i64>>,
    /// Cycle at which each result (in delivery order) left the engine.
    pub result_cycles: Vec<u64>,
    /// Cycles simulated.
    pub cycles: u64,
}

/// Run `counts` (`[n, G]`) through `engine`; pads the last group of P
/// pixels with empty histograms. `vcd`: write a waveform there.
pub fn run(
    engine: &mut Engine,
    counts: ArrayView2<u32>,
    policy: &Policy,
    vcd: Option<&Path>,
) -> Result<Outcome> {
    let (n, g) = counts.dim();
    let p = engine.lanes();
    if g != engine.gates() {
        bail!(
            "histograms have {g} gates, the engine was built for {}",
            engine.gates()
        );
    }
    let beats = Beats::new(counts, p);
    let total = beats.results();
    let max_cycles = policy.cycle_limit(&engine.spec().cycles(), beats.groups());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(policy.seed);
    let mut results = Results::new(n, total);
    let mut result_cycles = Vec::with_capacity(total);
    let mut channels = vec![Array2::<i64>::zeros((g, 3)); n];
    let mut beat = 0usize; // the next beat to offer
    let mut offered = false;
    // The waveform goes to a temporary file renamed into place once the
    // run is complete (crate::output); write errors are latched (rust-hdl's
    // probe panics on one) and reported after the run.
    let mut vcd_file = None;
    let mut probe = match vcd {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            let mut f = crate::output::AtomicFile::create(path)?;
            let handle = f
                .file()
                .try_clone()
                .with_context(|| format!("cannot write {}", path.display()))?;
            let (w, latch) = crate::output::LatchedWriter::new(handle);
            vcd_file = Some((f, latch));
            Some(write_vcd_header(std::io::BufWriter::new(w), engine))
        }
        None => None,
    };
    let mut cycle = 0u64;
    while results.delivered() < total {
        if cycle >= max_cycles {
            bail!(
                "the engine delivered {} of {total} results in {cycle} cycles (hung?)",
                results.delivered()
            );
        }
        if !offered && beat < beats.len() {
            offered = policy.valid >= 1.0 || rng.gen_bool(policy.valid);
        }
        engine.in_valid.next = offered;
        if offered {
            for (l, c) in beats.beat(beat).enumerate() {
                engine.in_count[l].next = (c as u64).into();
            }
        }
        engine.out_ready.next = policy.ready >= 1.0 || rng.gen_bool(policy.ready);
        engine.clock.next = Clock { clk: false };
        if !simulate(engine, 1000) {
            bail!("the engine's logic did not settle at cycle {cycle}");
        }
        if let Some(pr) = probe.take() {
            let mut pr = pr;
            pr.timestamp(cycle * 10).ok();
            probe = Some(write_vcd_change(pr, engine));
        }
        // Sample the handshakes before the rising edge.
        if offered && engine.in_ready.val() {
            beat += 1;
            offered = false;
        }
        if engine.out_valid.val() && engine.out_ready.val() {
            let (pixel, codes) = engine.result_beat();
            results.push(pixel, codes)?;
            result_cycles.push(cycle);
        }
        if engine.dbg_valid.val() {
            let grp = engine.dbg_group.val().to_u64() as usize;
            let t = engine.dbg_step.val().index();
            for l in 0..p {
                let i = grp * p + l;
                if i < n && t < g {
                    for c in 0..3 {
                        channels[i][[t, c]] = sx(engine.dbg_channel[3 * l + c].val());
                    }
                }
            }
        }
        engine.clock.next = Clock { clk: true };
        if !simulate(engine, 1000) {
            bail!("the engine's logic did not settle at cycle {cycle}");
        }
        if let Some(pr) = probe.take() {
            let mut pr = pr;
            pr.timestamp(cycle * 10 + 5).ok();
            probe = Some(write_vcd_change(pr, engine));
        }
        cycle += 1;
    }
    drop(probe);
    if let Some((f, latch)) = vcd_file {
        if let Some(e) = latch.take() {
            return Err(e).with_context(|| format!("cannot write {}", f.path().display()));
        }
        f.commit()?;
    }
    let (codes, order) = results.finish();
    Ok(Outcome {
        codes,
        order,
        channels,
        result_cycles,
        cycles: cycle,
    })
}

/// Where a co-sim run's VCD goes: `$FLIMGRU_VCD/<name>.vcd`, or the
/// system temp directory when `failing` and the variable is unset.
pub fn vcd_path(name: &str, failing: bool) -> Option<PathBuf> {
    match std::env::var_os(VCD_ENV) {
        Some(dir) => Some(PathBuf::from(dir).join(format!("{name}.vcd"))),
        None if failing => Some(
            std::env::temp_dir()
                .join("flimgru-vcd")
                .join(format!("{name}.vcd")),
        ),
        None => None,
    }
}

/// A short name for a case (the build plus a hash of the inputs):
/// `rtl-h4-g11-w8-p2-m4-<hash>`.
pub fn case_name(spec: &CircuitSpec, counts: ArrayView2<u32>) -> String {
    use std::hash::{Hash, Hasher};
    let mut hs = std::collections::hash_map::DefaultHasher::new();
    counts.iter().for_each(|c| c.hash(&mut hs));
    spec.model().encoder_recurrent.codes.hash(&mut hs);
    format!(
        "rtl-h{}-g{}-{}-{:016x}",
        spec.hidden(),
        counts.ncols(),
        spec.name().replace('_', "-"),
        hs.finish()
    )
}

/// Build the engine of `spec`, run `counts` under `policy`, and compare
/// results, delivery order and debug channels with the golden model. On a
/// mismatch the case is re-run with a VCD and the error names it.
pub fn check(spec: &CircuitSpec, counts: ArrayView2<u32>, policy: &Policy) -> Result<Outcome> {
    check_with(spec, spec.model(), counts, policy)
}

/// [`check`] with the reference results from `reference` (the spec's own
/// model, except in tests of the harness itself).
pub fn check_with(
    spec: &CircuitSpec,
    reference: &QuantModel,
    counts: ArrayView2<u32>,
    policy: &Policy,
) -> Result<Outcome> {
    let golden = Golden::new(reference, spec.grid())?;
    let (want, want_ch) = golden.run_with_channels(counts)?;
    let name = case_name(spec, counts);
    let run_once = |vcd: Option<&Path>| -> Result<Outcome> {
        let mut engine = spec.engine()?;
        run(&mut engine, counts, policy, vcd)
    };
    let always = vcd_path(&name, false);
    let outcome = run_once(always.as_deref());
    let problem = match &outcome {
        Err(e) => Some(format!("{e:#}")),
        Ok(o) => compare(o, &want, &want_ch),
    };
    match problem {
        None => outcome,
        Some(why) => {
            let path = vcd_path(&name, true).expect("failing cases always get a VCD");
            let wrote = if always.is_some() {
                Ok(())
            } else {
                run_once(Some(&path)).map(|_| ())
            };
            let mut msg = format!(
                "co-simulation mismatch ({name}, {:?}, {:?}): {why}",
                spec.layout(),
                spec.dsp()
            );
            match wrote {
                Ok(()) => msg.push_str(&format!("; waveform: {}", path.display())),
                Err(e) => msg.push_str(&format!("; (re-run for the waveform failed: {e:#})")),
            }
            let mut err = std::io::stderr();
            writeln!(err, "{msg}").ok();
            bail!(msg)
        }
    }
}

/// The first difference between an outcome and the golden results.
pub fn compare(o: &Outcome, want: &[PixelCodes], want_ch: &ndarray::Array3<i64>) -> Option<String> {
    let n = want.len();
    let expected: Vec<u64> = (0..o.order.len() as u64).collect();
    if o.order != expected {
        return Some(format!("results delivered out of order: {:?}", o.order));
    }
    for (i, want_i) in want.iter().enumerate().take(n) {
        let ch = want_ch.index_axis(ndarray::Axis(0), i);
        if o.channels[i] != ch {
            let (t, c) = (0..ch.nrows())
                .flat_map(|t| (0..3).map(move |c| (t, c)))
                .find(|&(t, c)| o.channels[i][[t, c]] != ch[[t, c]])
                .unwrap_or((0, 0));
            return Some(format!(
                "pixel {i}: head channel {c} at decoder step {t} is {} , golden {}",
                o.channels[i][[t, c]],
                ch[[t, c]]
            ));
        }
        if o.codes[i] != *want_i {
            return Some(format!(
                "pixel {i}: circuit {:?}, golden {:?}",
                o.codes[i], want_i
            ));
        }
    }
    None
}

/// The build the tests use most: `model` on `grid` with P = `lanes`,
/// M = `macs` and inferred multipliers.
pub fn spec(model: &QuantModel, grid: &GateGrid, lanes: usize, macs: usize) -> Result<CircuitSpec> {
    let layout = crate::rtl::Layout { lanes, macs };
    CircuitSpec::new(model.clone(), *grid, layout, crate::rtl::Dsp::Inferred)
}

/// A random model in the contract: codes uniform in -QMAX..=QMAX scaled
/// down by a random shift (so states do not all saturate), random
/// exponents 0..=3.
pub fn random_model(bits: u32, hidden: usize, seed: u64) -> QuantModel {
    random_model_in(
        crate::fixed::Format::new(bits).expect("W in 4..=16"),
        hidden,
        seed,
    )
}

/// [`random_model`] in any format, mixed precision (Ww < Wa) included.
pub fn random_model_in(fmt: crate::fixed::Format, hidden: usize, seed: u64) -> QuantModel {
    QuantModel::random_in(
        hidden,
        fmt,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
    )
    .expect("random models are valid in every format")
}

/// Histograms exercising the corners: all-zero, single photon, one-gate
/// spike, flat, saturated (65535 and above), plus random decays.
pub fn corner_histograms(gates: usize, extra_random: usize, seed: u64) -> Array2<u32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows: Vec<Vec<u32>> = vec![
        vec![0; gates],
        {
            let mut v = vec![0; gates];
            v[rng.gen_range(0..gates)] = 1;
            v
        },
        {
            let mut v = vec![3; gates];
            v[rng.gen_range(0..gates)] = 5000;
            v
        },
        vec![17; gates],
        vec![COUNT_MAX; gates],
        {
            let mut v = vec![COUNT_MAX; gates];
            v[gates - 1] = 0;
            v[gates / 2] = u32::MAX;
            v
        },
        {
            let mut v = vec![0; gates];
            v[gates - 1] = COUNT_MAX;
            v
        },
    ];
    for _ in 0..extra_random {
        let amp = 10f64.powf(rng.gen_range(0.0..4.8));
        let tau = rng.gen_range(0.5..6.0);
        let bg = rng.gen_range(0..20) as f64;
        let peak = rng.gen_range(10..gates.clamp(11, 20)) as f64;
        rows.push(
            (0..gates)
                .map(|k| {
                    let t = k as f64 - peak;
                    let s = if t >= 0.0 {
                        amp * (-t / tau).exp()
                    } else {
                        0.0
                    };
                    let noise: f64 = rng.gen_range(0.0..1.0);
                    (s + bg + noise * (s + bg).sqrt()).round().min(70_000.0) as u32
                })
                .collect(),
        );
    }
    let n = rows.len();
    Array2::from_shape_vec((n, gates), rows.concat()).expect("rows of equal length")
}
