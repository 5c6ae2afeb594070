#!/usr/bin/env bash
# The main job: simulate pixels and a sample FLIM image, run the shipped
# teacher on them, print its accuracy beside RLD and MLE, draw lifetime maps.
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
$bin simulate --image --height 64 --width 64 --seed 7 --out "$out/image"
$bin map "$out/image/sample.ptu" --model "$model" -o "$out/map-from-ptu.png"
$bin map "$out/image/sample.npy" --model "$model" -o "$out/map-from-npy.png"
echo "lifetime maps: $out/map-from-ptu.png, $out/map-from-npy.png (and their -histogram.png, .csv, .npy)"
