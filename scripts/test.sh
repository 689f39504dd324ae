#!/usr/bin/env bash
# Runs every test of the workspace.
#
# Interop tests need the reference implementation: this script creates .venv with
# rns==1.5.7 from PyPI the first time (no other network is used), then runs the
# format check, clippy and the whole cargo test suite against it.
set -euo pipefail
cd "$(dirname "$0")/.."

RNS_VERSION=1.5.7
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('rns') != '$RNS_VERSION')" 2>/dev/null; then
    echo "==> creating .venv with rns==$RNS_VERSION"
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "rns==$RNS_VERSION"
fi
export GRID_PYTHON="$PWD/.venv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> all tests passed"
