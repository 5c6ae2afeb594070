"""The Python API: models, results, simulation, the GIL, stubs and docs."""

import ast
import inspect
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import flimgru
from conftest import STUDENT, TEACHER


@pytest.fixture(scope="module")
def image():
    """A 32 x 32 simulated image (cells on a dim background) and its truth."""
    return flimgru.simulate((32, 32), seed=4)


def test_shipped_model_is_the_repositorys_student():
    shipped = flimgru.Model.load()
    from_file = flimgru.Model.load(STUDENT)
    info = shipped.info()
    assert info["source"] == "shipped" and from_file.info()["source"] == str(STUDENT)
    assert info["name"] == "student-w8a12" == shipped.name
    assert info["gates"] == 135 == shipped.gates and info["gate_width_ns"] == 0.09
    assert info["quantized"] is True and (info["bits"], info["act_bits"]) == (8, 12)
    assert info["default_engine"] == "fixed"
    assert info["parameters"] > 0 and "GRU" in info["network"]
    assert info["data"]["grid"] == {"gates": 135, "dt_ns": 0.09, "baseline_gates": 0}
    drop = lambda d: {k: v for k, v in d.items() if k != "source"}
    assert drop(info) == drop(from_file.info())
    assert "student-w8a12" in repr(shipped) and "W8A12 quantised" in repr(shipped)


def test_default_model_and_engine_are_the_shipped_student_fixed(image):
    counts, _ = image
    default = flimgru.infer(counts)
    explicit = flimgru.infer(counts, flimgru.Model.load(STUDENT), "fixed")
    for k in default:
        assert np.array_equal(default[k], explicit[k], equal_nan=True), k
    float_ = flimgru.infer(counts, engine="float")
    assert not np.array_equal(default["tau1"], float_["tau1"], equal_nan=True)


def test_float_model_runs_float_and_refuses_fixed(image):
    counts, _ = image
    teacher = flimgru.Model.load(TEACHER)
    assert teacher.info()["quantized"] is False
    assert teacher.info()["bits"] is None and teacher.info()["act_bits"] is None
    assert teacher.info()["default_engine"] == "float"
    by_default = flimgru.infer(counts, teacher)
    explicit = flimgru.infer(counts, teacher, "float")
    assert np.array_equal(by_default["tau_mean"], explicit["tau_mean"], equal_nan=True)
    with pytest.raises(ValueError, match="no quantised weights"):
        flimgru.infer(counts, teacher, "fixed")


def test_result_arrays_shapes_mask_and_tau_mean(image):
    counts, truth = image
    r = flimgru.infer(counts, min_photons=80)
    assert set(r) == {"tau1", "tau2", "fraction", "tau_mean", "photons", "mask", "out_of_range"}
    for k, v in r.items():
        assert v.shape == (32, 32), k
        assert v.dtype == (np.bool_ if k in ("mask", "out_of_range") else np.float64), k
    # photons are the histograms' sums; the mask is exactly photons < 80.
    np.testing.assert_array_equal(r["photons"], counts.sum(axis=2, dtype=np.float64))
    np.testing.assert_array_equal(r["mask"], r["photons"] < 80)
    assert 0 < r["mask"].sum() < r["mask"].size
    for k in ("tau1", "tau2", "fraction", "tau_mean"):
        np.testing.assert_array_equal(np.isnan(r[k]), r["mask"])
    f, t1, t2 = r["fraction"], r["tau1"], r["tau2"]
    assert np.array_equal(r["tau_mean"], f * t1 + (1 - f) * t2, equal_nan=True)
    # Lifetimes where the truth says they are: the pixels are in order.
    keep = ~r["mask"]
    true_mean = truth["fraction"] * truth["tau1"] + (1 - truth["fraction"]) * truth["tau2"]
    err = np.abs(r["tau_mean"][keep] - true_mean[keep])
    assert np.median(err) < 0.25, f"median |error| {np.median(err):.3f} ns"
    assert np.corrcoef(r["tau_mean"][keep], true_mean[keep])[0, 1] > 0.8


def test_decays_beyond_the_training_range_are_flagged_with_a_warning():
    # The shipped student saw lifetimes up to 3 ns; 15-20 ns decays are
    # outside what it can answer.
    long, _ = flimgru.simulate(200, seed=6, spec={"tau_ns": [15.0, 20.0], "period_ns": 50.0})
    with pytest.warns(UserWarning, match=r"of 200 pixels are out of range"):
        r = flimgru.infer(long, min_photons=0)
    assert r["out_of_range"].mean() > 0.9
    usual, _ = flimgru.simulate(200, seed=6)
    assert flimgru.infer(usual, min_photons=0)["out_of_range"].mean() < 0.05


def test_pixel_stack_and_every_dtype_give_the_same_numbers(image):
    counts, _ = image
    ref = flimgru.infer(counts)
    flat = flimgru.infer(counts.reshape(-1, 135))
    assert flat["tau1"].shape == (32 * 32,)
    for k in ref:
        assert np.array_equal(flat[k], ref[k].ravel(), equal_nan=True), k
    # Counts clipped to 127 fit every dtype: all give the uint32 numbers.
    small = np.minimum(counts, 127)
    want = flimgru.infer(small)
    for dt in [np.uint8, np.uint16, np.uint64, np.int8, np.int16, np.int32, np.int64,
               np.float32, np.float64]:
        got = flimgru.infer(small.astype(dt))
        for k in want:
            assert np.array_equal(got[k], want[k], equal_nan=True), (dt, k)


