#!/usr/bin/env bash
# The main job: simulate pixels and a sample FLIM image; run the shipped
# W8A12 student through the fixed-point golden model (what the FPGA
# computes) and the float teacher beside it; print the student's accuracy
# beside RLD and MLE; draw lifetime maps with the fixed-point engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
bin=target/release/flimgru
student=models/student-w8a12.json
teacher=models/teacher.json
out=out/demo
mkdir -p "$out"
$bin simulate --pixels 2000 --seed 7 --out "$out/data"
$bin infer --model "$student" --engine fixed --input "$out/data/histograms.npy" --output "$out/lifetimes-fixed.csv"
$bin infer --model "$teacher" --input "$out/data/histograms.npy" --output "$out/lifetimes-teacher.csv"
paste -d '|' <(head -n 5 "$out/lifetimes-fixed.csv") <(head -n 5 "$out/lifetimes-teacher.csv") | sed 's/|/   teacher: /'
$bin eval --model "$student" --pixels 5000 --mle-pixels 300 --f-pixels 200 --out "$out/eval-student"
$bin simulate --image --height 64 --width 64 --seed 7 --out "$out/image"
$bin map "$out/image/sample.ptu" --model "$student" -o "$out/map-from-ptu.png"
$bin map "$out/image/sample.npy" --model "$student" -o "$out/map-from-npy.png"
$bin map "$out/image/sample.ptu" --model "$teacher" -o "$out/map-teacher.png"
echo "lifetime maps: $out/map-from-ptu.png, $out/map-from-npy.png (fixed-point student), $out/map-teacher.png (float teacher), each with -histogram.png, -phasor.png, .csv, .npy, .ome.tif"
