"""`flimgru map`'s OME-TIFF read back with tifffile: an OME file of
float32 planes (channels named with their units), the tau_mean plane equal
to the CSV's column (to the CSV's 6 decimals), masked pixels NaN."""

import csv
import xml.etree.ElementTree as ET

import numpy as np
import tifffile

from conftest import run

OME = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"
PLANES = [
    "tau_mean (ns)",
    "tau1 (ns)",
    "tau2 (ns)",
    "fraction of tau1",
    "photons",
    "out_of_range (1 = flagged)",
    "phasor G",
    "phasor S",
]


def column(rows, name, h, w):
    v = [float(r[name]) if r[name] else np.nan for r in rows]
    return np.array(v, dtype=np.float32).reshape(h, w)


def test_map_ome_tiff_reads_back_with_tifffile(cli, sample, tmp_path):
    run(cli, "map", sample / "sample.ptu", "-o", tmp_path / "m.png", cwd=tmp_path)
    h, w = 48, 40
    with tifffile.TiffFile(tmp_path / "m.ome.tif") as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.shape == (len(PLANES), h, w)
        assert series.axes == "CYX"
        assert series.dtype == np.float32
        planes = series.asarray()
        root = ET.fromstring(tif.ome_metadata)
    pixels = root.find(f"{OME}Image/{OME}Pixels")
    assert pixels.get("DimensionOrder") == "XYCZT" and pixels.get("Type") == "float"
    assert [c.get("Name") for c in pixels.findall(f"{OME}Channel")] == PLANES
    units = {
        m.get("K"): m.text
        for m in root.iter(f"{OME}M")
        if m.get("K", "").startswith("unit: ")
    }
    assert units["unit: tau_mean (ns)"] == "ns"

    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == h * w
    # The CSV has 6 decimals: equal within its rounding (5e-7) plus one
    # float32 step; NaN exactly where the CSV field is empty.
    for k, name in [(0, "tau_mean"), (1, "tau1"), (6, "g"), (7, "s")]:
        np.testing.assert_allclose(
            planes[k], column(rows, name, h, w), rtol=0, atol=1e-6, equal_nan=True, err_msg=name
        )
    masked = np.isnan(planes[0])
    assert masked.any() and (~masked).any()
    # Photons are given for every pixel, masked or not.
    assert not np.isnan(planes[4]).any()
