"""llama.cpp's speed on a GGUF file, for scripts/bench-peers.sh: prefill and decode tok/s as its
own server reports them (`timings`), on the CPU, with a prompt of pseudo-random token ids.

Runs llama.cpp's server in process through the `xllamacpp` wheel (a prebuilt llama.cpp; the
server also listens on a loopback port, unused here). One warm-up request, then one timed
request; prints one JSON object.

Usage: python bench-llamacpp.py MODEL.gguf --prompt-len 64 --gen 16 --threads 1
"""
import argparse
import json
import random
import sys

import xllamacpp


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("model")
    args.add_argument("--prompt-len", type=int, default=64)
    args.add_argument("--gen", type=int, default=16)
    args.add_argument("--threads", type=int, default=1)
    args.add_argument("--vocab", type=int, default=32000, help="prompt ids are drawn below this")
    a = args.parse_args()

    params = xllamacpp.CommonParams()
    params.model.path = a.model
    params.n_ctx = max(512, a.prompt_len + a.gen + 16)
    params.n_parallel = 1
    params.cpuparams.n_threads = a.threads
    params.cpuparams_batch.n_threads = a.threads
    server = xllamacpp.Server(params)

    rng = random.Random(0)
    def complete(prompt_len, gen):
        ids = [rng.randrange(256, a.vocab) for _ in range(prompt_len)]
        request = {"prompt": ids, "n_predict": gen, "ignore_eos": True, "temperature": 0,
                   "cache_prompt": False}
        response = server.handle_completions(request)
        if "timings" not in response:
            raise SystemExit(f"llama.cpp answered without timings: {json.dumps(response)[:500]}")
        return response["timings"]

    complete(2, 1)  # warm-up: the first graph build, as our bench warms up its kernels
    t = complete(a.prompt_len, a.gen)
    print(json.dumps({
        "engine": "llama.cpp",
        "where": f"CPU, {a.threads} thread{'s' if a.threads > 1 else ''}",
        "version": f"xllamacpp {xllamacpp.__version__}",
        "model": a.model,
        "prompt_len": t["prompt_n"],
        "gen_tokens": t["predicted_n"],
        "prefill_tok_s": t["prompt_per_second"],
        "decode_tok_s": t["predicted_per_second"],
    }))


if __name__ == "__main__":
    sys.exit(main())
