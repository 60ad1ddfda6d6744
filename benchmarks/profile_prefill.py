"""Where the time of one HF branching call goes: prefill of the shared prompt vs the decode steps.

Explains the HF "ours / naive" ratio of ``benchmarks/branching.py``: the shared-prefix path saves
only the naive baseline's (n-1) extra prefills, so its best speed-up is
``(prefill(n x L) + D) / (prefill(1 x L) + D)`` with D the decode time of the n branches.

    python benchmarks/profile_prefill.py --model smollm2-135m
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
    p.add_argument("--decode-steps", type=int, default=16, help="decode steps timed (cost per step reported)")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from prm_fire.generators.hf import HFGenerator

    gen = HFGenerator(args.model)
    ids = torch.tensor([gen.encode(*workload(args.model))])

    def timed(fn) -> float:
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    with torch.inference_mode():
        prefill_1 = timed(lambda: gen.model(ids, use_cache=True, logits_to_keep=1))
        prefill_n = timed(lambda: gen.model(ids.expand(args.n, -1), use_cache=True, logits_to_keep=1))
        out = gen.model(ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(args.n)
        token = torch.zeros(args.n, 1, dtype=torch.long) + int(out.logits[0, -1].argmax())

        def decode() -> None:
            nonlocal cache
            for _ in range(args.decode_steps):
                step = gen.model(token, past_key_values=cache, use_cache=True, logits_to_keep=1)
                cache = step.past_key_values

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            decode()
            step_s = (time.perf_counter() - t0) / args.decode_steps

    decode_s = step_s * args.new_tokens
    result = {
        "model": args.model, "prompt_tokens": ids.shape[1], "n": args.n,
        "prefill_1_s": round(prefill_1, 3), "prefill_n_s": round(prefill_n, 3),
        "decode_step_s": round(step_s, 4), "decode_total_s": round(decode_s, 2),
        "best_speedup_from_sharing": round((prefill_n + decode_s) / (prefill_1 + decode_s), 3),
    }
    print(json.dumps(result, indent=2))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
