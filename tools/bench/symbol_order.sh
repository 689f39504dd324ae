#!/usr/bin/env bash
# Regenerates tools/link/grid-symbol-order.txt: the functions an idle `grid node` runs,
# in the order it first runs them (callgrind, from Debian's valgrind), which the release
# link of `grid` lays out together (tools/build.rs) so an idle node maps fewer pages of
# code. Run it after changes that touch start-up or the idle loop, or the dependencies of
# grid-tools or grid (a new one renames every generic instance compiled there), then
# rebuild (`grid-bench idle-only` says when the list is stale); symbols
# that no longer exist are ignored by the linker, so a stale list costs memory, never
# correctness. Takes about three minutes on 2 cores once both builds are done.
#
# Two builds of `grid` name their functions differently: from the workspace root
# (`cargo run --release --bin grid`, `cargo build --release`: features unified over
# every workspace member) and from the package alone (`-p grid-tools`, or cargo run
# inside tools/). Crates built with other features get other symbol hashes, so a list
# made from one build matches under half of the other's names.
# The file holds one section per build, each headed by a `#` line (lld reads `#` as a
# comment); each build finds its own names, the other section's are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package)" >&2; exit 1; }
GRID="${CARGO_TARGET_DIR:-target}/release/grid"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

# An idle node under callgrind for 50 s: start-up, interfaces, timers, the status page,
# and one TCP client coming and going (as grid-bench's idle measurement does).
trace() { # $1: binary, $2: callgrind output
    local port=$((40000 + RANDOM % 20000)) state
    state=$(mktemp -d -p "$DIR")
    printf '[[interface]]\ntype = "tcp_server"\nlisten = "127.0.0.1:%s"\n' "$port" > "$state/config.toml"
    ( sleep 25; exec 3<>"/dev/tcp/127.0.0.1/$port" && sleep 2; exec 3>&- ) 2>/dev/null &
    timeout -s INT 50 valgrind --tool=callgrind --demangle=no --callgrind-out-file="$2" \
        "$1" --config "$state" node -q >/dev/null 2>&1 || true
}

cargo build --release -p grid-tools --bin grid >&2
cp "$GRID" "$DIR/grid-package"
cargo build --release --bin grid >&2   # last, so target/release/grid is the README's build
cp "$GRID" "$DIR/grid-workspace"
# One after the other: a node traced beside another runs its idle path differently.
trace "$DIR/grid-workspace" "$DIR/workspace.cg"
trace "$DIR/grid-package" "$DIR/package.cg"

python3 - "$DIR" tools/link/grid-symbol-order.txt <<'PY'
import re, sys
d, out = sys.argv[1], sys.argv[2]
def names(path):
    found, seen = [], set()
    for line in open(path, errors="replace"):
        m = re.match(r"c?fn=\(\d+\) (\S+)", line.strip())
        # callgrind marks recursive calls as name'2, name'3: the symbol is the name.
        name = re.sub(r"'\d+$", "", m.group(1)) if m else None
        if name and name.startswith(("_ZN", "_R")) and name not in seen:
            seen.add(name)
            found.append(name)
    return found
sections = [
    ("workspace", "cargo build --release --bin grid, from the workspace root"),
    ("package", "cargo build --release -p grid-tools --bin grid"),
]
with open(out, "w") as f:
    for key, how in sections:
        listed = names(f"{d}/{key}.cg")
        f.write(f"# build: {key} ({how}); made by tools/bench/symbol_order.sh\n")
        f.write("\n".join(listed) + "\n")
        print(f"{key}: {len(listed)} functions", file=sys.stderr)
print(f"written to {out}", file=sys.stderr)
PY
