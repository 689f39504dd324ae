#!/usr/bin/env python3
"""Time `grid worker generate` and, for comparison, llama-cpp-python on one GGUF and prompt.

Usage:
    python3 tools/llm_bench.py grid GRID_BINARY MODEL.gguf [--runs N] [--max-tokens N]
    PY_WITH_LLAMA_CPP tools/llm_bench.py llama-cpp MODEL.gguf [--runs N] [--max-tokens N]

Both send the same prompt as one user turn through the GGUF's chat template, decode
greedily (temperature 0) and stream. Measured on the client side, per run:
    ttft_ms   from sending the request to the first streamed text piece
    decode    (pieces - 1) / (time of last piece - time of first piece), pieces per second
              (a piece is one streamed chunk; both stream one token per chunk)
The grid worker's own numbers (its Done frame) are printed too. The first run is a warm-up
and is not averaged. Standard library only for `grid` (the frames are decoded here:
4-byte big-endian length + postcard body, see tools/src/llm_worker.rs).
"""

import argparse
import json
import statistics
import struct
import subprocess
import sys
import time

PROMPT = "Write a short story about a lighthouse keeper."


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

    def f64(self):
        (v,) = struct.unpack_from("<d", self.d, self.i)
        self.i += 8
        return v


def encode_request(prompt, max_tokens, temperature, seed):
    p = prompt.encode()
    body = varint(len(p)) + p + varint(max_tokens) + struct.pack("<f", temperature) + varint(seed)
    return struct.pack(">I", len(body)) + body


def read_frame(f):
    head = f.read(4)
    if len(head) < 4:
        raise EOFError("worker ended")
    (n,) = struct.unpack(">I", head)
    r = Reader(f.read(n))
    kind = r.varint()
    if kind == 0:
        return "token", r.string()
    if kind == 1:
        done = {"text": r.string(), "prompt_tokens": r.varint(), "completion_tokens": r.varint(),
                "token_frames": r.varint(), "finish_reason": r.string(),
                "first_token_ms": r.f64(), "total_ms": r.f64(), "decode_tokens_per_s": r.f64()}
        return "done", done
    return "failed", r.string()


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


def bench_grid(binary, model, runs, max_tokens):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "worker", "generate", "--model", model],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    results = []
    load_plus_first = None
    for i in range(runs):
        start = time.perf_counter()
        p.stdin.write(encode_request(PROMPT, max_tokens, 0.0, 1))
        p.stdin.flush()
        times = []
        while True:
            kind, v = read_frame(p.stdout)
            if kind == "token":
                times.append(time.perf_counter())
            elif kind == "done":
                done = v
                break
            else:
                raise SystemExit("failed: " + v)
        if i == 0:
            load_plus_first = (times[0] - t0) * 1e3
        results.append({
            "ttft_ms": (times[0] - start) * 1e3,
            "decode": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "pieces": len(times),
            "worker": {k: v for k, v in done.items() if k != "text"},
            "text": done["text"][:80],
        })
    hwm = None
    try:
        with open("/proc/{}/status".format(p.pid)) as f:
            hwm = [line.split()[1] for line in f if line.startswith("VmHWM:")][0]
    except (OSError, IndexError):
        pass
    p.stdin.close()
    p.wait()
    summarize("grid worker generate (mistralrs 0.8.1)", results,
              {"spawn_load_and_first_token_ms": round(load_plus_first, 1),
               "worker_peak_rss_kb": hwm})


def bench_llama_cpp(model, runs, max_tokens):
    from llama_cpp import Llama  # noqa: import here so `grid` mode needs only the stdlib
    import os
    t0 = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=2048, n_threads=os.cpu_count(), seed=1, verbose=False)
    load_ms = (time.perf_counter() - t0) * 1e3
    results = []
    for _ in range(runs):
        # Forget the previous run's KV cache: otherwise llama-cpp-python reuses the shared
        # prompt prefix and the first token comes without evaluating the prompt (the grid
        # worker runs with mistralrs's prefix cache off).
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
    a = ap.parse_args()
    if a.engine == "grid":
        bench_grid(a.args[0], a.args[1], a.runs, a.max_tokens)
    else:
        bench_llama_cpp(a.args[0], a.runs, a.max_tokens)


if __name__ == "__main__":
    sys.exit(main())
