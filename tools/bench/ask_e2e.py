#!/usr/bin/env python3
"""`grid ask` end to end across one hop: search + placement + first token.

Starts two `grid node`s on loopback TCP: A (no compute) and B (`[compute] enabled`,
a grid built with `--features llm`), makes them trust each other, publishes a small
LoRA adapter for SmolLM2-135M on B, then times on A:

- `grid ask --dry-run` (search by meaning and placement only);
- `grid ask` the first time (B starts its worker and loads the model: cold);
- `grid ask` again, several times (the worker is loaded: warm).

For each run it reports the time from starting `grid ask` to the first byte of the
answer on stdout (the first token, streamed from B through A) and to the end, plus B's
own first-token time from the answer's figures.

Usage: python3 tools/bench/ask_e2e.py GRID_BINARY MODELS_DIR [--runs N] [--json]
"""

import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

PROMPT = "Say hello to the class."


def write_adapter(d):
    """A PEFT LoRA on all seven projections of SmolLM2-135M (r 8, small weights)."""
    os.makedirs(d, exist_ok=True)
    rng = random.Random(1)
    layers, hidden, heads, kv, ffn, r = 30, 576, 9, 3, 1536, 8
    hd = hidden // heads
    dims = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, kv * hd),
        "self_attn.v_proj": (hidden, kv * hd),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, ffn),
        "mlp.up_proj": (hidden, ffn),
        "mlp.down_proj": (ffn, hidden),
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
                   "peft_type": "LORA", "r": r, "lora_alpha": 16, "lora_dropout": 0.0,
                   "target_modules": [m.split(".")[-1] for m in dims],
                   "task_type": "CAUSAL_LM", "bias": "none"}, f)
    with open(os.path.join(d, "adapter.toml"), "w") as f:
        f.write('name = "pirate-voice"\nversion = "1.0.0"\n'
                'description = "Answers in the voice of a pirate: arr, matey, ahoy."\n'
                'examples = ["talk like a pirate"]\n')
    header, blobs, off = {}, [], 0
    for layer in range(layers):
        for m, (i, o) in dims.items():
            p = f"base_model.model.model.layers.{layer}.{m}"
            for name, shape, scale in ((p + ".lora_A.weight", [r, i], 1 / i ** 0.5),
                                       (p + ".lora_B.weight", [o, r], 0.02)):
                n = shape[0] * shape[1]
                data = struct.pack(f"<{n}f", *[(rng.random() * 2 - 1) * scale for _ in range(n)])
                header[name] = {"dtype": "F32", "shape": shape,
                                "data_offsets": [off, off + len(data)]}
                blobs.append(data)
                off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid")
    ap.add_argument("models")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    grid, models, runs = os.path.abspath(opts.grid), os.path.abspath(opts.models), opts.runs
    env = dict(os.environ, GRID_MODELS=models)
    root = tempfile.mkdtemp(prefix="grid-ask-bench-")
    port = free_port()
    a_dir, b_dir = os.path.join(root, "a"), os.path.join(root, "b")
    common = '[node]\nannounce_interval = "1h"\nshare_instance = false\n'
    for d, cfg in ((a_dir, common + f'[[interface]]\ntype = "tcp_server"\nlisten = "127.0.0.1:{port}"\n'),
                   (b_dir, common + '[compute]\nenabled = true\n'
                    + f'[[interface]]\ntype = "tcp_client"\ntarget = "127.0.0.1:{port}"\n')):
        os.makedirs(d)
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(cfg)

    def cli(d, *a, check=True):
        r = subprocess.run([grid, "--config", d, *a], env=env, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"grid {' '.join(a)}: {r.stderr}")
        return r

    nodes = [subprocess.Popen([grid, "--config", d, "node", "-q"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for d in (a_dir, b_dir)]
    try:
        for d in (a_dir, b_dir):
            for _ in range(100):
                if cli(d, "adapter", "list", "--json", check=False).returncode == 0:
                    break
                time.sleep(0.1)
        ida = json.loads(cli(a_dir, "id", "--json").stdout)["identity"]
        idb = json.loads(cli(b_dir, "id", "--json").stdout)["identity"]
        cli(a_dir, "trust", idb, "trusted")
        cli(b_dir, "trust", ida, "trusted")
        write_adapter(os.path.join(root, "pirate"))
        cli(b_dir, "adapter", "publish", os.path.join(root, "pirate"))
        need = "talk like a pirate"
        for _ in range(300):
            r = cli(a_dir, "ask", need, "--dry-run", "--json", check=False)
            if r.returncode == 0 and json.loads(r.stdout)["plan"]["here"] is False:
                break
            time.sleep(0.1)
        dry = []
        for _ in range(runs):
            t0 = time.perf_counter()
            cli(a_dir, "ask", need, "--dry-run", "--json")
            dry.append((time.perf_counter() - t0) * 1000)

        def ask():
            t0 = time.perf_counter()
            p = subprocess.Popen([grid, "--config", a_dir, "ask", need, "--prompt", PROMPT,
                                  "--max-tokens", "32", "--temperature", "0"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            first = p.stdout.read(1)
            t_first = (time.perf_counter() - t0) * 1000
            rest = p.stdout.read()
            p.wait()
            t_end = (time.perf_counter() - t0) * 1000
            out = (first + rest).decode(errors="replace")
            if p.returncode != 0:
                raise SystemExit(f"grid ask failed: {p.stderr.read().decode()}")
            b_first = None
            for line in out.splitlines():
                if "first after" in line:
                    b_first = float(line.split("first after")[1].split("ms")[0])
            return {"first_byte_ms": round(t_first, 1), "total_ms": round(t_end, 1),
                    "node_first_token_ms": b_first}

        cold = ask()
        warm = [ask() for _ in range(runs)]
        med = lambda xs: sorted(xs)[len(xs) // 2]
        result = {
            "dry_run_ms_median": round(med(dry), 1),
            "cold": cold,
            "warm_first_byte_ms_median": med([w["first_byte_ms"] for w in warm]),
            "warm_total_ms_median": med([w["total_ms"] for w in warm]),
            "warm_node_first_token_ms_median": med([w["node_first_token_ms"] or 0 for w in warm]),
            "runs": runs,
        }
        print(json.dumps(result, indent=None if opts.json else 2))
    finally:
        for n in nodes:
            n.terminate()
        for n in nodes:
            n.wait()


if __name__ == "__main__":
    main()
