"""What our vLLM backend's requests cost against plain ``SamplingParams(n=...)``, on one engine.

Same prompt as ``benchmarks/branching.py``; n=10, 128 tokens, EOS ignored, median of ``--runs`` runs
each, every case once per round in a rotated order: plain ``n=10``; 10 requests with one seed each; 10 seeded requests with ``logprobs=20``; with the
three ways to mask output rows past the tokenizer (vLLM's ``allowed_token_ids`` list, a ``logit_bias``
of -100 on those rows, our guard processor's one ``extra_args`` integer; on a model without such rows,
qwen's 271 rows are pretended: the ids of its last 271 rows); the FIRE phase-1 look request
(max_tokens=1, logprobs=16) alone.

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
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()

    from vllm import SamplingParams, TokensPrompt

    from prm_fire.generators.vllm import GUARD_KEY, VLLMGenerator
    from prm_fire.sampling import branch_seed

    gen = VLLMGenerator(args.model)
    prompt = TokensPrompt(prompt_token_ids=gen.encode(*workload(args.model)))
    n, m = args.n, args.new_tokens
    rows = gen.output_rows
    cut = gen.vocab_size if gen.guarded else rows - 271  # ids >= cut are masked

    def each(**kw):
        return [SamplingParams(temperature=0.7, max_tokens=m, ignore_eos=True, detokenize=False,
                               seed=branch_seed(0, i), **kw) for i in range(n)]

    cases = {
        "plain n=10": lambda: gen.llm.generate([prompt], SamplingParams(n=n, temperature=0.7, max_tokens=m,
                                                                          ignore_eos=True), use_tqdm=False),
        "10 seeded requests": lambda: gen.llm.generate([prompt] * n, each(), use_tqdm=False),
        "10 seeded requests, logprobs=20": lambda: gen.llm.generate([prompt] * n, each(logprobs=20), use_tqdm=False),
        "10 seeded requests, stop ids + allowed ids": lambda: gen.llm.generate(
            [prompt] * n, each(stop_token_ids=sorted(gen.eos), allowed_token_ids=list(range(cut))), use_tqdm=False),
        "10 seeded requests, stop ids + logit_bias -100": lambda: gen.llm.generate(
            [prompt] * n, each(stop_token_ids=sorted(gen.eos), logit_bias=dict.fromkeys(range(cut, rows), -100.0)),
            use_tqdm=False),
        "10 seeded requests, stop ids + guard processor": lambda: gen.llm.generate(
            [prompt] * n, each(stop_token_ids=sorted(gen.eos), extra_args={GUARD_KEY: cut}), use_tqdm=False),
        "phase-1 look (max_tokens=1, logprobs=16)": lambda: gen.llm.generate(
            [prompt], SamplingParams(max_tokens=1, temperature=0, logprobs=16, detokenize=False), use_tqdm=False),
    }
    cases["plain n=10"]()  # warm-up
    names = list(cases)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.runs):  # every case once per round, the order rotated (a drifting load hits all alike)
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            cases[name]()
            runs[name].append(time.perf_counter() - t0)
    out = {name: round(statistics.median(x), 2) for name, x in runs.items()}
    for name in names:
        print(f"{name}: {out[name]} s ({', '.join(f'{x:.2f}' for x in runs[name])})", flush=True)
    print(json.dumps(out))
    gen.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
