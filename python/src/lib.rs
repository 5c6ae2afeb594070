//! The Python module `flimgru`: thin bindings of the flimgru library.
//! Arrays cross as numpy arrays; every computation is the library's
//! (`flimgru::app::lifetime_image` is what `flimgru map` runs). Errors
//! become `ValueError` (bad input) or `OSError` (a file that cannot be
//! read), carrying the library's message. Inputs are checked here or by
//! the library before use, so no Rust panic reaches Python.

use flimgru::app::{lifetime_image, ImageCounts};
use flimgru::data::formats::{
    read_array_counts, read_recording_with, valid_bin_range, ReadOptions,
};
use flimgru::data::image::simulate_image;
use flimgru::data::io::histograms_from_values;
use flimgru::data::simulate::{check_pixel_budget, simulate as simulate_pixels, SimSpec};
use flimgru::data::{Histograms, Truth};
use flimgru::engine::{EngineKind, Runner};
use flimgru::lifetime::range::RangeCheck;
use flimgru::model_file::ModelFile;
use ndarray::{Array, IxDyn};
use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyTypeError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// A library error as a Python exception: `OSError` (with its errno, so
/// e.g. a missing file is a `FileNotFoundError`) when an I/O error caused
/// it, `ValueError` otherwise; the message is the whole chain, as the CLI
/// prints it.
fn to_py(e: anyhow::Error) -> PyErr {
    let msg = format!("{e:#}");
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .map(|io| io.raw_os_error())
    {
        Some(Some(code)) => PyOSError::new_err((code, msg)),
        Some(None) => PyOSError::new_err(msg),
        None => PyValueError::new_err(msg),
    }
}

fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// A shape as Python prints it: `(64, 64, 135)`, `(5,)`.
fn shape_str(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A model file with its training-range check, made on first use (it
/// simulates the model's training data) and kept.
struct Loaded {
    file: ModelFile,
    range: OnceLock<RangeCheck>,
}

impl Loaded {
    fn new(file: ModelFile) -> Arc<Loaded> {
        Arc::new(Loaded {
            file,
            range: OnceLock::new(),
        })
    }

    fn range(&self) -> anyhow::Result<&RangeCheck> {
        if let Some(r) = self.range.get() {
            return Ok(r);
        }
        let r = RangeCheck::for_spec(&self.file.data)?;
        Ok(self.range.get_or_init(|| r))
    }
}

/// The shipped model, parsed once.
fn shipped() -> PyResult<Arc<Loaded>> {
    static SHIPPED: OnceLock<Arc<Loaded>> = OnceLock::new();
    if let Some(m) = SHIPPED.get() {
        return Ok(m.clone());
    }
    let m = Loaded::new(ModelFile::shipped().map_err(to_py)?);
    Ok(SHIPPED.get_or_init(|| m).clone())
}

/// A JSON value as Python objects (dicts, lists, numbers, str, None).
fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| value_error(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A flimgru model file: the network, the data it was trained on and, for
/// a quantised student, the integer weights the fixed-point engine (the
/// FPGA's arithmetic) runs.
#[pyclass(frozen, module = "flimgru")]
struct Model {
    model: Arc<Loaded>,
    /// The path it was loaded from, or "shipped".
    source: String,
}

#[pymethods]
impl Model {
    /// Load a model file (JSON, as written by `flimgru train`, `compress`
    /// or `recipe`); without a path, the shipped W8A12 student
    /// (models/student-w8a12.json, built into the package).
    ///
    /// Raises OSError if the file cannot be read, ValueError if it is not
    /// a valid flimgru model.
    #[staticmethod]
    #[pyo3(signature = (path=None))]
    fn load(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Model> {
        match path {
            None => Ok(Model {
                model: shipped()?,
                source: "shipped".into(),
            }),
            Some(p) => {
                let file = py.detach(|| ModelFile::load(&p)).map_err(to_py)?;
                Ok(Model {
                    model: Loaded::new(file),
                    source: p.display().to_string(),
                })
            }
        }
    }

    /// What the model is: a dict with name, source (path or "shipped"),
    /// command (that made it), network, parameters, gates and
    /// gate_width_ns (the time grid it reads), quantized, bits and act_bits
    /// (the weights' and the activations' widths; None for a float model),
    /// default_engine ("fixed" for a quantised model, else
    /// "float"), data (the simulated training data's spec), data_seed,
    /// data_pixels and metrics (its evaluation, or None).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.model.file;
        let d = PyDict::new(py);
        d.set_item("name", &m.name)?;
        d.set_item("source", &self.source)?;
        d.set_item("command", &m.command)?;
        d.set_item("network", m.weights.config.describe())?;
        d.set_item("parameters", m.weights.parameter_count())?;
        d.set_item("gates", m.data.grid.gates)?;
        d.set_item("gate_width_ns", m.data.grid.dt_ns)?;
        d.set_item("quantized", m.is_student())?;
        d.set_item("bits", m.student().ok().map(|q| q.bits))?;
        d.set_item(
            "act_bits",
            m.student().ok().map(|q| q.act_bits.unwrap_or(q.bits)),
        )?;
        d.set_item(
            "default_engine",
            if m.is_student() { "fixed" } else { "float" },
        )?;
        let data = serde_json::to_value(&m.data).map_err(|e| value_error(e.to_string()))?;
        d.set_item("data", json_to_py(py, &data)?)?;
        d.set_item("data_seed", m.data_seed)?;
        d.set_item("data_pixels", m.data_pixels)?;
        match &m.metrics {
            Some(v) => d.set_item("metrics", json_to_py(py, v)?)?,
            None => d.set_item("metrics", py.None())?,
        }
        Ok(d)
    }

    /// The model's name.
    #[getter]
    fn name(&self) -> &str {
        &self.model.file.name
    }

    /// Gates per pixel the model reads.
    #[getter]
    fn gates(&self) -> usize {
        self.model.file.gates()
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}, {} gates of {} ns, {}, from {})",
            self.model.file.name,
            self.model.file.data.grid.gates,
            self.model.file.data.grid.dt_ns,
            match self.model.file.student() {
                Ok(q) => format!("{} quantised", q.format().name()),
                Err(_) => "float".to_string(),
            },
            self.source
        )
    }
}

