"""``prm-fire branch``: branch one problem from an insertion point; write the tree as JSON and HTML."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from prm_app.cli.checks import Problems, add_problem_arguments, chosen_problem, at_least, field_value, point
from prm_fire.problems import Problem
from prm_fire.sampling import FireConfig, SamplingConfig

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    d, f = SamplingConfig(), FireConfig()
    regular = {"method": "regular"}

    def value(field: str, model: type = SamplingConfig, **context):
        return field_value(model, field, **context)

    g = p.add_argument_group("sampling (regular part applies to every token after the first)")
    g.add_argument("--temperature", type=value("temperature", **regular), default=d.temperature)
    g.add_argument("--top-p", type=value("top_p", **regular), default=d.top_p)
    g.add_argument("--top-k", type=value("top_k", **regular), default=d.top_k)
    g.add_argument("--min-p", type=value("min_p", **regular), default=d.min_p)
    g.add_argument("--max-new-tokens", type=value("max_new_tokens", **regular), default=256)
    g.add_argument("--seed", type=value("seed", **regular), default=d.seed)
    g.add_argument("--hot-temperature", type=value("temperature", FireConfig), default=f.temperature,
                   help="FIRE first-token temperature")
    g.add_argument("--hot-top-k", type=value("top_k", FireConfig), default=f.top_k,
                   help="FIRE first token among this many")


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
    b = sub.add_parser("branch", help="branch one problem from an insertion point; write the tree JSON and HTML")
    src = b.add_argument_group("problem and response")
    add_problem_arguments(src)
    resp = src.add_mutually_exclusive_group()
    resp.add_argument("--response", help="the response to cut (default: see --response-from)")
    resp.add_argument("--response-file", type=Path, help="file holding the response to cut")
    resp.add_argument("--response-from", choices=["solution", "model"],
                      help="without --response: cut the problem's reference solution, or a response the model "
                           "writes greedily (default: the solution when the problem has one, else the model)")
    src.add_argument("--response-max-new-tokens", type=field_value(SamplingConfig, "max_new_tokens", method="regular"),
                     default=512, help="length limit of the sampled base response")
    src.add_argument("--point", type=point, default="line2", help="insertion point: line1, line2, line3, ... or prm")
    src.add_argument("--first-error", type=at_least(0), help="0-based first incorrect step (needed by --point prm)")
    src.add_argument("--step-mode", choices=["line", "paragraph"], default="line")
    gen = b.add_argument_group("generation")
    gen.add_argument("--model", default=DEFAULT_MODEL, help="embedded key, HF folder or hub id")
    gen.add_argument("--backend", default="hf", help="generator backend (registered name)")
    gen.add_argument("--n", type=at_least(1), default=10, help="branches per method (bounded by memory)")
    gen.add_argument("--method", choices=["fire", "regular", "both"], default="both")
    _add_sampling_args(b)
    b.add_argument("--out", type=Path, default=Path("out/tree.json"),
                   help="where to write the tree JSON (the HTML page goes beside it, .html)")


@dataclass(frozen=True)
class Plan:
    """What the checks found: the problem and the response to cut (None: the model writes it)."""

    problem: Problem
    response: str | None
    origin: str


def check(args: argparse.Namespace) -> Plan:
    """Check every input of ``branch`` without loading the model; raise ``InputErrors`` listing the problems."""
    from prm_app.preflight import Request, check_requests, cut_response, kv_bytes, read_text
    from prm_fire.prompts import build_messages

    problems = Problems()
    problem = response = shape = None
    with problems.check():
        problem = chosen_problem(args)
    with problems.check():
        if args.response_file is not None:
            response = read_text(args.response_file, where="--response-file")
        elif args.response is not None:
            response = args.response
        elif args.response_from != "model" and problem is not None and problem.solution:
            response = problem.solution
        elif args.response_from == "solution" and problem is not None:
            from prm_app.preflight import InputError

            raise InputError(f"--response-from solution: problem {problem.id!r} has no reference solution")
    with problems.check():
        if args.point == "prm" and args.first_error is None:
            from prm_app.preflight import InputError

            raise InputError("--point prm needs --first-error K (the 0-based first incorrect step)")
    with problems.check():  # room for every branch at full length
        from prm_app.preflight import check_tree_output

        check_tree_output(args.out, (2 if args.method == "both" else 1) * args.n * args.max_new_tokens
                          + args.response_max_new_tokens)
    shape = problems.engine(args.backend, args.model)

    with problems.check():
        prompt = tuple(m.content for m in build_messages(problem))
        if response is not None:
            prefix = cut_response(response, args.point, step_mode=args.step_mode,
                                  first_error_index=args.first_error, problem_id=problem.id)
            requests = [Request("--point/--response: prompt + prefix, then --max-new-tokens", (*prompt, prefix.text),
                                args.max_new_tokens)]
        else:  # the prefix is cut from the sampled response: at most --response-max-new-tokens long
            requests = [
                Request("--response-max-new-tokens: prompt, then the base response", prompt,
                        args.response_max_new_tokens),
                Request("--response-max-new-tokens + --max-new-tokens: prompt + prefix, then the branches", prompt,
                        args.response_max_new_tokens + args.max_new_tokens),
            ]
        check_requests(shape, requests, n=args.n, bytes_per_value=kv_bytes(args.backend, {}))
    problems.raise_if_any()
    given = args.response is not None or args.response_file is not None
    origin = "given" if given else "dataset" if response is not None else f"sampled:{args.model}"
    return Plan(problem=problem, response=response, origin=origin)


def standing(args: argparse.Namespace) -> str:
    """Where an interrupted ``branch`` stands (the tree is written only at the end)."""
    return (f"nothing written (the tree goes to {args.out} once every branch is graded); "
            "rerun the same command to start again")


def _print_summary(bset, summary) -> None:
    print(f"\n== {summary.method}: {summary.n} branches from {summary.point} "
          f"({bset.prefix.kept_steps} steps kept) ==")
    print(f"first tokens ({summary.distinct_first_tokens} distinct): {[b.first_token for b in bset.branches]}")
    print(f"answers ({summary.effective_answers} distinct): {[b.answer for b in bset.branches]}")
    passes = ", ".join(f"pass@{k}={v:.3f}" for k, v in summary.pass_at.items())
    print(f"correct: {summary.correct}/{summary.n}  {passes}")


def _print_comparison(summaries: list) -> None:
    if len(summaries) < 2:
        return
    ks = sorted(set.intersection(*(set(s.pass_at) for s in summaries)))
    print(f"\n{'method':<8} {'correct':>8} {'distinct answers':>17} {'distinct first tokens':>22} "
          + " ".join(f"{'pass@' + str(k):>9}" for k in ks))
    for s in summaries:
        print(f"{s.method:<8} {f'{s.correct}/{s.n}':>8} {s.effective_answers:>17} {s.distinct_first_tokens:>22} "
              + " ".join(f"{s.pass_at[k]:>9.3f}" for k in ks))


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire branch``."""
    plan = check(args)
    problem = plan.problem

    from prm_fire.branching import branch, grade_branch
    from prm_app.experiments.resources import build_generator
    from prm_app.preflight import cut_response
    from prm_fire.prompts import build_messages
    from prm_fire.tree import add_branch_set, add_response, new_tree, save_tree, summarize
    from prm_fire.view import write_html

    print(f"problem {problem.id} (gold answer: {problem.answer})\n{problem.question}\n")
    generator = build_generator(args.backend, args.model, progress=True)
    tree = new_tree(problem)

    if plan.response is not None:
        text, origin, grade = plan.response, plan.origin, None
        verdict = " (the problem's reference solution)" if origin == "dataset" else ""
    else:
        print(f"sampling a base response greedily with {args.model} ...")
        greedy = SamplingConfig(method="regular", temperature=0, max_new_tokens=args.response_max_new_tokens)
        base = generator.branch(build_messages(problem), "", 1, greedy)[0]
        text = base.text
        graded = grade_branch(problem, cut_response(text, "line1"), base)
        origin, grade = f"sampled:{args.model}", graded.grade
        verdict = f" (answer {graded.answer}: {'correct' if graded.correct else 'wrong'})"
    print(f"response{verdict}:\n{text}\n")
    prefix = cut_response(text, args.point, step_mode=args.step_mode, first_error_index=args.first_error,
                          problem_id=problem.id)
    response_id = add_response(tree, text, origin=origin, step_mode=args.step_mode, grade=grade,
                               first_error_index=args.first_error)
    print(f"prefix at {args.point}:\n{prefix.text!r}")

    methods = ["fire", "regular"] if args.method == "both" else [args.method]
    summaries = []
    for method in methods:
        bset = branch(problem, prefix, n=args.n, sampling=_sampling(args, method), generator=generator)
        prefix_id = add_branch_set(tree, response_id, bset)
        summaries.append(summarize(tree, prefix_id, method))
        _print_summary(bset, summaries[-1])
    _print_comparison(summaries)
    path = save_tree(tree, args.out)
    page = write_html(tree, path.with_suffix(".html"))
    print(f"\ntree written to {path} and {page} (open it in a browser)")
    return 0
