#!/usr/bin/env bash
# The real-data check: every recording of the real-data folder through
# flimgru as a new user runs it (map with no options; then the instrument
# flow, instrument + build, and map again), compared with the labs'
# published lifetimes; rewrites the generated part of docs/realdata.md.
# The folder: $FLIMGRU_REALDATA, else ../shared/realdata, else
# /work/shared/realdata (as tests/realdata.rs). Exits 0 with a "skipped"
# line when none exists (.ci/run calls it). Takes about 15 minutes on
# 2 cores: two instrument models are trained. Extra arguments go to the
# Python part (scripts/realdata_check.py), e.g. a smoke run with small
# models: --build-opt=--float-samples=20000 --build-opt=--qat-samples=5000
set -euo pipefail
cd "$(dirname "$0")/.."
data=""
for d in "${FLIMGRU_REALDATA:-}" ../shared/realdata /work/shared/realdata; do
  if [ -n "$d" ] && [ -d "$d" ]; then data="$d"; break; fi
done
if [ -z "$data" ]; then
  echo "realdata-check: skipped: no real-data folder (\$FLIMGRU_REALDATA, ../shared/realdata, /work/shared/realdata)"
  exit 0
fi
bash scripts/setup.sh
cargo build --release --locked
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/realdata_check.py --bin target/release/flimgru --data "$data" \
  --work "$work" --doc docs/realdata.md "$@"
