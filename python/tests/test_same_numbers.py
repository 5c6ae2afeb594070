"""The package computes what the CLI computes, bit for bit: same files in,
`flimgru map` / `flimgru infer` / `flimgru simulate` outputs compared with
exact equality (floats as floats, NaN where the CLI masks)."""

import csv

import numpy as np
import pytest

import flimgru
from conftest import STUDENT, TEACHER, run


def map_values(cli, path, tmp_path, engine, *extra):
    """`flimgru map`'s per-pixel outputs: [h, w, 5] (tau1, tau2, fraction,
    tau_mean, out_of_range 1/0; NaN masked) from its .npy, photons [h, w]
    from its CSV."""
    out = tmp_path / f"map-{engine}.png"
    run(cli, "map", path, "--model", STUDENT, "--engine", engine, "-o", out, *extra, cwd=tmp_path)
    values = np.load(out.with_suffix(".npy"))
    h, w, _ = values.shape
    photons = np.zeros((h, w))
    with open(out.with_suffix(".csv"), newline="") as f:
        for row in csv.DictReader(f):
            photons[int(row["row"]), int(row["col"])] = float(row["photons"])
    return values, photons


def stacked(result):
    """infer's result as map's .npy: out_of_range as 1.0 / 0.0, NaN masked."""
    flags = np.where(result["mask"], np.nan, result["out_of_range"].astype(np.float64))
    planes = [result[k] for k in ("tau1", "tau2", "fraction", "tau_mean")] + [flags]
    return np.stack(planes, axis=-1)


def assert_same_as_map(result, values, photons):
    got = stacked(result)
    assert got.shape == values.shape
    # Some pixels are masked and some are not, so both paths are compared.
    assert 0 < result["mask"].sum() < result["mask"].size
    np.testing.assert_array_equal(result["mask"], np.isnan(values[..., 0]))
    assert not (result["out_of_range"] & result["mask"]).any()
    assert np.array_equal(got, values, equal_nan=True), "lifetimes differ from flimgru map's"
    assert np.array_equal(result["photons"], photons), "photons differ from flimgru map's"


@pytest.mark.parametrize("engine", ["fixed", "float"])
def test_ptu_read_and_infer_equal_flimgru_map(cli, sample, tmp_path, engine):
    # A PTU recording: 10 ps channels, matched onto the model's 90 ps gates.
    counts, instrument = flimgru.read(sample / "sample.ptu")
    assert counts.dtype == np.uint32 and counts.shape[:2] == (48, 40)
    assert instrument["bin_width_ns"] == pytest.approx(0.01)
    result = flimgru.infer(counts, engine=engine, instrument=instrument)
    assert_same_as_map(result, *map_values(cli, sample / "sample.ptu", tmp_path, engine))


@pytest.mark.parametrize("engine", ["fixed", "float"])
def test_npy_on_the_model_grid_equals_flimgru_map(cli, sample, tmp_path, engine):
    counts, instrument = flimgru.read(sample / "sample.npy")
    assert instrument["bin_width_ns"] is None and counts.shape == (48, 40, 135)
    result = flimgru.infer(counts, engine=engine, instrument=instrument)
    assert_same_as_map(result, *map_values(cli, sample / "sample.npy", tmp_path, engine))


def test_npy_with_a_bin_width_equals_flimgru_map_bin_width(cli, tmp_path):
    # A cube on a 45 ps grid (270 bins): rebinned 2:1 and aligned, as
    # `flimgru map --bin-width 0.045` does; fixed engine.
    counts, _ = flimgru.simulate((24, 20), seed=5, spec={"grid": {"gates": 270, "dt_ns": 0.045}})
    np.save(tmp_path / "cube.npy", counts)
    got_counts, instrument = flimgru.read(tmp_path / "cube.npy", bin_width=0.045)
    np.testing.assert_array_equal(got_counts, counts)
    assert instrument["bin_width_ns"] == 0.045
    result = flimgru.infer(got_counts, instrument=instrument)
    values, photons = map_values(cli, tmp_path / "cube.npy", tmp_path, "fixed", "--bin-width", 0.045)
    assert_same_as_map(result, values, photons)


@pytest.mark.parametrize(
    "model_path, engine", [(STUDENT, "fixed"), (STUDENT, "float"), (TEACHER, "float")]
)
def test_pixels_equal_flimgru_infer(cli, tmp_path, model_path, engine):
    # `flimgru simulate` and `flimgru.simulate` give the same counts for a
    # seed; `flimgru infer` writes f64 [n, 3] (tau1, tau2, fraction).
    n = 600
    run(cli, "simulate", "--pixels", n, "--seed", 11, "--out", tmp_path / "data", cwd=tmp_path)
    cli_counts = np.load(tmp_path / "data" / "histograms.npy")
    counts, truth = flimgru.simulate(n, seed=11)
    np.testing.assert_array_equal(counts, cli_counts)
    with open(tmp_path / "data" / "truth.csv", newline="") as f:
        cli_tau1 = [float(r["tau1"]) for r in csv.DictReader(f)]
    np.testing.assert_array_equal(truth["tau1"], cli_tau1)

    out = tmp_path / "lifetimes.npy"
    run(cli, "infer", "--model", model_path, "--engine", engine,
        "--input", tmp_path / "data" / "histograms.npy", "--output", out, cwd=tmp_path)
    expected = np.load(out)
    model = flimgru.Model.load(model_path)
    result = flimgru.infer(counts, model=model, engine=engine, min_photons=0)
    assert not result["mask"].any()
    got = np.stack([result["tau1"], result["tau2"], result["fraction"]], axis=-1)
    assert got.shape == expected.shape == (n, 3)
    assert np.array_equal(got, expected), f"{model_path.name} {engine}: differs from flimgru infer"


def test_image_simulation_equals_flimgru_simulate_image(sample):
    counts, truth = flimgru.simulate((48, 40), seed=3)
    np.testing.assert_array_equal(counts, np.load(sample / "sample.npy"))
    with open(sample / "sample.truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 48 * 40
    np.testing.assert_array_equal(truth["tau2"].ravel(), [float(r["tau2"]) for r in rows])
    np.testing.assert_array_equal(truth["photons"].ravel(), [int(r["photons"]) for r in rows])
