#!/usr/bin/env bash
# Text generation against llama.cpp, same GGUF, prompt and machine, in one run:
# builds `grid` with --features llm (release), installs the reference
# (llama-cpp-python, compiled from its sdist, into .cache/bench-venv) the first time,
# fetches the model, then runs tools/llm_bench.py for both engines and
# tools/bench/ask_e2e.py (grid ask across one hop). Prints JSON lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
LLAMA_CPP_PYTHON=0.3.36
if ! .cache/bench-venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    echo "==> installing llama-cpp-python==$LLAMA_CPP_PYTHON (compiles llama.cpp, ~7 min on 2 cores)" >&2
    "${PYTHON:-python3}" -m venv .cache/bench-venv
    .cache/bench-venv/bin/pip install --quiet --disable-pip-version-check "llama-cpp-python==$LLAMA_CPP_PYTHON"
fi
python3 tools/models_fetch.py --llm .cache/models >&2
cargo build --release -p grid-tools --features llm >&2
GRID="${CARGO_TARGET_DIR:-target}/release/grid"
MODEL=.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
python3 tools/llm_bench.py grid "$GRID" "$MODEL" --runs 5 --adapter-rank 8
.cache/bench-venv/bin/python tools/llm_bench.py llama-cpp "$MODEL" --runs 5
python3 tools/bench/ask_e2e.py "$GRID" .cache/models --runs 5 --json
