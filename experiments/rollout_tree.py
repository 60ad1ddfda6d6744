"""Rollout PRM on a real GSM8K item, stored in a tree JSON next to per-step scores.

Scores GSM8K test item ``--index``'s reference solution (calculator marks dropped, ``#### answer`` kept)
and, for item 0, a copy whose first step is corrupted (16 - 3 - 4 = 7, carried through), adds both
responses under the problem with ``add_scored_response`` and saves the tree. ``--solve-rate N``
also rolls the policy out N times from the bare question (how often it solves the item).

    python experiments/rollout_tree.py --model qwen2.5-coder-0.5b --m 4 --max-new-tokens 160 \\
        --mode binary --solve-rate 4 --out results/rollout/gsm8k-test-0.tree.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from prm_fire.branching import branch
from prm_fire.grader import grade
from prm_fire.problems import load_problems
from prm_fire.sampling import SamplingConfig
from prm_fire.tree import new_tree, save_tree
from prm_models.rollout import RolloutPRM, add_scored_response

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--index", type=int, default=0, help="GSM8K test line (0-based)")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--backend", default="hf")
    p.add_argument("--m", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--mode", choices=["linear", "binary"], default="binary")
    p.add_argument("--estimate", choices=["hard", "soft"], default="hard")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--solve-rate", type=int, default=0, help="rollouts from the bare question (0: skip)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=Path("results/rollout/gsm8k-test-0.tree.json"))
    args = p.parse_args()

    problem = load_problems(args.data / "gsm8k" / "test.jsonl", limit=args.index + 1)[args.index]
    gold = re.sub(r"<<[^>]*>>", "", problem.solution or "") + f"\n#### {problem.answer}"
    responses = [(gold, "dataset")]
    if args.index == 0:
        bad = gold.replace("= 9 duck", "= 7 duck").replace("9 * 2 = $18", "7 * 2 = $14").replace("#### 18", "#### 14")
        responses.append((bad, "given:corrupted-step-0"))

    prm = RolloutPRM(backend=args.backend, model=args.model, m=args.m, max_new_tokens=args.max_new_tokens,
                     mode=args.mode, estimate=args.estimate, seed=args.seed)
    tree = new_tree(problem)
    report: dict = {"problem": problem.id, "gold": problem.answer, "config": prm.config.model_dump(), "responses": []}
    for text, origin in responses:
        scores = prm.score_response(problem, text)
        node = add_scored_response(tree, text, scores, origin=origin, grade=grade(text, problem.answer))
        row = {"node": node, "origin": origin, **scores.model_dump(include={
            "scores", "estimates", "answers", "first_zero_index", "prefix_evaluations", "tokens_generated",
            "seconds", "graded_final"}), "first_error_index": scores.first_error_index}
        report["responses"].append(row)
        print(json.dumps(row))
    if args.solve_rate:
        started = time.perf_counter()
        sampling = SamplingConfig(method="regular", temperature=prm.config.temperature,
                                  max_new_tokens=max(args.max_new_tokens, 256), seed=args.seed)
        result = branch(problem, "", n=args.solve_rate, sampling=sampling, generator=prm.generator)
        report["solve_rate"] = {"n": result.n, "correct": result.n_correct,
                                "answers": [b.answer for b in result.branches],
                                "max_new_tokens": sampling.max_new_tokens,
                                "seconds": time.perf_counter() - started}
        print(json.dumps(report["solve_rate"]))
    path = save_tree(tree, args.out)
    args.out.with_suffix(".report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"tree: {path}")


if __name__ == "__main__":
    main()
