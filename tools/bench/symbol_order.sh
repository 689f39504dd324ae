#!/usr/bin/env bash
# Regenerates tools/link/grid-symbol-order.txt: the functions an idle `grid node` runs,
# in the order it first runs them (callgrind, from Debian's valgrind), which the release
# link of `grid` lays out together (tools/build.rs) so an idle node maps fewer pages of
# code. Run it after changes that touch start-up or the idle loop, or the dependencies of
# grid-tools or grid (a new one renames every generic instance compiled there), then
# rebuild (`grid-bench idle-only` says when the list is stale); symbols
# that no longer exist are ignored by the linker, so a stale list costs memory, never
# correctness. Takes about two minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package)" >&2; exit 1; }
cargo build --release -p grid-tools --bin grid >&2
GRID="${CARGO_TARGET_DIR:-target}/release/grid"
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PORT=$((40000 + RANDOM % 20000))
printf '[[interface]]\ntype = "tcp_server"\nlisten = "127.0.0.1:%s"\n' "$PORT" > "$DIR/config.toml"
# An idle node under callgrind for 50 s: start-up, interfaces, timers, the status page,
# and one TCP client coming and going (as grid-bench's idle measurement does).
( sleep 25; exec 3<>"/dev/tcp/127.0.0.1/$PORT" && sleep 2; exec 3>&- ) 2>/dev/null &
timeout -s INT 50 valgrind --tool=callgrind --demangle=no --callgrind-out-file="$DIR/cg.out" \
    "$GRID" --config "$DIR" node -q >/dev/null 2>&1 || true
python3 - "$DIR/cg.out" tools/link/grid-symbol-order.txt <<'PY'
import re, sys
names, seen = [], set()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"c?fn=\(\d+\) (\S+)", line.strip())
    # callgrind marks recursive calls as name'2, name'3: the symbol is the name.
    name = re.sub(r"'\d+$", "", m.group(1)) if m else None
    if name and name.startswith(("_ZN", "_R")) and name not in seen:
        seen.add(name)
        names.append(name)
open(sys.argv[2], "w").write("\n".join(names) + "\n")
print(f"{len(names)} functions written to {sys.argv[2]}", file=sys.stderr)
PY