/// A whole number >= `min` given as a Python int, or a ValueError naming
/// `what`.
fn at_least(what: &str, v: i64, min: i64) -> PyResult<u64> {
    if v < min {
        return Err(value_error(format!("{what} {v} must be at least {min}")));
    }
    Ok(v as u64)
}

/// Read a FLIM recording: PicoQuant .ptu (T3 image) or .phu, Becker &
/// Hickl .sdt, or .npy/.csv histograms.
///
/// Returns ``(counts, instrument)``: ``counts`` is a uint32 array
/// ``[height, width, channels]`` of photon counts per time channel (bin),
/// ``instrument`` a dict with ``bin_width_ns`` (None for .npy/.csv read
/// without ``bin_width``: their bins are taken to be the model's gates),
/// ``period_ns`` (laser period, None if the file does not record it),
/// ``channels`` (time channels per pixel), ``valid_bins`` (the
/// ``(start, stop)`` bins holding photons), ``source`` and ``notes``
/// (what the reader did, e.g. which detector channels were summed).
/// Pass ``instrument`` to :func:`infer` to match the bins to the model's
/// gate grid as ``flimgru map`` does.
///
/// ``bin_width``: bin width (ns) of .npy/.csv histograms whose bins are
/// not the model's gates. ``dtime_binning``: PTU, sum this many
/// micro-time channels per bin. ``channel``: PTU, only this detector
/// channel (default: all when their decays are aligned, else the one with
/// the most photons). ``block``: SDT, read this data block (0-based).
/// A [n, G] .npy becomes one row of n pixels; float values are rounded to
/// whole counts (said in the notes).
///
/// Raises OSError if the file cannot be read, ValueError if its content
/// or an option is invalid.
#[pyfunction]
#[pyo3(signature = (path, *, bin_width=None, dtime_binning=1, channel=None, block=None))]
fn read<'py>(
    py: Python<'py>,
    path: PathBuf,
    bin_width: Option<f64>,
    dtime_binning: i64,
    channel: Option<i64>,
    block: Option<i64>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let array_file = matches!(ext.as_str(), "npy" | "csv" | "txt");
    if bin_width.is_some() && !array_file {
        return Err(value_error(format!(
            "{}: bin_width is for .npy/.csv histograms; a .{ext} file records its own",
            path.display()
        )));
    }
    let opts = ReadOptions {
        bin_width_ns: bin_width,
        dtime_binning: at_least("dtime_binning", dtime_binning, 1)? as usize,
        channel: channel
            .map(|c| at_least("channel", c, 0).map(|c| c.min(u32::MAX as u64) as u32))
            .transpose()?,
        block: block
            .map(|b| at_least("block", b, 0).map(|b| b as usize))
            .transpose()?,
    };
    let rec = py
        .detach(|| -> anyhow::Result<_> {
            if array_file && bin_width.is_none() {
                let (counts, notes) = read_array_counts(&path)?;
                let valid = valid_bin_range(counts.view());
                let source = format!(".{ext} histograms");
                Ok((counts, None, None, valid, source, notes))
            } else {
                let r = read_recording_with(&path, &opts)?;
                Ok((
                    r.counts,
                    Some(r.bin_width_ns),
                    r.period_ns,
                    r.valid_bins,
                    r.source,
                    r.notes,
                ))
            }
        })
        .map_err(to_py)?;
    let (counts, bin_width_ns, period_ns, valid, source, notes) = rec;
    let inst = PyDict::new(py);
    inst.set_item("bin_width_ns", bin_width_ns)?;
    inst.set_item("period_ns", period_ns)?;
    inst.set_item("channels", counts.shape()[2])?;
    inst.set_item("valid_bins", (valid.start, valid.end))?;
    inst.set_item("source", source)?;
    inst.set_item("notes", notes)?;
    Ok((counts.into_pyarray(py).into_any(), inst))
}

