"""``prm-fire branch``: branch one problem from an insertion point and write the tree JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_fire.sampling import FireConfig, SamplingConfig


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    d, f = SamplingConfig(), FireConfig()
    g = p.add_argument_group("sampling (regular part applies to every token after the first)")
    g.add_argument("--temperature", type=float, default=d.temperature)
    g.add_argument("--top-p", type=float, default=d.top_p)
    g.add_argument("--top-k", type=int, default=d.top_k)
    g.add_argument("--min-p", type=float, default=d.min_p)
    g.add_argument("--max-new-tokens", type=int, default=256)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--hot-temperature", type=float, default=f.temperature, help="FIRE first-token temperature")
    g.add_argument("--hot-top-k", type=int, default=f.top_k, help="FIRE first token among this many")


def _sampling(args: argparse.Namespace, method: str) -> SamplingConfig:
    fire = FireConfig(temperature=args.hot_temperature, top_k=args.hot_top_k) if method == "fire" else None
    return SamplingConfig(
        method=method,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        fire=fire,
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``branch`` and its options."""
    b = sub.add_parser("branch", help="branch one problem from an insertion point; write the tree JSON")
    src = b.add_argument_group("problem and response")
    src.add_argument("--data", type=Path, help="data file (MATH/MATH-500/GSM8K JSONL, ProcessBench JSON); "
                     "default: the problems shipped with the package")
    src.add_argument("--id", help="problem id in --data (default: the first problem)")
    resp = src.add_mutually_exclusive_group()
    resp.add_argument("--response", help="the response to cut (default: sampled greedily by the model)")
    resp.add_argument("--response-file", type=Path, help="file holding the response to cut")
    src.add_argument("--response-max-new-tokens", type=int, default=512,
                     help="length limit of the sampled base response")
    src.add_argument("--point", default="line2", help="insertion point: line1, line2, line3, ... or prm")
    src.add_argument("--first-error", type=int, help="0-based first incorrect step, for --point prm")
    src.add_argument("--step-mode", choices=["line", "paragraph"], default="line")
    gen = b.add_argument_group("generation")
    gen.add_argument("--model", default="smollm2-135m", help="embedded key, HF folder or hub id")
    gen.add_argument("--backend", default="hf", help="generator backend (registered name)")
    gen.add_argument("--n", type=int, default=10, help="branches per method")
    gen.add_argument("--method", choices=["fire", "regular", "both"], default="both")
    _add_sampling_args(b)
    b.add_argument("--out", type=Path, default=Path("out/tree.json"), help="where to write the tree JSON")


def _pick_problem(args: argparse.Namespace):
    from prm_fire.problems import find_problem, load_builtin, load_problems

    problems = load_problems(args.data) if args.data else load_builtin()
    if not problems:
        raise SystemExit(f"error: {args.data or 'builtin problems'}: no problems")
    return find_problem(problems, args.id) if args.id else problems[0]


def _print_summary(bset, summary) -> None:
    print(f"\n== {summary.method}: {summary.n} branches from {summary.point} "
          f"({bset.prefix.kept_steps} steps kept) ==")
    print(f"first tokens ({summary.distinct_first_tokens} distinct): {[b.first_token for b in bset.branches]}")
    print(f"answers ({summary.effective_answers} distinct): {[b.answer for b in bset.branches]}")
    passes = ", ".join(f"pass@{k}={v:.3f}" for k, v in summary.pass_at.items())
    print(f"correct: {summary.correct}/{summary.n}  {passes}")


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire branch``."""
    from prm_fire.branching import branch, grade_branch
    from prm_fire.generators import make_generator
    from prm_fire.prefixes import build_prefix, check_point
    from prm_fire.prompts import build_messages
    from prm_fire.tree import add_branch_set, add_response, new_tree, save_tree, summarize

    check_point(args.point)
    problem = _pick_problem(args)
    print(f"problem {problem.id} (gold answer: {problem.answer})\n{problem.question}\n")
    generator = make_generator(args.backend, args.model, progress=True)
    tree = new_tree(problem)

    if args.response is not None or args.response_file is not None:
        text = args.response if args.response is not None else args.response_file.read_text()
        origin, grade = "given", None
    else:
        print(f"sampling a base response greedily with {args.model} ...")
        greedy = SamplingConfig(method="regular", temperature=0, max_new_tokens=args.response_max_new_tokens)
        base = generator.branch(build_messages(problem), "", 1, greedy)[0]
        graded = grade_branch(problem, build_prefix(base.text, "line1"), base)
        text, origin, grade = base.text, f"sampled:{args.model}", graded.grade
    print(f"response:\n{text}\n")
    response_id = add_response(tree, text, origin=origin, step_mode=args.step_mode, grade=grade,
                               first_error_index=args.first_error)
    prefix = build_prefix(text, args.point, step_mode=args.step_mode, first_error_index=args.first_error,
                          problem_id=problem.id)
    print(f"prefix at {args.point}:\n{prefix.text!r}")

    methods = ["fire", "regular"] if args.method == "both" else [args.method]
    for method in methods:
        bset = branch(problem, prefix, n=args.n, sampling=_sampling(args, method), generator=generator)
        prefix_id = add_branch_set(tree, response_id, bset)
        _print_summary(bset, summarize(tree, prefix_id, method))
    path = save_tree(tree, args.out)
    print(f"\ntree written to {path}")
    return 0
