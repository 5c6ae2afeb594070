#!/usr/bin/env bash
# The Python package (python/, docs in python/README.md): a virtual
# environment at .venv with the pinned build and test tools
# (python/requirements-dev.txt), and the package built from this checkout
# (release build, maturin) and installed into it. Needs CPython >= 3.9
# (python3, or FLIMGRU_PYTHON) and cargo. Idempotent: an existing .venv is
# reused, and a rebuild with no source change takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${FLIMGRU_PYTHON:-python3}"
venv=.venv

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

"$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
  echo "error: $py is $("$py" --version 2>&1); the package needs CPython >= 3.9" >&2
  exit 1
}
if [ ! -x "$venv/bin/python" ]; then
  # Debian's python3 leaves venv's pip (ensurepip) to the python3-venv package.
  if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    ver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    echo "setup-python: installing python$ver-venv (Debian package)"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$ver-venv"
  fi
  rm -rf "$venv"
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt
# maturin develop builds the extension (release profile) and installs it
# into the environment named by VIRTUAL_ENV.
VIRTUAL_ENV="$PWD/$venv" "$venv/bin/maturin" develop --release --locked \
  --manifest-path python/Cargo.toml
echo "setup-python: $("$venv/bin/python" -c 'import flimgru, numpy, sys; print(f"flimgru {flimgru.__version__} (numpy {numpy.__version__}, Python {sys.version.split()[0]}) in .venv")')"