/// `counts` (a numpy array `[h, w, G]` or `[n, G]`) as checked f32
/// histograms, copied out while the GIL is held. Refuses by name what
/// cannot be counts: other types, dimensions and dtypes, non-native byte
/// order, non-contiguous or unaligned memory; NaN, infinite and negative
/// values (the library's check).
fn histograms_of(py: Python<'_>, counts: &Bound<'_, PyAny>) -> PyResult<(Histograms, Vec<usize>)> {
    let a = counts.cast::<PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!(
            "counts must be a numpy.ndarray, not {}",
            counts
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "this type".into())
        ))
    })?;
    let shape = a.shape().to_vec();
    if !matches!(shape.len(), 2 | 3) {
        return Err(value_error(format!(
            "counts has shape {}: expected [height, width, gates] or [pixels, gates]",
            shape_str(&shape)
        )));
    }
    let dtype = a.dtype();
    if dtype.is_native_byteorder() == Some(false) {
        let order = if dtype.byteorder() == b'>' {
            "big-endian"
        } else {
            "little-endian"
        };
        return Err(value_error(format!(
            "counts has {order} dtype {dtype}, not this machine's byte order; convert it with counts.astype(counts.dtype.newbyteorder(\"=\"))"
        )));
    }
    if !a.is_c_contiguous() {
        return Err(value_error(format!(
            "counts (shape {}) is not C-contiguous (a transposed or strided view?); pass numpy.ascontiguousarray(counts)",
            shape_str(&shape)
        )));
    }
    if !a.is_aligned() {
        return Err(value_error(
            "counts is not aligned in memory; pass counts.copy()",
        ));
    }
    macro_rules! convert {
        ($($t:ty),*) => {
            $(
                if dtype.is_equiv_to(&numpy::dtype::<$t>(py)) {
                    let typed = a.cast::<PyArrayDyn<$t>>()?;
                    let view = typed
                        .try_readonly()
                        .map_err(|e| value_error(format!("counts: {e}")))?;
                    let values = view
                        .as_slice()
                        .map_err(|e| value_error(format!("counts: {e}")))?;
                    let hist = histograms_from_values(
                        "counts",
                        &shape,
                        values.iter().map(|&v| v as f64),
                    )
                    .map_err(to_py)?;
                    return Ok((hist, shape));
                }
            )*
        };
    }
    convert!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);
    Err(value_error(format!(
        "counts has dtype {dtype}: expected unsigned or signed integers, float32 or float64"
    )))
}

