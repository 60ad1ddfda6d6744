"""``prm-fire processbench-report``: rewrite ProcessBench summaries from their results files; no scorer runs.

Each ``<stem>.jsonl`` written by ``prm-fire processbench`` holds every item's scores, label and
``final_answer_correct``, so the metrics, the floors and the late-label accuracies are recomputed from
it alone, and ``<stem>.json`` / ``<stem>.md`` are written again. The threshold, the sweep and the wall
time are kept from the summary already there (``--threshold`` / ``--sweep`` override). Prints one
overview table over all files: each scorer's F1, its gain over the answer-only floor on the same items,
and its exact accuracy on erroneous items with label >= 1 and >= 3.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prm_app.cli.checks import Problems, fraction


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``processbench-report`` and its options."""
    p = sub.add_parser("processbench-report",
                       help="rewrite ProcessBench summaries (.json, .md) from their .jsonl results; no scoring")
    p.add_argument("results", type=Path, nargs="+", metavar="RESULTS.jsonl",
                   help="results files written by prm-fire processbench")
    p.add_argument("--threshold", type=fraction, help="a step below it is wrong (default: the summary's)")
    p.add_argument("--sweep", action="store_true", default=None, help="also report thresholds 0.05 ... 0.95")


def check(args: argparse.Namespace) -> None:
    """Every results file exists and is a .jsonl file."""
    from prm_app.preflight import InputError

    problems = Problems()
    for path in args.results:
        with problems.check():
            if path.suffix != ".jsonl" or not path.is_file():
                raise InputError(f"{path}: {'not a .jsonl results file' if path.is_file() else 'no such file'}")
    problems.raise_if_any()


def standing(args: argparse.Namespace) -> str:
    """Each summary is written whole or not at all; rerun to finish."""
    return "summaries already rewritten are complete; rerun the same command for the rest"


def run(args: argparse.Namespace) -> int:
    """Run ``prm-fire processbench-report``."""
    from prm_app.evaluation.processbench import overview_table, rebuild_report

    check(args)
    summaries = [rebuild_report(path, threshold=args.threshold, do_sweep=args.sweep) for path in args.results]
    print(overview_table(summaries), end="")
    return 0
