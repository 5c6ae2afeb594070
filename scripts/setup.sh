#!/usr/bin/env bash
# Installs what flimgru needs on a fresh Debian machine with a Rust toolchain
# and CPython 3.11 (python3): the HDL tools, and the Python package in .venv.
# Idempotent: re-running skips what is present.
set -euo pipefail
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
# rustfmt and clippy are part of the checks in scripts/test.sh.
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
bash "$(dirname "$0")/setup-hdl.sh"
# The Python package: .venv with its tools, the package built into it.
bash "$(dirname "$0")/setup-python.sh"