/// `(bin_width_ns, period_ns)` of an instrument dict (None: the bins are
/// the model's gates).
fn time_axis(instrument: Option<&Bound<'_, PyAny>>) -> PyResult<(Option<f64>, Option<f64>)> {
    let Some(inst) = instrument.filter(|i| !i.is_none()) else {
        return Ok((None, None));
    };
    let d = inst.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("instrument must be a dict (as flimgru.read returns it) or None")
    })?;
    let number = |key: &str| -> PyResult<Option<f64>> {
        let v = match d.get_item(key)? {
            Some(v) if !v.is_none() => v,
            _ => return Ok(None),
        };
        match v.extract::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
            _ => Err(value_error(format!(
                "instrument[{key:?}] = {}: expected a positive finite number of ns or None",
                v.repr().map(|r| r.to_string()).unwrap_or_default()
            ))),
        }
    };
    Ok((number("bin_width_ns")?, number("period_ns")?))
}

/// Per-pixel lifetimes of an image (or of a stack of histograms) by the
/// fixed-point engine (what the FPGA computes, bit for bit) or the float
/// network; the computation of ``flimgru map``.
///
/// ``counts``: photon counts ``[height, width, gates]`` (or
/// ``[pixels, gates]``), a C-contiguous native-byte-order array of
/// unsigned or signed integers, float32 or float64; finite and
/// non-negative, and whole numbers for the fixed engine. ``model``: a
/// :class:`Model` (default: the shipped W8A12 student). ``engine``:
/// ``"fixed"`` or ``"float"`` (default: fixed for a quantised model, float
/// otherwise). ``instrument``: the dict :func:`read` returns; with a
/// ``bin_width_ns`` the bins are matched (rebinned and aligned) to the
/// model's gate grid, without one they must be the model's gates.
/// ``min_photons``: pixels with fewer photons are masked.
///
/// Returns a dict of arrays of shape ``[height, width]`` (or ``[pixels]``):
/// ``tau1``, ``tau2`` (ns), ``fraction`` (amplitude fraction of tau1),
/// ``tau_mean`` (fraction * tau1 + (1 - fraction) * tau2), all float64
/// and NaN where masked; ``photons`` (float64, photons in the model's
/// window), ``mask`` (bool, True where masked: fewer than
/// ``min_photons`` photons, no lifetime) and ``out_of_range`` (bool, True
/// where an unmasked pixel's decay is outside what the model was trained
/// on: its lifetimes are not to be trusted; a UserWarning says how many,
/// as ``flimgru map`` does). The GIL is released while the engine runs.
///
/// Raises ValueError naming the problem for bad counts or options.
#[pyfunction]
#[pyo3(signature = (counts, model=None, engine=None, *, instrument=None, min_photons=50.0))]
fn infer<'py>(
    py: Python<'py>,
    counts: &Bound<'py, PyAny>,
    model: Option<&Bound<'py, Model>>,
    engine: Option<&str>,
    instrument: Option<&Bound<'py, PyAny>>,
    min_photons: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = match engine {
        None => None,
        Some("fixed") => Some(EngineKind::Fixed),
        Some("float") => Some(EngineKind::Float),
        Some(other) => {
            return Err(value_error(format!(
                "engine {other:?}: expected \"fixed\" or \"float\""
            )))
        }
    };
    let (bin_width_ns, period_ns) = time_axis(instrument)?;
    let model = match model {
        Some(m) => m.get().model.clone(),
        None => shipped()?,
    };
    let (hist, shape) = histograms_of(py, counts)?;
    // Output arrays have the input's shape less the gate axis.
    let out_shape = shape[..shape.len() - 1].to_vec();
    let n = hist.counts.nrows();
    let image = ImageCounts {
        counts: hist.counts,
        shape: hist.shape.unwrap_or((n, 1)),
        bin_width_ns,
        period_ns,
    };
    let (img, tau_max_ns) = py
        .detach(|| -> anyhow::Result<_> {
            let engine = Runner::new(&model.file, kind)?;
            let trained = model.range()?;
            let (img, _report) =
                lifetime_image(&model.file, &engine, trained, &image, min_photons, false)
                    .map_err(|e| e.context("counts"))?;
            Ok((img, trained.tau_max_ns))
        })
        .map_err(to_py)?;
    if img.flagged() > 0 {
        // As `flimgru map` warns.
        let msg = format!(
            "{} of {} pixels are out of range: their decays are longer (or their background higher) than any the model {} was trained on (lifetimes up to {tau_max_ns} ns); they are flagged in result[\"out_of_range\"]",
            img.flagged(),
            img.unmasked(),
            model.file.name
        );
        let msg = std::ffi::CString::new(msg.replace('\0', " "))
            .map_err(|e| value_error(e.to_string()))?;
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
    }
    // The recording-level warnings `flimgru map` prints (a wider IRF, a
    // shorter window than the model's).
    for w in &img.warnings {
        let msg =
            std::ffi::CString::new(w.replace('\0', " ")).map_err(|e| value_error(e.to_string()))?;
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
    }
    let column = |f: &dyn Fn(&flimgru::lifetime::Lifetimes) -> f64| -> Vec<f64> {
        img.lifetimes
            .iter()
            .map(|l| l.as_ref().map_or(f64::NAN, f))
            .collect()
    };
    let out = PyDict::new(py);
    let put = |name: &str, v: Vec<f64>| -> PyResult<()> {
        let a = Array::from_shape_vec(IxDyn(&out_shape), v)
            .map_err(|e| value_error(format!("{name}: {e}")))?;
        out.set_item(name, a.into_pyarray(py))
    };
    put("tau1", column(&|l| l.tau1))?;
    put("tau2", column(&|l| l.tau2))?;
    put("fraction", column(&|l| l.fraction))?;
    put("tau_mean", column(&|l| l.tau_mean()))?;
    put("photons", img.photons.clone())?;
    let mask: Vec<bool> = img.lifetimes.iter().map(|l| l.is_none()).collect();
    let mask = Array::from_shape_vec(IxDyn(&out_shape), mask)
        .map_err(|e| value_error(format!("mask: {e}")))?;
    out.set_item("mask", mask.into_pyarray(py))?;
    let flags = Array::from_shape_vec(IxDyn(&out_shape), img.out_of_range)
        .map_err(|e| value_error(format!("out_of_range: {e}")))?;
    out.set_item("out_of_range", flags.into_pyarray(py))?;
    Ok(out)
}

