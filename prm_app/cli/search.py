"""``prm-fire search``: re-branch a wrong solution at its first flagged step until a branch is right or the
token budget is spent; write the tree (depth > 1) as JSON and HTML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prm_app.cli.checks import Problems, add_problem_arguments, chosen_problem, at_least, checked_prm_options, field_value
from prm_fire.sampling import FireConfig, SamplingConfig

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_PROBLEM = "builtin/3"
"""Where a search without ``--id`` starts: the first builtin problem the default model answers wrong greedily
(measured: qwen2.5-coder-0.5b's greedy answers to builtin/1 and builtin/2 are right, to builtin/3 it says 5,
not 8)."""
SCAN = 10
"""Without ``--id`` and a response: the most problems ``search`` answers greedily to find one to search."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``search`` and its options."""
    from prm_fire.search.select import SELECTIONS

    s = sub.add_parser("search", help="re-branch a wrong solution at located errors until a branch is right "
                                      "or the token budget is spent; write the tree JSON and HTML")
    src = s.add_argument_group("problem and starting response")
    add_problem_arguments(src, default=DEFAULT_PROBLEM, more=f"; without --id and --response the model answers "
                          f"greedily from there on, at most {SCAN} problems, and the search starts from the first "
                          "wrong answer; if every answer is right it exits 1")
    resp = src.add_mutually_exclusive_group()
    resp.add_argument("--response", help="the (wrong) response the search starts from")
    resp.add_argument("--response-file", type=Path, help="file holding the response the search starts from")
    src.add_argument("--response-max-new-tokens", type=field_value(SamplingConfig, "max_new_tokens", method="regular"),
                     default=512, help="without --response: length limit of the model's greedy response")
    how = s.add_argument_group("search")
    how.add_argument("--budget", type=at_least(1), required=True,
                     help="tokens (branches and a model scorer's replies); no round starts past it")
    how.add_argument("--strategy", choices=["search", "best-of-n"], default="search",
                     help="'best-of-n': every round samples from scratch (the baseline)")
    how.add_argument("--method", choices=["fire", "regular"], default="fire")
    how.add_argument("--n", type=at_least(1), default=4, help="branches per expansion")
    how.add_argument("--width", type=at_least(1), default=2, help="expansions per round (one engine call)")
    how.add_argument("--cut", default="prm", help="where a wrong node is cut: prm (the scorer's first flagged "
                     "step), entropy-line (the policy's most uncertain line; no scorer, HF weights) or line<k>")
    how.add_argument("--select", choices=SELECTIONS.names(), default="deepest", help="which wrong nodes go next")
    how.add_argument("--prm", default="reference", help="scorer in the PRMS registry (reference reads the "
                     "problem's worked solution; critic needs none)")
    how.add_argument("--prm-option", action="append", default=[], metavar="KEY=VALUE",
                     help="a field of the scorer's config (repeatable); VALUE is JSON or a string")
    gen = s.add_argument_group("generation")
    gen.add_argument("--model", default=DEFAULT_MODEL, help="embedded key, HF folder or hub id")
    gen.add_argument("--backend", default="hf", help="generator backend (registered name)")
    d, f = SamplingConfig(), FireConfig()
    gen.add_argument("--temperature", type=field_value(SamplingConfig, "temperature", method="regular"),
                     default=d.temperature)
    gen.add_argument("--top-p", type=field_value(SamplingConfig, "top_p", method="regular"), default=d.top_p)
    gen.add_argument("--max-new-tokens", type=field_value(SamplingConfig, "max_new_tokens", method="regular"),
                     default=512)
    gen.add_argument("--seed", type=field_value(SamplingConfig, "seed", method="regular"), default=d.seed,
                     help="expansion k of the problem draws from stream_seed(seed, problem id, 'search/k')")
    gen.add_argument("--hot-temperature", type=field_value(FireConfig, "temperature"), default=f.temperature)
    gen.add_argument("--hot-top-k", type=field_value(FireConfig, "top_k"), default=f.top_k)
    s.add_argument("--out", type=Path, default=Path("out/search.json"),
                   help="where to write the tree JSON (the HTML page goes beside it, .html)")


def _config(args: argparse.Namespace):
    from prm_fire.search import SearchConfig

    fire = FireConfig(temperature=args.hot_temperature, top_k=args.hot_top_k) if args.method == "fire" else None
    sampling = SamplingConfig(method=args.method, temperature=args.temperature, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens, seed=args.seed, fire=fire)
    return SearchConfig(strategy=args.strategy, budget=args.budget, n=args.n, width=args.width, cut=args.cut,
                        select=args.select, sampling=sampling)


