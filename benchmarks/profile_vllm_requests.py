"""What our vLLM backend's requests cost against plain ``SamplingParams(n=...)``, on one engine.

Same prompt as ``benchmarks/branching.py``; n=10, 128 tokens, EOS ignored, median of 2 runs each:
plain ``n=10``; 10 requests with one seed each; 10 seeded requests with ``logprobs=20``; the FIRE
phase-1 look request (max_tokens=1, logprobs=16) alone.

    ~/.cache/prm-fire/venv-vllm/bin/python benchmarks/profile_vllm_requests.py --model smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from branching import workload


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--new-tokens", type=int, default=128)
    args = p.parse_args()

    from vllm import SamplingParams, TokensPrompt

    from prm_fire.generators.vllm import VLLMGenerator
    from prm_fire.sampling import branch_seed

    gen = VLLMGenerator(args.model)
    prompt = TokensPrompt(prompt_token_ids=gen.encode(*workload(args.model)))
    n, m = args.n, args.new_tokens

    def each(**kw):
        return [SamplingParams(temperature=0.7, max_tokens=m, ignore_eos=True, detokenize=False,
                               seed=branch_seed(0, i), **kw) for i in range(n)]

    cases = {
        "plain n=10": lambda: gen.llm.generate([prompt], SamplingParams(n=n, temperature=0.7, max_tokens=m,
                                                                          ignore_eos=True), use_tqdm=False),
        "10 seeded requests": lambda: gen.llm.generate([prompt] * n, each(), use_tqdm=False),
        "10 seeded requests, logprobs=20": lambda: gen.llm.generate([prompt] * n, each(logprobs=20), use_tqdm=False),
        "10 seeded requests, stop ids + allowed ids": lambda: gen.llm.generate(
            [prompt] * n, each(stop_token_ids=sorted(gen.eos), allowed_token_ids=list(range(gen.vocab_size))),
            use_tqdm=False),
        "phase-1 look (max_tokens=1, logprobs=16)": lambda: gen.llm.generate(
            [prompt], SamplingParams(max_tokens=1, temperature=0, logprobs=16, detokenize=False), use_tqdm=False),
    }
    cases["plain n=10"]()  # warm-up
    out = {}
    for name, fn in cases.items():
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(runs), 2)
        print(f"{name}: {out[name]} s", flush=True)
    print(json.dumps(out))
    gen.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
