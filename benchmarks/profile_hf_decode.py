"""Where the HF backend's time goes: a torch profile of one ``branch`` call on the benchmark prefix.

Same workload as ``benchmarks/branching.py`` (MATH test/algebra/2240 + 3 solution lines, n branches,
regular sampling at T=0.7); one untimed 4-token call first, then one plain timed call, then one
profiled call; prints the ops by self CPU time.

    python benchmarks/profile_hf_decode.py --model qwen2.5-coder-0.5b --new-tokens 32
"""

from __future__ import annotations

import argparse
import sys
import time

from branching import workload


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--rows", type=int, default=25, help="ops listed")
    args = p.parse_args()

    from torch.profiler import ProfilerActivity, profile

    from prm_fire.generators.hf import HFGenerator
    from prm_fire.sampling import SamplingConfig

    gen = HFGenerator(args.model)
    ids = gen.encode(*workload(args.model))
    cfg = SamplingConfig(method="regular", temperature=0.7, max_new_tokens=args.new_tokens, seed=1)
    gen.branch_ids(ids, args.n, cfg.model_copy(update={"max_new_tokens": 4}))
    t0 = time.perf_counter()
    branches = gen.branch_ids(ids, args.n, cfg)
    print(f"prompt {len(ids)} tokens; plain call {time.perf_counter() - t0:.1f} s, "
          f"{sum(len(b.token_ids) for b in branches)} tokens", flush=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        branches = gen.branch_ids(ids, args.n, cfg.model_copy(update={"seed": 2}))
    print(f"profiled call {time.perf_counter() - t0:.1f} s, {sum(len(b.token_ids) for b in branches)} tokens")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
