"""Re-branching search against best-of-N at equal tokens, on GSM8K test problems the policy gets wrong greedily.

Stage 1 (``greedy.jsonl``): the policy answers GSM8K test problems in file order at temperature 0 until
``--problems`` of its answers are wrong; those problems, with their wrong greedy answers, are the set.
Stage 2 (``runs.jsonl``): every arm runs on every problem once, at the largest budget; each finished
(arm, problem) is one journal line (the whole :class:`~prm_fire.search.SearchResult`) and its tree is
written as gzipped JSON. Stage 3 (``table.md``, ``solved_vs_tokens.png``, ``curve.json``): solved
versus budget for every budget in ``--report-budgets``, derived from the one run per problem (see
``SearchResult.solved_within``), on the problems every arm has finished; each arm also counted "per
sample" (its rounds' branches one at a time, to the first correct: ``one_sample_rounds``).

Every stage resumes: rerun the same command. Run it from the vLLM venv (``--backend vllm``, the
default) or with ``--backend hf``:

    OMP_NUM_THREADS=1 ~/.cache/prm-fire/venv-vllm/bin/python experiments/search.py
    python experiments/search.py --report-only      # table and plot from the journals so far
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from prm_fire.journal import append_journal, read_journal
from prm_fire.sampling import SamplingConfig
from prm_fire.search import SearchConfig, SearchResult, run_searches, start_search
from prm_fire.search.report import (budget_header, common_problems, contrast_table, flag_summary, flag_table,
                                    markdown_table, one_sample_rounds, paired_contrasts, plot_curves, solved_curve)
from prm_fire.tree import tree_from_json, tree_to_json

REPO = Path(__file__).resolve().parents[1]
LOG = logging.getLogger("search-experiment")

#: arm -> (strategy, method, scorer, what information the arm uses beyond the policy and the outcome oracle)
ARMS: dict[str, tuple[str, str, str | None, str]] = {
    "bon-regular": ("best-of-n", "regular", None, "samples from scratch; nothing else"),
    "bon-fire": ("best-of-n", "fire", None, "samples from scratch; nothing else"),
    "search-fire-reference": ("search", "fire", "reference",
                              "the greedy answer + the problem's **reference solution** (reference checker)"),
    "search-regular-reference": ("search", "regular", "reference",
                                 "the greedy answer + the problem's **reference solution** (reference checker)"),
    "search-fire-critic": ("search", "fire", "critic",
                           "the greedy answer + the policy model as a prompted critic (no reference)"),
}

#: paired contrasts the report gives (first minus second, problem by problem): FIRE from scratch, search with
#: and without the reference against best-of-N with the same sampling, and FIRE inside the search
CONTRASTS: list[tuple[str, str]] = [
    ("bon-fire", "bon-regular"),
    ("search-fire-reference", "bon-fire"),
    ("search-fire-critic", "bon-fire"),
    ("search-fire-reference", "search-regular-reference"),
    # Below ~1,100 tokens a best-of-N round of 4 full samples cannot finish; counted per sample it can. The
    # search's rounds get the same accounting (one branch at a time, to the first correct) on both sides.
    ("search-fire-reference, per sample", "bon-fire, per sample"),
    ("search-fire-critic, per sample", "bon-fire, per sample"),
]


class GreedyRecord(BaseModel):
    """One problem's greedy answer by the policy."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    text: str
    answer: str | None
    correct: bool
    tokens: int
    finish_reason: str


