#!/usr/bin/env bash
# The main job: simulate a small data set, run the shipped teacher on it and
# print its accuracy table beside RLD and MLE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
bin=target/release/flimgru
model=models/teacher.json
out=out/demo
mkdir -p "$out"
$bin simulate --pixels 2000 --seed 7 --out "$out/data"
$bin infer --model "$model" --input "$out/data/histograms.npy" --output "$out/lifetimes.csv"
head -n 5 "$out/lifetimes.csv"
$bin eval --model "$model" --pixels 5000 --mle-pixels 300 --f-pixels 200 --out "$out/eval"
