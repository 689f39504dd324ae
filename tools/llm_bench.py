#!/usr/bin/env python3
"""Time `grid worker generate` and, for comparison, llama-cpp-python on one GGUF and prompt.

Usage:
    python3 tools/llm_bench.py grid GRID_BINARY MODEL.gguf [--runs N] [--max-tokens N]
                               [--adapter-rank R] [--weights native|f16|f32|quantized]
    PY_WITH_LLAMA_CPP tools/llm_bench.py llama-cpp MODEL.gguf [--runs N] [--max-tokens N]

Both send the same prompt as one user turn through the GGUF's chat template, decode
greedily (temperature 0) and stream. Measured on the client side, per run:
    ttft_ms   from sending the request to the first streamed text piece
    decode    (pieces - 1) / (time of last piece - time of first piece), pieces per second
              (a piece is one streamed chunk; both stream one token per chunk)
The grid worker's own numbers (its Done frame) are printed too. The first run is a warm-up
and is not averaged. For `grid`, also: spawn to Ready (worker start), the worker's peak
RSS, and with --adapter-rank R a PEFT LoRA adapter of rank R on all seven projections
(written here, SmolLM2-135M's shapes) is applied: its first request (load + first token)
against later ones (kept loaded) and against the base. Standard library only for `grid`
(frames: 4-byte big-endian length + postcard body, grid_genome::generate::protocol).
"""

import argparse
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array

PROMPT = "Write a short story about a lighthouse keeper."

# SmolLM2-135M: layers, hidden, heads, kv heads, ffn (grid_genome::package::SMOLLM2_135M).
SMOL = (30, 576, 9, 3, 1536)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pstr(s):
    b = s.encode()
    return varint(len(b)) + b


class Reader:
    def __init__(self, data):
        self.d, self.i = data, 0

    def varint(self):
        shift = n = 0
        while True:
            b = self.d[self.i]
            self.i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    def string(self):
        n = self.varint()
        s = self.d[self.i:self.i + n].decode()
        self.i += n
        return s

    def option_string(self):
        return self.string() if self.varint() else None

    def f64(self):
        (v,) = struct.unpack_from("<d", self.d, self.i)
        self.i += 8
        return v


def encode_request(prompt, max_tokens, temperature, seed, adapter=None):
    body = pstr(prompt) + varint(max_tokens) + struct.pack("<f", temperature) + varint(seed)
    if adapter is None:
        body += b"\x00"
    else:
        body += b"\x01" + pstr(adapter[0]) + pstr(adapter[1])
    body += b"\x00"  # context_limit: none
    return struct.pack(">I", len(body)) + body


def read_frame(f):
    head = f.read(4)
    if len(head) < 4:
        raise EOFError("worker ended")
    (n,) = struct.unpack(">I", head)
    r = Reader(f.read(n))
    kind = r.varint()
    if kind == 0:
        return "ready", {"name": r.string(), "architecture": r.string(),
                         "context_tokens": r.varint(), "bytes_per_context_token": r.varint(),
                         "load_ms": r.f64()}
    if kind == 1:
        return "token", r.string()
    if kind == 2:
        done = {"text": r.string(), "prompt_tokens": r.varint(), "completion_tokens": r.varint(),
                "token_frames": r.varint(), "finish_reason": r.string(),
                "adapter": r.option_string(), "first_token_ms": r.f64(), "total_ms": r.f64(),
                "decode_tokens_per_s": r.f64()}
        return "done", done
    return "failed", r.string()


def write_adapter(d, r, seed=1, amplitude=0.01, alpha=None):
    """A PEFT LoRA adapter for SmolLM2-135M: rank r, all seven projections, A and B
    uniform in [-amplitude, amplitude), lora_alpha = alpha (2r if not given)."""
    layers, hidden, heads, kv, ffn = SMOL
    kvd = kv * hidden // heads
    dims = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (hidden, kvd),
            "self_attn.v_proj": (hidden, kvd), "self_attn.o_proj": (hidden, hidden),
            "mlp.gate_proj": (hidden, ffn), "mlp.up_proj": (hidden, ffn),
            "mlp.down_proj": (ffn, hidden)}
    rng = random.Random(seed)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for i in range(layers):
        for m, (inp, out) in dims.items():
            for name, shape in (("lora_A", [r, inp]), ("lora_B", [out, r])):
                n = shape[0] * shape[1]
                a = array("f", (rng.uniform(-amplitude, amplitude) for _ in range(n)))
                key = "base_model.model.model.layers.%d.%s.%s.weight" % (i, m, name)
                header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + 4 * n]}
                off += 4 * n
                blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": r, "lora_alpha": alpha or 2 * r,
                   "target_modules": [m.split(".")[1] for m in dims]}, f)
    return off