def test_float_engine_takes_fractional_counts(image):
    counts, _ = image
    half = counts / 2.0 + 0.25
    r = flimgru.infer(half, engine="float", min_photons=0)
    assert np.isfinite(r["tau_mean"]).all()
    np.testing.assert_allclose(r["photons"], half.sum(axis=2))


def test_no_pixel_above_the_threshold_is_an_error(image):
    counts, _ = image
    with pytest.raises(ValueError, match="no pixel has at least 1e\\+?0?9 photons|no pixel has at least 1000000000"):
        flimgru.infer(counts, min_photons=1e9)
    with pytest.raises(ValueError, match="minimum photon count"):
        flimgru.infer(counts, min_photons=float("nan"))


def test_simulate_pixels_is_reproducible_and_follows_the_spec():
    a, ta = flimgru.simulate(300, seed=1)
    b, _ = flimgru.simulate(300, seed=1)
    c, _ = flimgru.simulate(300, seed=2)
    assert a.shape == (300, 135) and a.dtype == np.uint32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(ta["photons"], a.sum(axis=1))
    assert set(ta) == {"tau1", "tau2", "fraction", "mono", "photons", "expected_photons",
                       "background", "irf_centre", "irf_fwhm", "irf_tail"}
    assert ta["mono"].dtype == np.bool_ and (ta["tau2"] >= ta["tau1"]).all()
    d, td = flimgru.simulate(200, seed=1, spec={"tau_ns": [1.0, 1.5], "photons": [1000, 2000]})
    assert d.shape == (200, 135)
    assert td["tau1"].min() >= 1.0 and td["tau2"].max() <= 1.5
    assert td["expected_photons"].min() >= 1000 and td["expected_photons"].max() <= 2000


def test_simulate_image_has_regions(image):
    counts, truth = image
    assert counts.shape == (32, 32, 135)
    assert truth["region"].shape == (32, 32) and set(np.unique(truth["region"])) <= {0, 1, 2}
    assert (truth["region"] > 0).any()


def test_gil_is_released_while_the_engine_runs():
    counts, _ = flimgru.simulate(12000, seed=3)
    flimgru.infer(counts[:10], min_photons=0)  # load the shipped model first
    done = threading.Event()
    result = {}

    def work():
        result["r"] = flimgru.infer(counts, min_photons=0)
        done.set()

    worker = threading.Thread(target=work)
    ticks = [time.perf_counter()]
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        ticks.append(time.perf_counter())
    worker.join()
    duration = ticks[-1] - ticks[0]
    gaps = np.diff(ticks)
    assert duration > 0.2, f"inference took {duration:.3f} s: too short to tell"
    # Holding the GIL would stall this loop for the whole inference.
    assert gaps.max() < duration / 4, f"main thread stalled {gaps.max():.3f} s of {duration:.3f} s"
    assert len(ticks) > 20
    assert result["r"]["tau1"].shape == (12000,)


def installed_files():
    import importlib.metadata as md

    return {str(f) for f in md.files("flimgru")}


def test_package_ships_stubs_and_py_typed():
    files = installed_files()
    assert "flimgru/__init__.pyi" in files and "flimgru/py.typed" in files, files


def test_stubs_match_the_module(tmp_path):
    stub = Path(flimgru.__file__).with_name("__init__.pyi")
    tree = ast.parse(stub.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(flimgru.__all__) == set(funcs) | {"Model", "__version__"}, flimgru.__all__
    assert {"Model", "Instrument", "Lifetimes"} <= set(classes)
    for name, node in funcs.items():
        sig = inspect.signature(getattr(flimgru, name))
        stub_params = [a.arg for a in node.args.args + node.args.kwonlyargs]
        assert list(sig.parameters) == stub_params, name
        stub_kinds = ["kw"] * len(node.args.kwonlyargs)
        kinds = [p.kind for p in sig.parameters.values()][len(node.args.args):]
        assert all(k == inspect.Parameter.KEYWORD_ONLY for k in kinds) and len(kinds) == len(stub_kinds), name
        assert ast.get_docstring(node) and getattr(flimgru, name).__doc__, name
    model_stub = {n.name: n for n in classes["Model"].body if isinstance(n, ast.FunctionDef)}
    for name in ["load", "info", "name", "gates"]:
        assert name in model_stub and getattr(flimgru.Model, name).__doc__, name
    load = model_stub["load"]
    assert [a.arg for a in load.args.args] == list(inspect.signature(flimgru.Model.load).parameters)
    # The result dict's keys are the stub's.
    lifetimes = {n.target.id for n in classes["Lifetimes"].body if isinstance(n, ast.AnnAssign)}
    counts, _ = flimgru.simulate(20, seed=0)
    assert set(flimgru.infer(counts, min_photons=0)) == lifetimes
    instrument = {n.target.id for n in classes["Instrument"].body if isinstance(n, ast.AnnAssign)}
    np.save(tmp_path / "c.npy", counts)
    assert set(flimgru.read(tmp_path / "c.npy")[1]) == instrument