def check(args: argparse.Namespace):
    """Check every input without loading a model; returns (problem, response or None, config, scorer options)."""
    from pydantic import ValidationError

    from prm_app.preflight import InputError, Request, check_requests, kv_bytes, read_text
    from prm_fire.prompts import build_messages
    from prm_fire.search.cuts import make_cut

    problems = Problems()
    problem = response = config = shape = None
    options: dict = {}
    with problems.check():
        problem = chosen_problem(args, default=DEFAULT_PROBLEM)
    with problems.check():
        if problem is not None and problem.answer is None:
            raise InputError(f"--id: problem {problem.id!r} has no gold answer: a search stops at a correct branch")
    with problems.check():
        if args.response_file is not None:
            response = read_text(args.response_file, where="--response-file")
        elif args.response is not None:
            response = args.response
    cut = None
    with problems.check():
        try:
            cut = make_cut(args.cut)
        except ValueError as err:
            raise InputError(f"--cut: {err}") from None
    if cut is not None:
        with problems.check():
            try:
                config = _config(args)
            except ValidationError as err:
                first = err.errors()[0]
                raise InputError(f"--{'.'.join(map(str, first['loc'])).replace('_', '-')}: {first['msg']}") from None
    uses_scorer = args.strategy == "search" and (cut is None or cut.needs_scores)
    candidates = [problem]
    if problem is not None and response is None and args.id is None:
        candidates = _candidates(args, problem, needs_solution=uses_scorer and args.prm in ("reference", "combined"))
    options = checked_prm_options(problems, args.prm, args.prm_option)  # a bad name is an error even if unused
    if uses_scorer:
        with problems.check():
            if args.prm in ("reference", "combined") and problem is not None and not problem.solution:
                raise InputError(f"--prm {args.prm}: problem {problem.id!r} has no reference solution to check against")
    with problems.check():  # room for the whole budget's branches
        from prm_app.preflight import check_tree_output

        check_tree_output(args.out, args.budget + args.max_new_tokens * args.n * args.width
                          + args.response_max_new_tokens)
    shape = problems.engine(args.backend, args.model)
    with problems.check():
        prompt = tuple(m.content for m in build_messages(problem))
        start = (response,) if response is not None else ()
        longest = (args.response_max_new_tokens if response is None else 0) + args.max_new_tokens
        check_requests(shape, [Request(f"--max-new-tokens: prompt of {p.id} + the starting response, then a branch",
                                       (*(m.content for m in build_messages(p)), *start), longest)
                               for p in candidates],
                       n=args.n * args.width, bytes_per_value=kv_bytes(args.backend, {}),
                       where=f"--n {args.n} x --width {args.width} =")
    problems.raise_if_any()
    return candidates, response, config, (options if uses_scorer else None)


def _candidates(args: argparse.Namespace, first, *, needs_solution: bool) -> list:
    """Without ``--id`` and a response: ``first`` and the problems after it in its pool that a search can
    take (a gold answer; a worked solution for a scorer that reads one), :data:`SCAN` at most."""
    from prm_app.preflight import read_problems
    from prm_fire.problems import load_builtin

    pool = read_problems(args.data) if args.data else load_builtin()
    start = next(i for i, p in enumerate(pool) if p.id == first.id)
    return [first] + [p for p in pool[start + 1:] if p.answer is not None
                      and (p.solution or not needs_solution)][: SCAN - 1]


def standing(args: argparse.Namespace) -> str:
    """Where an interrupted ``search`` stands (the tree is written only at the end)."""
    return f"nothing written (the tree goes to {args.out} when the search ends); rerun the same command to start again"


def engines(args: argparse.Namespace, options: dict | None) -> tuple[Any, Any]:
    """The policy engine and the scorer (None without ``--prm``), built where every entry point builds them
    (:mod:`prm_app.experiments.resources`): a scorer whose ``--prm-option model=`` names another model
    gets its own engine, built when it first scores."""
    from prm_app.experiments.resources import build_generator, build_scorer

    generator = build_generator(args.backend, args.model, progress=True)
    return generator, None if options is None else build_scorer(args.prm, options, policy=generator)


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire search``."""
    candidates, response, config, options = check(args)
    problem = candidates[0]

    from prm_fire.branching import grade_branch
    from prm_fire.prefixes import Prefix
    from prm_fire.prompts import build_messages
    from prm_fire.search import make_cut, run_searches, start_search
    from prm_fire.tree import save_tree
    from prm_fire.view import write_html

    print(f"problem {problem.id} (gold answer: {problem.answer})\n{problem.question}\n")
    generator, scorer = engines(args, options)
    origin = "given"
    greedy = SamplingConfig(method="regular", temperature=0, max_new_tokens=args.response_max_new_tokens)
    for problem in candidates if response is None else []:
        if problem is not candidates[0]:
            print(f"\nno --id given: the next problem, {problem.id} (gold answer: {problem.answer})\n"
                  f"{problem.question}\n")
        print(f"answering greedily with {args.model} ...")
        base = generator.branch(build_messages(problem), "", 1, greedy)[0]
        verdict = grade_branch(problem, Prefix(point="line1", text="", kept_steps=0), base)
        print(f"greedy answer {verdict.answer}: {'correct' if verdict.correct else 'wrong'}")
        if not verdict.correct or args.id is not None:  # a problem named with --id is searched as it is
            response, origin = base.text, f"sampled:{args.model}:greedy"
            break
    else:
        if response is None:
            from prm_app.cli.checks import report

            ids = ", ".join(p.id for p in candidates)
            report([f"nothing to search: {args.model} answers all {len(candidates)} problems tried greedily right "
                    f"({ids}); name one with --id or give a wrong --response"])
            return 1
    cut = make_cut(config.cut, generator=generator, model=args.model)  # a cut that reads the policy takes these
    s = start_search(problem, response, config, model=generator.model_name, scorer=scorer, origin=origin, cut=cut)
    run_searches([s], generator)
    result = s.result()
    for r in result.rounds:
        print(f"round {r.index}: expanded {', '.join(r.expanded)}; {r.sequences} branches, {r.generated_tokens} "
              f"tokens (+{r.scorer_tokens} scorer), {r.correct} correct; {r.tokens_after} tokens spent")
    if result.stop == "root-correct":
        print("the starting response is already correct: nothing to search")
    elif result.first_correct is not None:
        fc = result.first_correct
        print(f"solved: {fc.node_id} after {fc.tokens} tokens (round {fc.round}), tree depth {result.depth}")
    else:
        print(f"not solved within {config.budget} tokens ({result.tokens_spent} spent), tree depth {result.depth}")
    path = save_tree(s.tree, args.out)
    page = write_html(s.tree, path.with_suffix(".html"))
    print(f"tree written to {path} and {page} (open it in a browser)")
    return 0
