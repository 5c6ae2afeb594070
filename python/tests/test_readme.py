"""The README's Python examples run: the read/infer and OME-TIFF blocks are
executed on a simulated PTU named as in the README; the matplotlib and
napari blocks (their packages are not test dependencies) are compiled."""

import os
import re
import shutil

import numpy as np
import tifffile

from conftest import ROOT


def python_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_the_examples():
    blocks = python_blocks()
    assert len(blocks) == 4
    napari = [b for b in blocks if "napari" in b]
    assert len(napari) == 1 and len(napari[0].strip().splitlines()) == 5


def test_readme_examples_run(sample, tmp_path, monkeypatch):
    shutil.copy(sample / "sample.ptu", tmp_path / "my_image.ptu")
    monkeypatch.chdir(tmp_path)
    scope = {}
    for i, block in enumerate(python_blocks()):
        code = compile(block, f"README.md python block {i}", "exec")
        if "matplotlib" in block or "napari" in block:
            continue
        exec(code, scope)
    result = scope["result"]
    assert result["tau_mean"].shape == (48, 40)
    with tifffile.TiffFile("lifetimes.ome.tif") as tif:
        assert tif.is_ome
        data = tif.asarray()
        assert 'Name="tau_mean"' in tif.ome_metadata
    assert data.shape == (5, 48, 40) and data.dtype == np.float32
    np.testing.assert_array_equal(data[3], result["tau_mean"].astype(np.float32))
    assert os.path.exists("lifetimes.ome.tif")