/// The simulator's spec: the defaults (what `flimgru simulate` uses) with
/// the given top-level fields replaced.
fn sim_spec(py: Python<'_>, spec: Option<&Bound<'_, PyDict>>) -> PyResult<SimSpec> {
    let mut value =
        serde_json::to_value(SimSpec::default()).map_err(|e| value_error(e.to_string()))?;
    if let Some(d) = spec {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (d,))
            .map_err(|e| value_error(format!("spec: {e}")))?
            .extract()?;
        let given: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| value_error(format!("spec: {e}")))?;
        let fields = value
            .as_object_mut()
            .ok_or_else(|| value_error("the default spec is not a JSON object"))?;
        for (k, v) in given.as_object().into_iter().flatten() {
            if !fields.contains_key(k) {
                let known: Vec<&str> = fields.keys().map(|s| s.as_str()).collect();
                return Err(value_error(format!(
                    "spec: unknown field {k:?}; the fields are {}",
                    known.join(", ")
                )));
            }
            fields.insert(k.clone(), v.clone());
        }
    }
    let spec: SimSpec =
        serde_json::from_value(value).map_err(|e| value_error(format!("spec: {e}")))?;
    spec.validate()
        .map_err(|e| value_error(format!("spec: {e:#}")))?;
    Ok(spec)
}