def summarize(name, runs, extra=None):
    measured = runs[1:] if len(runs) > 1 else runs
    out = {
        "engine": name,
        "runs": len(measured),
        "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in measured), 1),
        "decode_tok_s_median": round(statistics.median(r["decode"] for r in measured), 1),
        "pieces": [r["pieces"] for r in measured],
        "all": runs,
    }
    if extra:
        out.update(extra)
    print(json.dumps(out, indent=1))


def grid_request(p, req):
    """Send one request; (client ttft_ms, piece times, done frame)."""
    start = time.perf_counter()
    p.stdin.write(req)
    p.stdin.flush()
    times = []
    while True:
        kind, v = read_frame(p.stdout)
        if kind == "token":
            times.append(time.perf_counter())
        elif kind == "done":
            return start, times, v
        else:
            raise SystemExit("%s: %s" % (kind, v))


def bench_grid(binary, model, runs, max_tokens, adapter_rank, weights):
    t0 = time.perf_counter()
    extra_args = ["--weights", weights] if weights else []
    p = subprocess.Popen([binary, "worker", "generate", "--model", model] + extra_args,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    kind, ready = read_frame(p.stdout)
    assert kind == "ready", kind
    start_ms = (time.perf_counter() - t0) * 1e3
    results = []
    for _ in range(runs):
        start, times, done = grid_request(p, encode_request(PROMPT, max_tokens, 0.0, 1))
        results.append({
            "ttft_ms": (times[0] - start) * 1e3,
            "decode": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "pieces": len(times),
            "worker": {k: v for k, v in done.items() if k != "text"},
            "text": done["text"][:80],
        })
    extra = {"spawn_to_ready_ms": round(start_ms, 1), "ready": ready, "weights": weights}
    if adapter_rank:
        with tempfile.TemporaryDirectory() as d:
            size = write_adapter(d, adapter_rank)
            switch = []
            for i in range(3):
                # A new hash each time: the worker loads the adapter again.
                hash_ = "bench-%d-%d" % (os.getpid(), i)
                s1, t1, _ = grid_request(p, encode_request(PROMPT, 8, 0.0, 1, (hash_, d)))
                s2, t2, _ = grid_request(p, encode_request(PROMPT, 8, 0.0, 1, (hash_, d)))
                s3, t3, _ = grid_request(p, encode_request(PROMPT, 8, 0.0, 1))
                switch.append({"new_adapter_ttft_ms": round((t1[0] - s1) * 1e3, 1),
                               "kept_adapter_ttft_ms": round((t2[0] - s2) * 1e3, 1),
                               "base_ttft_ms": round((t3[0] - s3) * 1e3, 1)})
            _, t4, d4 = grid_request(p, encode_request(PROMPT, max_tokens, 0.0, 1, (hash_, d)))
            extra["adapter"] = {"rank": adapter_rank, "file_bytes": size, "switch": switch,
                                "decode_with_adapter": round((len(t4) - 1) / (t4[-1] - t4[0]), 1)}
    try:
        with open("/proc/{}/status".format(p.pid)) as f:
            extra["worker_peak_rss_kb"] = [line.split()[1] for line in f
                                           if line.startswith("VmHWM:")][0]
    except (OSError, IndexError):
        pass
    p.stdin.close()
    p.wait()
    summarize("grid worker generate (--weights %s)" % (weights or "auto"), results, extra)


def bench_llama_cpp(model, runs, max_tokens):
    from llama_cpp import Llama  # noqa: import here so `grid` mode needs only the stdlib
    t0 = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=2048, n_threads=os.cpu_count(), seed=1, verbose=False)
    load_ms = (time.perf_counter() - t0) * 1e3
    results = []
    for _ in range(runs):
        # Forget the previous run's KV cache: otherwise llama-cpp-python reuses the shared
        # prompt prefix and the first token comes without evaluating the prompt (the grid
        # worker has no prefix cache: each request starts from an empty KV cache).
        llm.reset()
        start = time.perf_counter()
        times, text = [], ""
        for chunk in llm.create_chat_completion(
                messages=[{"role": "user", "content": PROMPT}],
                max_tokens=max_tokens, temperature=0.0, stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                times.append(time.perf_counter())
                text += piece
        results.append({
            "ttft_ms": (times[0] - start) * 1e3,
            "decode": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "pieces": len(times),
            "text": text[:80],
        })
    import llama_cpp
    import resource
    summarize("llama-cpp-python " + llama_cpp.__version__, results, {"load_ms": round(load_ms, 1),
               "process_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("engine", choices=["grid", "llama-cpp"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--adapter-rank", type=int, default=0)
    ap.add_argument("--weights", default="", help="grid: --weights native|f16|f32|quantized")
    a = ap.parse_args()
    if a.engine == "grid":
        bench_grid(a.args[0], a.args[1], a.runs, a.max_tokens, a.adapter_rank, a.weights)
    else:
        bench_llama_cpp(a.args[0], a.runs, a.max_tokens)


if __name__ == "__main__":
    sys.exit(main())
