#!/usr/bin/env python3
"""The PyTorch peer for scripts/gpu-check.sh, on the lent GPU (which has CUDA, PyTorch and
transformers but no network): a random-weight LlamaForCausalLM of the Llama 3.1 8B shape in bf16,
greedy decode timed the plain way a transformers user runs it (eager, the dynamic KV cache), and
the device's streaming-read bandwidth measured by CUDA (a sum over a large buffer), so our
Vulkan figures sit beside the vendor stack's in the same run.

Prints one JSON object. Arguments: PROMPT GEN (token counts; default 16 32).
Random weights decode garbage at the real speed; nothing here checks what is decoded.
"""
import json
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def seconds(fn, runs=1):
    """Mean wall-clock seconds of `fn()` over `runs` runs, the GPU synchronised around each."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / runs


def read_bandwidth_gb_s(bytes_=4 << 30):
    """GB/s (10^9) of reading a `bytes_` buffer once: a sum, which reads each word once."""
    x = torch.randn(bytes_ // 4, device="cuda", dtype=torch.float32)
    x.sum()  # warm-up
    t = seconds(lambda: x.sum(), runs=10)
    del x
    return bytes_ / t / 1e9


def main():
    prompt = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    gen = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    config = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    load_start = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).eval()
    torch.cuda.synchronize()
    load_s = time.perf_counter() - load_start
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    # A decode step reads every matrix once; the embedding table only a row.
    step_bytes = weight_bytes - model.model.embed_tokens.weight.numel() * 2
    ids = torch.randint(0, config.vocab_size, (1, prompt), device="cuda")

    def generate(new_tokens):
        with torch.no_grad():
            model.generate(
                ids,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )

    generate(4)  # warm-up: cuBLAS handles, kernels
    first = seconds(lambda: generate(1), runs=3)
    whole = seconds(lambda: generate(gen + 1), runs=2)
    decode_tok_s = gen / (whole - first)
    bandwidth = read_bandwidth_gb_s()
    print(
        json.dumps(
            {
                "peer": "transformers eager, bf16, dynamic cache",
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "load_s": load_s,
                "prompt_tokens": prompt,
                "decode_tokens": gen,
                "prefill_and_first_token_s": first,
                "decode_tok_s": decode_tok_s,
                "weight_bytes_per_token": step_bytes,
                "effective_gb_s": step_bytes * decode_tok_s / 1e9,
                "cuda_read_bandwidth_gb_s": bandwidth,
            }
        )
    )


if __name__ == "__main__":
    main()
