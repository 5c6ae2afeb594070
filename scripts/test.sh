#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/setup.sh, which
# also builds the Python package into .venv), then format, lint and tests:
# the Rust crates, then the Python package with pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --locked
# The package's tests compare it with the CLI binary `cargo test` just built.
target="$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
FLIMGRU_CLI="$target/debug/flimgru" .venv/bin/python -m pytest -q python/tests
