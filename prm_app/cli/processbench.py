"""``prm-fire processbench``: score a ProcessBench split with a registered PRM; write JSONL, JSON, markdown.

Options reach the scorer's pydantic config as ``--prm-option key=value`` (repeatable): the value is
read as JSON when it parses (``m=4``, ``generator_options={"threads": 2}``), else as a string
(``estimate=soft``), and the scorer's ``Config`` validates it (an unknown key or a bad value is an
error naming it). Per-item results go to ``<out>.jsonl`` as they are scored; running the same command
again resumes. The summary goes to ``<out>.json`` and ``<out>.md`` (with the floors on the same items);
``prm-fire processbench-report <out>.jsonl`` writes them again from the results file alone.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from prm_app.cli.checks import Problems, at_least, checked_prm_options, fraction


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``processbench`` and its options."""
    from prm_app.evaluation.processbench import SPLITS

    p = sub.add_parser("processbench", help="evaluate a PRM on ProcessBench (first-error accuracy, F1)")
    p.add_argument("--prm", required=True, help="scorer name in the PRMS registry (label, symbolic, rollout, ...)")
    p.add_argument("--prm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a field of the scorer's config (repeatable); VALUE is JSON or a string")
    p.add_argument("--split", required=True, choices=SPLITS,
                   help="ProcessBench split; ../shared/data/processbench holds gsm8k, math and olympiadbench, not "
                        "omnimath (put omnimath.json from the hub's Qwen/ProcessBench in --data-dir to use it)")
    subset = p.add_mutually_exclusive_group()
    subset.add_argument("--limit", type=at_least(1), help="score the first N items only (>= 1)")
    subset.add_argument("--sample", type=at_least(1), metavar="N",
                        help="score N items drawn at random (seeded by --seed), in the drawn order")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--threshold", type=fraction,
                     help="a step below it is wrong, in [0, 1] (default: the scorer's, else 0.5)")
    how.add_argument("--sweep", action="store_true", help="also report thresholds 0.05 ... 0.95 (no rescoring)")
    p.add_argument("--batch", type=at_least(1), default=16,
                   help="items per scorer call (scorers with score_many, e.g. critic, rollout: one engine call); "
                        "a kill loses at most one batch (default 16)")
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data/processbench"),
                   help="folder of <split>.json files")
    p.add_argument("--out", type=Path, help="results stem (default results/processbench/<prm>-<split>[-<N>])")


def _stem(args: argparse.Namespace) -> Path:
    suffix = (f"-{args.limit}" if args.limit is not None else "") + (
        f"-sample{args.sample}-seed{args.seed}" if args.sample is not None else "")
    return args.out or Path("results/processbench") / f"{args.prm}-{args.split}{suffix}"


def check(args: argparse.Namespace) -> tuple[dict[str, Any], Path, list]:
    """Check the scorer name and options, a model/backend they name, and the data file; nothing is built."""
    from prm_app.preflight import InputError, check_output, check_size
    from prm_fire.problems import DataError, load_processbench

    problems = Problems()
    items = []
    options = checked_prm_options(problems, args.prm, args.prm_option)
    data = args.data_dir / f"{args.split}.json"
    stem = _stem(args)
    with problems.check():
        for suffix in (".jsonl", ".json", ".md"):
            check_output(stem.with_name(stem.name + suffix), where="--out" if args.out else "results stem")
    with problems.check():
        if data.is_dir():
            raise InputError(f"--data-dir/--split: {data}: is a folder")
        if not data.exists():
            held = sorted(p.stem for p in args.data_dir.glob("*.json")) if args.data_dir.is_dir() else []
            raise InputError(f"--data-dir/--split: {data}: no such file" + (
                f" ({args.data_dir} holds {', '.join(held)}; ProcessBench's other splits come from the hub's "
                "Qwen/ProcessBench)" if held else ""))
        check_size(data, where="--data-dir/--split")
        try:
            items = load_processbench(data, limit=args.limit)
        except DataError as err:
            raise InputError(f"--data-dir/--split: {err}") from None
    problems.raise_if_any()
    return options, data, items


def standing(args: argparse.Namespace) -> str:
    """How many items the results file holds (each scored item is a line), and how to resume."""
    from prm_fire.journal import complete_lines

    results = _stem(args).with_name(_stem(args).name + ".jsonl")
    scored = max(len(complete_lines(results)) - 1, 0)  # the first line is the run's header
    return f"{results} holds {scored} scored items; rerun the same command to resume"


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire processbench``."""
    from prm_app.experiments.resources import build_scorer
    from prm_app.evaluation.processbench import (
        RunHeader, evaluate, markdown, percent_text, sample_items, summarize, write_report,
    )

    started = time.perf_counter()
    options, data, items = check(args)
    if args.sample is not None:
        items = sample_items(items, args.sample, args.seed)
    scorer = build_scorer(args.prm, options, items=items)
    threshold = args.threshold
    if threshold is None:
        threshold = getattr(getattr(scorer, "config", None), "threshold", 0.5)
    if not 0 <= threshold <= 1:
        raise ValueError(f"--threshold must be in [0, 1], got {threshold}")
    stem = _stem(args)
    results_path = stem.with_name(stem.name + ".jsonl")
    header = RunHeader(prm=args.prm, options=options, data=str(data),
                       sample=None if args.sample is None else f"{args.sample} items, seed {args.seed}")
    results = evaluate(scorer, items, results_path, header, progress=True, batch=args.batch)
    summary = summarize(results, header, split=args.split, results_path=str(results_path), threshold=threshold,
                        do_sweep=args.sweep, wall_seconds=time.perf_counter() - started)
    write_report(summary, stem)
    table = markdown(summary)
    m = summary.metrics
    print(table)
    print(f"F1 {percent_text(m.f1)}  (erroneous-subset accuracy {percent_text(m.acc_erroneous)}, all-correct accuracy "
          f"{percent_text(m.acc_correct)}, threshold {m.threshold:g}, {m.items} items)")
    if summary.gain_over_answer_only is not None:
        print(f"F1 {summary.gain_over_answer_only:+.1f} points over the answer-only floor "
              f"({percent_text(summary.floors['answer-only'].f1)}) on the same items")
    if summary.best is not None:
        print(f"best swept threshold {summary.best.threshold:g}: F1 {percent_text(summary.best.f1)}")
    print(f"results: {results_path}, {stem.name}.json, {stem.name}.md")
    return 0
