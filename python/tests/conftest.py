"""Shared fixtures: the repository, the flimgru CLI, test recordings.

Test data is made here (by the CLI's simulator), never read from outside
the repository.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDENT = ROOT / "models" / "student-w8a12.json"
TEACHER = ROOT / "models" / "teacher.json"


@pytest.fixture(scope="session")
def cli() -> str:
    """The flimgru command-line binary: $FLIMGRU_CLI (scripts/test.sh passes
    the one `cargo test` just built), else built here with cargo."""
    path = os.environ.get("FLIMGRU_CLI")
    if path:
        assert os.access(path, os.X_OK), f"FLIMGRU_CLI={path} is not an executable file"
        return path
    out = subprocess.run(
        ["cargo", "build", "--locked", "--bin", "flimgru", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"cargo build of the CLI failed:\n{out.stderr}"
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if msg["target"]["name"] == "flimgru":
                return msg["executable"]
    raise AssertionError("cargo built no flimgru executable")


def run(cli: str, *args, cwd) -> subprocess.CompletedProcess:
    """Run the CLI; fail the test with its stderr if it fails."""
    out = subprocess.run([cli, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, f"flimgru {' '.join(map(str, args))} failed:\n{out.stderr}"
    return out


@pytest.fixture(scope="session")
def sample(cli, tmp_path_factory) -> Path:
    """`flimgru simulate --image` (48 x 40 cells, seed 3): a directory with
    sample.ptu (10 ps micro-time channels), sample.npy (u32 [48, 40, 135]
    on the model's gates) and sample.truth.csv."""
    d = tmp_path_factory.mktemp("sample")
    run(cli, "simulate", "--image", "--height", 48, "--width", 40, "--seed", 3, "--out", d, cwd=d)
    return d
