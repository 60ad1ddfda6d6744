"""How much of a run's 1st-line branches replay the base response they replace (issue 23).

The 1st-line cut keeps nothing, so a regular branch there is a fresh sample of the same prompt with the
same sampler as the base response: if it also has the base response's seed, it IS the base response.
Per method, over the table's items (the config's first ``insertion.items`` kept items): branches whose
text equals the base response, branches sharing at least half of it as a common start, the accuracy of
branch 0 against branches 1..n-1. A second table gives, for every insertion point, the share of
branches that end at the base response's own answer (over the items whose base response states one):
a cut that keeps the error makes the branches walk back into it. ``--trees`` reads another copy of the
run's trees (e.g. a commit's, via ``git archive``).

    python experiments/line1_replay.py --config cpu-power [--trees DIR] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prm_app.experiments.config import load_config
from prm_app.experiments.dataset import read_items
from prm_app.experiments.insertion import InsertionResult, journal_path, tree_path
from prm_fire.journal import read_journal
from prm_fire.tree import load_tree


def replay_rows(config_name: str, trees: Path | None = None) -> list[str]:
    """Markdown rows: one per method."""
    config = load_config(config_name)
    items = read_items(config)[: config.insertion.items]
    stats = {m: {"sets": 0, "equal": 0, "half": 0, "b0": 0, "rest": 0, "rest_n": 0}
             for m in config.insertion.methods}
    for item in items:
        path = tree_path(config, item.problem.id)
        tree = load_tree(trees / path.name if trees else path)
        base = item.response
        for child in tree.successors("r0/line1"):
            node = tree.nodes[child]["data"]
            s, b = stats[node.sampling.method], node.branch
            s["sets"] += b.index == 0
            s["equal"] += b.text == base
            s["half"] += len(os.path.commonprefix([b.text, base])) >= len(base) / 2
            if b.index == 0:
                s["b0"] += b.correct
            else:
                s["rest"] += b.correct
                s["rest_n"] += 1
    rows = ["| method | items | branches equal to the base response | sharing >= half of it | branch 0 correct | "
            "branches 1..n-1 correct |", "|---|---|---|---|---|---|"]
    for method, s in stats.items():
        rows.append(f"| {method} | {s['sets']} | {s['equal']} | {s['half']} | "
                    f"{100 * s['b0'] / max(s['sets'], 1):.1f}% | {100 * s['rest'] / max(s['rest_n'], 1):.1f}% |")
    return rows


def echo_rows(config_name: str) -> list[str]:
    """Markdown rows: per insertion point and method, branches ending at the base response's answer."""
    config = load_config(config_name)
    answers = {i.problem.id: i.grade.predicted for i in read_items(config)[: config.insertion.items]
               if i.grade.predicted is not None}
    rows = [f"Branches ending at the base response's own answer ({len(answers)} items whose base response states one):",
            "", "| point | " + " | ".join(config.insertion.methods) + " |",
            "|---" * (len(config.insertion.methods) + 1) + "|"]
    for point in config.insertion.points:
        sets = [r for r in read_journal(journal_path(config, point), InsertionResult) if r.item_id in answers]
        shares = []
        for method in config.insertion.methods:
            mine = [a == answers[r.item_id] for r in sets if r.method == method for a in r.answers]
            shares.append(f"{100 * sum(mine) / len(mine):.1f}%" if mine else "–")
        rows.append(f"| {point} | " + " | ".join(shares) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--trees", type=Path, help="read the trees from this folder instead of the run's")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    text = "\n".join(replay_rows(args.config, args.trees) + [""] + echo_rows(args.config)) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