/// Per-pixel truth as a dict of arrays of `shape`.
fn truth_dict<'py>(
    py: Python<'py>,
    truth: &[Truth],
    shape: &[usize],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    fn arr<'py, T: numpy::Element>(
        py: Python<'py>,
        shape: &[usize],
        v: Vec<T>,
    ) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
        Ok(Array::from_shape_vec(IxDyn(shape), v)
            .map_err(|e| value_error(e.to_string()))?
            .into_pyarray(py))
    }
    let f = |get: fn(&Truth) -> f64| truth.iter().map(get).collect::<Vec<f64>>();
    d.set_item("tau1", arr(py, shape, f(|t| t.tau1))?)?;
    d.set_item("tau2", arr(py, shape, f(|t| t.tau2))?)?;
    d.set_item("fraction", arr(py, shape, f(|t| t.fraction))?)?;
    d.set_item(
        "mono",
        arr(py, shape, truth.iter().map(|t| t.mono).collect())?,
    )?;
    d.set_item(
        "photons",
        arr(py, shape, truth.iter().map(|t| t.photons).collect())?,
    )?;
    d.set_item(
        "expected_photons",
        arr(py, shape, f(|t| t.expected_photons))?,
    )?;
    d.set_item("background", arr(py, shape, f(|t| t.background))?)?;
    d.set_item("irf_centre", arr(py, shape, f(|t| t.irf_centre))?)?;
    d.set_item("irf_fwhm", arr(py, shape, f(|t| t.irf_fwhm))?)?;
    d.set_item("irf_tail", arr(py, shape, f(|t| t.irf_tail))?)?;
    Ok(d)
}

/// Simulated photon-count histograms for testing, from the simulator of
/// ``flimgru simulate`` (same seed, same counts).
///
/// ``shape``: a pixel count ``n`` (pixels drawn independently from the
/// spec's lifetime, fraction, photon and IRF ranges; counts
/// ``[n, gates]``) or ``(height, width)`` (an image of cells, as
/// ``flimgru simulate --image``; counts ``[height, width, gates]``).
/// ``seed``: the random seed. ``spec``: fields of the simulator's spec to
/// change (e.g. ``{"photons": [200, 2000]}``; the defaults are the
/// shipped model's 135 gates of 0.09 ns).
///
/// Returns ``(counts, truth)``: uint32 counts on the spec's gate grid and
/// a dict of per-pixel truth arrays of shape ``shape``: ``tau1``,
/// ``tau2``, ``fraction``, ``mono``, ``photons``, ``expected_photons``,
/// ``background``, ``irf_centre``, ``irf_fwhm``, ``irf_tail``, and for an
/// image ``region`` (0 background, 1 cytoplasm, 2 nucleus).
#[pyfunction]
#[pyo3(signature = (shape, seed=0, *, spec=None))]
fn simulate<'py>(
    py: Python<'py>,
    shape: &Bound<'py, PyAny>,
    seed: u64,
    spec: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
    let spec = sim_spec(py, spec)?;
    let gates = spec.grid.gates;
    if let Ok(n) = shape.extract::<usize>() {
        if n == 0 {
            return Err(value_error("shape 0: simulate at least 1 pixel"));
        }
        check_pixel_budget("shape", n, gates, 4).map_err(to_py)?;
        let data = py
            .detach(|| simulate_pixels(&spec, n, seed))
            .map_err(to_py)?;
        let truth = truth_dict(py, &data.truth, &[n])?;
        return Ok((data.counts.into_pyarray(py).into_any(), truth));
    }
    if let Ok((h, w)) = shape.extract::<(usize, usize)>() {
        check_pixel_budget("shape", h.saturating_mul(w), gates, 4).map_err(to_py)?;
        let sample = py
            .detach(|| simulate_image(&spec, h, w, seed))
            .map_err(to_py)?;
        let truth = truth_dict(py, &sample.truth, &[h, w])?;
        truth.set_item("region", sample.region.into_pyarray(py))?;
        return Ok((sample.counts.into_pyarray(py).into_any(), truth));
    }
    Err(value_error(format!(
        "shape {}: expected a pixel count n >= 1 or (height, width)",
        shape.repr().map(|r| r.to_string()).unwrap_or_default()
    )))
}

/// flimgru: fluorescence lifetimes per pixel with a GRU network; the
/// fixed-point engine is bit-exact with the FPGA. ``read`` a recording,
/// ``infer`` lifetimes, ``simulate`` test data, ``Model`` for model files.
#[pymodule(name = "flimgru")]
fn flimgru_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(infer, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_class::<Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
