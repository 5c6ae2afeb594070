"""flimgru.infer beside the CLI on the same data: a 512 x 512 x 135 uint16
image of simulated pixels, the shipped W8A12 student, fixed-point engine.

    .venv/bin/python python/bench/bench_infer.py [--size 512] [--repeats 3] [--cli PATH]

The CLI's time is the wall time of `flimgru infer --input image.npy
--output out.npy` (process start, reading the .npy, inference, writing);
the package's is the `flimgru.infer(counts, min_photons=0)` call on the
array in memory (min_photons=0: every pixel computed, as `infer` does).
Runs alternate (CLI, package, CLI, ...); the ratio of the medians and that
of the fastest runs are printed (on a shared machine the fastest runs are
the least disturbed); the results are checked to be equal. Without --cli, the release CLI is built
with cargo (CARGO_TARGET_DIR is honoured).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import flimgru

ROOT = Path(__file__).resolve().parents[2]


def release_cli() -> str:
    out = subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bin", "flimgru",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "flimgru":
                return msg["executable"]
    sys.exit("cargo built no flimgru executable")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="image side (pixels)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cli", help="flimgru binary (default: cargo build --release)")
    a = ap.parse_args()
    # A few simulated pixels fall outside the training range; infer warns.
    warnings.filterwarnings("ignore", message=".*pixels are out of range", category=UserWarning)
    cli = a.cli or release_cli()
    model = ROOT / "models" / "student-w8a12.json"
    counts, _ = flimgru.simulate(a.size * a.size, seed=1)
    assert counts.max() <= np.iinfo(np.uint16).max
    image = counts.reshape(a.size, a.size, -1).astype(np.uint16)
    print(f"data: {image.shape} {image.dtype}, {int(image.sum(dtype=np.int64))} photons; "
          f"model {model.relative_to(ROOT)}, fixed-point engine; CLI {cli}")
    cli_times, py_times = [], []
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "image.npy", Path(d) / "out.npy"
        np.save(src, image)
        for _ in range(a.repeats):
            out.unlink(missing_ok=True)
            t = time.perf_counter()
            subprocess.run([cli, "infer", "--model", str(model), "--engine", "fixed",
                            "--input", str(src), "--output", str(out)],
                           check=True, capture_output=True)
            cli_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = flimgru.infer(image, engine="fixed", min_photons=0)
            py_times.append(time.perf_counter() - t)
        expected = np.load(out)
    got = np.stack([result["tau1"], result["tau2"], result["fraction"]], axis=-1)
    same = np.array_equal(got, expected)
    cli_t, py_t = statistics.median(cli_times), statistics.median(py_times)
    print("CLI flimgru infer  (s): " + ", ".join(f"{t:.2f}" for t in cli_times) + f"  median {cli_t:.2f}")
    print("flimgru.infer      (s): " + ", ".join(f"{t:.2f}" for t in py_times) + f"  median {py_t:.2f}")
    print(f"ratio package / CLI: {py_t / cli_t:.3f} of the medians, "
          f"{min(py_times) / min(cli_times):.3f} of the fastest runs (target <= 1.2); results equal: {same}")
    if not same:
        sys.exit("the package's results differ from the CLI's")


if __name__ == "__main__":
    main()
