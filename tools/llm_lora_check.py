#!/usr/bin/env python3
"""Check the worker's LoRA application against llama.cpp's on the same adapter.

Usage (a Python with llama-cpp-python, numpy and gguf from PyPI):
    cargo build --release -p grid-tools --features llm --example llm_logits
    PY tools/llm_lora_check.py target/release/examples/llm_logits MODEL.gguf \
        [--amplitude A] [--weights f16|f32|quantized]

Writes a PEFT LoRA adapter (rank 8, alpha 16, all seven projections, SmolLM2-135M's
shapes, A and B uniform in [-A, A), A = 0.05 by default), converts it to llama.cpp's LoRA GGUF the way
convert_lora_to_gguf.py does (tensors blk.N.<proj>.weight.lora_a/lora_b, the rows of B
of q_proj/k_proj reordered as convert_hf_to_gguf.py reorders q/k) and once more without
that reorder, and compares next-token logits for one templated prompt:
    - the prompt's token ids (our tokenizer against llama.cpp's);
    - base logits, ours against llama.cpp's;
    - the adapter's effect (adapter logits - base logits), ours against llama.cpp's with
      the reordered B, and against llama.cpp's with B left in Hugging Face's order.
The worker reads the PEFT files; llama.cpp reads the GGUF. Prints JSON.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llm_bench  # noqa: E402  (PROMPT, write_adapter, SMOL)

R, ALPHA, AMP = 8, 16.0, 0.05
GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
              "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute, on the rows of w."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out


def write_gguf_lora(peft_dir, path, reorder):
    import gguf
    layers, hidden, heads, kv, ffn = llm_bench.SMOL
    tensors = read_safetensors(os.path.join(peft_dir, "adapter_model.safetensors"))
    w = gguf.GGUFWriter(path, "llama")
    w.add_type("adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", ALPHA)
    for i in range(layers):
        for hf, gg in GGUF_NAMES.items():
            p = "base_model.model.model.layers.%d.%s" % (i, hf)
            a = tensors[p + ".lora_A.weight"]
            b = tensors[p + ".lora_B.weight"]
            if reorder and hf == "self_attn.q_proj":
                b = permute(b, heads)
            elif reorder and hf == "self_attn.k_proj":
                b = permute(b, kv)
            name = "blk.%d.%s.weight" % (i, gg)
            w.add_tensor(name + ".lora_a", np.ascontiguousarray(a))
            w.add_tensor(name + ".lora_b", np.ascontiguousarray(b))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama_cpp_logits(model, ids, lora=None):
    from llama_cpp import Llama
    kw = {"lora_path": lora} if lora else {}
    llm = Llama(model_path=model, n_ctx=512, logits_all=True, verbose=False, **kw)
    llm.eval(ids)
    return np.array(llm.scores[len(ids) - 1], dtype=np.float64)


def llama_cpp_ids(model, text):
    from llama_cpp import Llama
    llm = Llama(model_path=model, n_ctx=512, vocab_only=True, verbose=False)
    return llm.tokenize(text.encode(), add_bos=False, special=True)


def corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("example")
    ap.add_argument("model")
    ap.add_argument("--amplitude", type=float, default=AMP)
    ap.add_argument("--weights", default="f32")
    a = ap.parse_args()
    example, model = a.example, a.model
    with tempfile.TemporaryDirectory() as d:
        llm_bench.write_adapter(d, R, seed=5, amplitude=a.amplitude, alpha=ALPHA)
        ours = json.loads(subprocess.run([example, model, llm_bench.PROMPT, d, a.weights],
                                         check=True, capture_output=True, text=True).stdout)
        ours_base, ours_ad = np.array(ours["base"]), np.array(ours["adapter"])
        ids = ours["ids"]
        text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                "Hugging Face<|im_end|>\n<|im_start|>user\n" + llm_bench.PROMPT +
                "<|im_end|>\n<|im_start|>assistant\n")
        lc_ids = llama_cpp_ids(model, text)
        lc_base = llama_cpp_logits(model, ids)
        write_gguf_lora(d, os.path.join(d, "lora.gguf"), reorder=True)
        write_gguf_lora(d, os.path.join(d, "lora-hf-order.gguf"), reorder=False)
        lc_ad = llama_cpp_logits(model, ids, os.path.join(d, "lora.gguf"))
        lc_ad_hf = llama_cpp_logits(model, ids, os.path.join(d, "lora-hf-order.gguf"))
    ours_delta, lc_delta, lc_delta_hf = ours_ad - ours_base, lc_ad - lc_base, lc_ad_hf - lc_base
    print(json.dumps({
        "amplitude": a.amplitude,
        "weights": a.weights,
        "prompt_tokens": len(ids),
        "same_token_ids_as_llama_cpp": ids == list(lc_ids),
        "base": {"corr": round(corr(ours_base, lc_base), 6),
                 "max_abs_diff": round(float(np.abs(ours_base - lc_base).max()), 4),
                 "top1_ours_llama_cpp": [int(ours_base.argmax()), int(lc_base.argmax())]},
        "adapter_effect_rms": {"ours": round(float(np.sqrt((ours_delta ** 2).mean())), 4),
                               "llama_cpp": round(float(np.sqrt((lc_delta ** 2).mean())), 4)},
        "adapter_effect_corr": {
            "llama_cpp_B_reordered": round(corr(ours_delta, lc_delta), 6),
            "llama_cpp_B_hf_order": round(corr(ours_delta, lc_delta_hf), 6)},
        "adapter_top1_ours_llama_cpp": [int(ours_ad.argmax()), int(lc_ad.argmax())],
    }, indent=1))


if __name__ == "__main__":
    main()