class RunRecord(BaseModel):
    """One arm on one problem."""

    model_config = ConfigDict(frozen=True)

    arm: str
    result: SearchResult
    seconds: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/gsm8k/test.jsonl")
    p.add_argument("--problems", type=int, default=60, help="wrong-greedy problems to study")
    p.add_argument("--scan-limit", type=int, default=400, help="at most this many problems answered greedily")
    p.add_argument("--model", default="qwen2.5-coder-0.5b")
    p.add_argument("--backend", default="vllm")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    p.add_argument("--budget", type=int, default=6000, help="tokens per problem and arm (the largest budget)")
    p.add_argument("--report-budgets", default="250,500,1000,1500,2000,3000,4000,6000")
    p.add_argument("--n", type=int, default=2, help="branches per expansion")
    p.add_argument("--width", type=int, default=2, help="expansions per round")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--concurrent", type=int, default=24, help="searches served by one engine call")
    p.add_argument("--chunk", type=int, default=12, help="problems per chunk (arm by arm inside a chunk)")
    p.add_argument("--wave", type=int, default=32, help="greedy answers per engine call")
    p.add_argument("--out-dir", type=Path, default=REPO / "results/search")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--report-name", default="", help="suffix of the report files (a report on some of the arms)")
    args = p.parse_args(argv)
    unknown = [a for a in args.arms.split(",") if a not in ARMS]
    if unknown:
        p.error(f"--arms: unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    return args


def make_engine(args: argparse.Namespace):
    from prm_app.experiments.resources import build_generator

    options = {"max_model_len": 2048, "kv_cache_memory_bytes": 2 << 30} if args.backend == "vllm" else {}
    return build_generator(args.backend, args.model, **options)


def greedy_stage(args: argparse.Namespace, problems, generator) -> list[GreedyRecord]:
    """Answer problems greedily in file order until ``--problems`` answers are wrong (journaled)."""
    from prm_fire.branching import BranchJob, branch_many

    path = args.out_dir / "greedy.jsonl"
    done = read_journal(path, GreedyRecord)
    greedy = SamplingConfig(method="regular", temperature=0, max_new_tokens=args.max_new_tokens)
    position = len(done)
    while sum(not r.correct for r in done) < args.problems and position < min(args.scan_limit, len(problems)):
        wave = problems[position:min(position + args.wave, args.scan_limit)]
        started = time.perf_counter()
        sets = branch_many([BranchJob(problem=p, prefix="", n=1, sampling=greedy) for p in wave], generator=generator)
        for bset in sets:
            b = bset.branches[0]
            record = GreedyRecord(problem_id=bset.problem_id, text=b.text, answer=b.answer, correct=b.correct,
                                  tokens=len(b.token_ids), finish_reason=b.finish_reason)
            append_journal(path, record)
            done.append(record)
        position += len(wave)
        LOG.info("greedy: %d answered, %d wrong (%.0f s for %d)", len(done), sum(not r.correct for r in done),
                 time.perf_counter() - started, len(wave))
    return [r for r in done if not r.correct][: args.problems]


def study_set(args: argparse.Namespace, problems) -> list[GreedyRecord]:
    wrong = [r for r in read_journal(args.out_dir / "greedy.jsonl", GreedyRecord) if not r.correct]
    return wrong[: args.problems]


def run_stage(args: argparse.Namespace, problems, wrong: list[GreedyRecord], generator) -> None:
    """Every arm on every problem of the set, at ``--budget``; journaled as each (arm, problem) ends."""
    from prm_app.experiments.resources import build_scorer

    path = args.out_dir / "runs.jsonl"
    done = {(r.arm, r.result.problem_id) for r in read_journal(path, RunRecord)}
    by_id = {p.id: p for p in problems}
    scorers = {}
    arms = args.arms.split(",")
    for arm in arms:
        name = ARMS[arm][2]
        if name is not None and name not in scorers:
            scorers[name] = build_scorer(name, {"backend": args.backend, "model": args.model} if name == "critic" else {},
                                         policy=generator)
    started: dict[int, float] = {}

    def searches():
        # Chunks of problems, arm by arm inside a chunk: a stop leaves whole chunks behind it, and an engine
        # call mostly carries one arm's rounds. Rounds are synchronous, so a deep-cut search (short branches,
        # many rounds) batched with best-of-N rounds (full-length samples) would wait on them every round.
        for start in range(0, len(wrong), args.chunk):
            for arm in arms:
                for record in wrong[start:start + args.chunk]:
                    if (arm, record.problem_id) in done:
                        continue
                    strategy, method, scorer, _ = ARMS[arm]
                    config = SearchConfig(strategy=strategy, budget=args.budget, n=args.n, width=args.width,
                                          cut="prm", select="deepest",
                                          sampling=SamplingConfig(method=method, max_new_tokens=args.max_new_tokens))
                    s = start_search(by_id[record.problem_id], record.text, config, model=args.model,
                                     scorer=scorers.get(scorer), origin=f"sampled:{args.model}:greedy", tag=arm)
                    started[id(s)] = time.perf_counter()
                    yield s

    def finished(s) -> None:
        result = s.result()
        seconds = time.perf_counter() - started.pop(id(s))
        path_ = tree_path(args, s.tag, result.problem_id)
        path_.parent.mkdir(parents=True, exist_ok=True)
        path_.write_bytes(gzip.compress(tree_to_json(s.tree).encode(), mtime=0))
        append_journal(path, RunRecord(arm=s.tag, result=result, seconds=seconds))
        LOG.info("%s %s: %s after %d tokens, %d rounds, depth %d (%.0f s)", s.tag, result.problem_id,
                 "solved" if result.solved else "not solved", result.spent_within(args.budget), len(result.rounds),
                 result.depth, seconds)

    run_searches(searches(), generator, concurrent=args.concurrent, on_done=finished)


def tree_path(args: argparse.Namespace, arm: str, problem_id: str) -> Path:
    return args.out_dir / "trees" / arm / (problem_id.replace("/", "_") + ".json.gz")


def read_tree(args: argparse.Namespace, arm: str, problem_id: str):
    return tree_from_json(gzip.decompress(tree_path(args, arm, problem_id).read_bytes()).decode())


def report_stage(args: argparse.Namespace) -> None:
    runs = read_journal(args.out_dir / "runs.jsonl", RunRecord)
    arms = [a for a in args.arms.split(",") if any(r.arm == a for r in runs)]
    results = {arm: [r.result for r in runs if r.arm == arm] for arm in arms}
    if not results:
        LOG.info("report: no finished runs yet")
        return
    uses = {arm: ARMS[arm][3] for arm in arms}
    for arm in arms:  # the same runs, every arm's branches counted one at a time to the first correct
        label = f"{arm}, per sample"
        results[label] = [one_sample_rounds(r, read_tree(args, arm, r.problem_id)) for r in results[arm]]
        uses[label] = (f"as {arm}, each round's branches counted one at a time in branch order, up to the first "
                       f"correct (the same finest accounting for every arm)")
    budgets = [int(b) for b in args.report_budgets.split(",")]
    points = solved_curve(results, budgets)
    n = points[0].problems if points else 0
    table = markdown_table(points, uses)
    spent = "\n".join(f"| {arm} | " + " | ".join(f"{p.mean_tokens_spent:.0f}" for p in points if p.arm == arm) + " |"
                      for arm in uses)
    contrasts = paired_contrasts(results, [c for c in CONTRASTS if set(c) <= set(results)], budgets)
    detectable = [c.detectable for c in contrasts if c.detectable is not None]
    ids = common_problems({arm: results[arm] for arm in arms})
    flags = [flag_summary(arm, [read_tree(args, arm, i) for i in ids]) for arm in arms if ARMS[arm][0] == "search"]
    (args.out_dir / f"table{args.report_name}.md").write_text(
        f"Problems solved (of the {n} GSM8K test problems the policy answers wrong greedily that every arm has "
        f"finished) within a budget of B generated tokens per problem (columns); in parentheses the 95% bootstrap "
        f"interval over problems of the solved share.\n\n{table}\n"
        f"Mean tokens spent per problem at each budget:\n\n" + "\n".join(budget_header("arm", budgets)) + f"\n{spent}\n"
        + (f"\nPaired differences of the solved share in points, first arm minus second, problem by problem "
           f"[95% bootstrap interval] (problems only the first / only the second solves):\n\n"
           f"{contrast_table(contrasts)}" if contrasts else "")
        + (f"\nAt the spread of differences seen, a paired test on these {n} problems detects (level 0.05, power "
           f"0.8) differences of {100 * min(detectable):.0f} to {100 * max(detectable):.0f} points.\n"
           if detectable else "")
        + (f"\nWhere each search's scorer put the first flagged step, over the nodes it scored on these {n} "
           f"problems (the cut keeps the steps before it):\n\n{flag_table(flags)}" if flags else ""))
    (args.out_dir / f"curve{args.report_name}.json").write_text("[\n" + ",\n".join(p.model_dump_json() for p in points) + "\n]\n")
    (args.out_dir / f"contrasts{args.report_name}.json").write_text(
        "[\n" + ",\n".join(c.model_dump_json() for c in contrasts) + "\n]\n")
    plot_curves(points, args.out_dir / f"solved_vs_tokens{args.report_name}.png",
                title=f"{args.model}, {n} GSM8K test problems wrong at T=0; n={args.n}, width={args.width}")
    LOG.info("report: %d problems common to %d arms -> %s", n, len(arms), args.out_dir / f"table{args.report_name}.md")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        from prm_fire.problems import load_problems

        problems = load_problems(args.data)
        generator = make_engine(args)
        wrong = greedy_stage(args, problems, generator)
        LOG.info("set: %d problems the policy answers wrong greedily", len(wrong))
        run_stage(args, problems, wrong, generator)
    report_stage(args)
    return 0


if __name__ == "__main__":  # vLLM backends spawn workers: keep the guard
    sys.exit(main())
