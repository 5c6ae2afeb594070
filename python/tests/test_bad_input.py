"""Bad input is a Python exception naming the problem, never a crash (a
Rust panic would surface as pyo3's PanicException, which these tests do
not catch)."""

import numpy as np
import pytest

import flimgru
from conftest import ROOT


COUNTS, _ = flimgru.simulate((8, 8), seed=1)


@pytest.fixture
def counts():
    return COUNTS


def bad_counts(c):
    """(name, array, engine, message pattern) of arrays infer must refuse."""
    big = c.astype(">u4")
    fractional = c.astype(np.float64)
    fractional[3, 4, 20] += 0.5
    nan = c.astype(np.float32)
    nan[1, 2, 3] = np.nan
    inf = c.astype(np.float64)
    inf[0, 0, 0] = np.inf
    negative = c.astype(np.int32)
    negative[2, 2, 7] = -3
    huge = c.astype(np.float64)
    huge[0, 1, 0] = 1e300
    return [
        ("complex dtype", c.astype(np.complex64), None, "dtype complex64"),
        ("bool dtype", c > 0, None, "dtype bool"),
        ("float16 dtype", c.astype(np.float16), None, "dtype float16"),
        ("object dtype", c.astype(object), None, "dtype object"),
        ("1-D", c.ravel(), None, r"shape \(8640,\)"),
        ("4-D", c[None], None, r"shape \(1, 8, 8, 135\)"),
        ("wrong gate count", np.ascontiguousarray(c[..., :100]), None, "100 bins, the model expects 135 gates"),
        ("no pixels", np.zeros((0, 135), np.uint32), None, "zero pixels"),
        ("no gates", np.zeros((4, 4, 0), np.uint32), None, "zero gates"),
        ("transposed", c.transpose(1, 0, 2), None, "not C-contiguous"),
        ("strided", c[:, ::2], None, "not C-contiguous"),
        ("big-endian", big, None, "big-endian dtype >u4"),
        ("NaN", nan, "float", "value NaN at pixel 10, gate 3 is not finite"),
        ("inf", inf, None, "value inf at pixel 0, gate 0 is not finite"),
        ("negative", negative, None, "negative count -3 at pixel 18, gate 7"),
        ("beyond f32", huge, None, "overflows f32"),
        ("fractional on fixed", fractional, "fixed", r"whole non-negative photon counts; pixel 28 gate 20 holds \d+\.5"),
    ]


@pytest.mark.parametrize(
    "name, arr, engine, pattern", bad_counts(COUNTS), ids=[c[0] for c in bad_counts(COUNTS)]
)
def test_bad_counts_raise_value_error_naming_the_problem(counts, name, arr, engine, pattern):
    with pytest.raises(ValueError, match=pattern):
        flimgru.infer(arr, engine=engine)
    # The interpreter and the module still work.
    assert flimgru.infer(counts)["tau1"].shape == (8, 8)


def test_non_arrays_and_bad_options():
    c, _ = flimgru.simulate((8, 8), seed=1)
    with pytest.raises(TypeError, match="numpy.ndarray, not list"):
        flimgru.infer([[1, 2, 3]])
    with pytest.raises(ValueError, match='engine "gpu"'):
        flimgru.infer(c, engine="gpu")
    with pytest.raises(TypeError):
        flimgru.infer(c, model="models/student-w8a12.json")
    with pytest.raises(TypeError, match="instrument must be a dict"):
        flimgru.infer(c, instrument=0.09)
    for bad in [-1.0, 0.0, float("nan"), "wide"]:
        with pytest.raises(ValueError, match="bin_width_ns"):
            flimgru.infer(c, instrument={"bin_width_ns": bad})
    with pytest.raises(ValueError, match="period_ns"):
        flimgru.infer(c, instrument={"bin_width_ns": 0.09, "period_ns": -5})
    with pytest.raises(ValueError, match="resolution too coarse"):
        flimgru.infer(c, instrument={"bin_width_ns": 0.5})


def test_unaligned_array_is_refused(counts):
    raw = np.zeros(counts.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.uint32, offset=1, count=counts.size).reshape(counts.shape)
    assert not unaligned.flags.aligned
    with pytest.raises(ValueError, match="not aligned"):
        flimgru.infer(unaligned)


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.ptu"):
        flimgru.read(tmp_path / "missing.ptu")
    (tmp_path / "x.tif").write_bytes(b"II*\0")
    with pytest.raises(ValueError, match="unknown extension 'tif'"):
        flimgru.read(tmp_path / "x.tif")
    (tmp_path / "short.ptu").write_bytes(b"PQTTTR\0\0" + b"\0" * 40)
    with pytest.raises(ValueError, match="short.ptu"):
        flimgru.read(tmp_path / "short.ptu")
    with pytest.raises(ValueError, match="bin_width is for .npy/.csv"):
        flimgru.read(tmp_path / "short.ptu", bin_width=0.01)
    with pytest.raises(ValueError, match="dtime_binning 0 must be at least 1"):
        flimgru.read(tmp_path / "short.ptu", dtime_binning=0)
    with pytest.raises(ValueError, match="channel -1 must be at least 0"):
        flimgru.read(tmp_path / "short.ptu", channel=-1)
    np.save(tmp_path / "neg.npy", -np.ones((2, 2, 135)))
    with pytest.raises(ValueError, match="negative count"):
        flimgru.read(tmp_path / "neg.npy")
    with pytest.raises(ValueError, match="bin width 0 ns"):
        flimgru.read(tmp_path / "neg.npy", bin_width=0.0)


def test_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        flimgru.Model.load(tmp_path / "nothere.json")
    (tmp_path / "a.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a flimgru model|expected \"flimgru-model\""):
        flimgru.Model.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        flimgru.Model.load(tmp_path / "b.json")
    # A model whose integer weights disagree with its float ones.
    text = (ROOT / "models" / "student-w8a12.json").read_text()
    import json

    m = json.loads(text)
    m["quantized"]["head_bias"]["codes"][0] += 1
    (tmp_path / "c.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="disagrees with the quantised codes"):
        flimgru.Model.load(tmp_path / "c.json")


def test_simulate_errors():
    for shape in [0, -1, (2, 2), "9", (3, 4, 5)]:
        with pytest.raises(ValueError, match="shape|outside 4..=4096"):
            flimgru.simulate(shape)
    with pytest.raises(ValueError, match="more than the 2 GiB limit"):
        flimgru.simulate(10**9)
    with pytest.raises(ValueError, match='unknown field "photon"'):
        flimgru.simulate(10, spec={"photon": [1, 2]})
    with pytest.raises(ValueError, match="photons"):
        flimgru.simulate(10, spec={"photons": [100, 10]})
    with pytest.raises(ValueError, match="spec"):
        flimgru.simulate(10, spec={"tau_ns": "long"})
