"""Problems solved versus tokens spent, per arm, from search results (one run per problem and arm).

A result run at the largest budget answers for every smaller one (:meth:`SearchResult.solved_within`),
so one journal gives the whole curve. Arms are compared on the problems every arm has finished, with
percentile-bootstrap intervals over those problems (:func:`prm_fire.metrics.mean_ci`).

>>> from prm_fire.search.records import FirstCorrect, SearchResult
>>> from prm_fire.search.config import SearchConfig
>>> def run(pid, tokens):
...     fc = FirstCorrect(node_id="x", round=0, tokens_before_round=0, tokens=tokens) if tokens else None
...     return SearchResult(problem_id=pid, config=SearchConfig(budget=100), scorer=None, model="m",
...                         solved=fc is not None, stop="solved" if fc else "budget", tokens_spent=tokens or 100,
...                         root_scorer_tokens=0, first_correct=fc, rounds=[], depth=1, nodes=3)
>>> rows = solved_curve({"a": [run("p1", 40), run("p2", None)], "b": [run("p1", 90)]}, [50, 100])
>>> [(r.arm, r.budget, r.solved, r.problems) for r in rows]
[('a', 50, 1, 1), ('a', 100, 1, 1), ('b', 50, 0, 1), ('b', 100, 1, 1)]
>>> [(c.budget, c.only_first, c.only_second, c.difference.mean) for c in
...  paired_contrasts({"a": [run("p1", 40)], "b": [run("p1", 90)]}, [("a", "b")], [50, 100])]
[(50, 1, 0, 1.0), (100, 0, 0, 0.0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import networkx as nx

from prm_fire.metrics import Interval, mean_ci, paired_contrast
from prm_fire.search.records import FirstCorrect, RoundRecord, SearchResult


class CurvePoint(BaseModel):
    """One arm at one budget: problems solved among the common problems, with an interval."""

    model_config = ConfigDict(frozen=True)

    arm: str
    budget: int
    solved: int
    problems: int
    rate: Interval
    mean_tokens_spent: float


def common_problems(results: Mapping[str, Sequence[SearchResult]]) -> list[str]:
    """Problem ids every arm has a result for, in the first arm's order."""
    if not results:
        return []
    sets = [{r.problem_id for r in rs} for rs in results.values()]
    first = next(iter(results.values()))
    return [r.problem_id for r in first if all(r.problem_id in s for s in sets)]


def solved_curve(results: Mapping[str, Sequence[SearchResult]], budgets: Sequence[int], *,
                 seed: int = 0) -> list[CurvePoint]:
    """For every arm and budget: how many of the common problems a run with that budget solves."""
    ids = common_problems(results)
    points = []
    for arm, rs in results.items():
        by_id = {r.problem_id: r for r in rs}
        for budget in budgets:
            if budget > min((by_id[i].config.budget for i in ids), default=budget):
                raise ValueError(f"arm {arm!r}: budget {budget} is above the budget its runs used")
            hits = [by_id[i].solved_within(budget) for i in ids]
            spent = [by_id[i].spent_within(budget) for i in ids]
            points.append(CurvePoint(arm=arm, budget=budget, solved=sum(hits), problems=len(ids),
                                     rate=mean_ci(hits, seed=seed) if ids else Interval(mean=0, low=0, high=0, n=1,
                                                                                        confidence=0.95),
                                     mean_tokens_spent=sum(spent) / len(spent) if spent else 0.0))
    return points


def budget_header(first: str, budgets: Sequence[int]) -> list[str]:
    """The two header lines of a markdown table whose columns, after ``first``, are budgets."""
    return [f"| {first} | " + " | ".join(str(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]


class PairedContrast(BaseModel):
    """Arm ``first`` minus arm ``second`` at one budget, problem by problem (solved 1, not 0)."""

    model_config = ConfigDict(frozen=True)

    first: str
    second: str
    budget: int
    only_first: int = Field(description="Problems the first arm solves and the second does not.")
    only_second: int = Field(description="Problems the second arm solves and the first does not.")
    difference: Interval = Field(description="Mean of the per-problem differences, with its bootstrap interval.")
    detectable: float | None = Field(
        description="The difference a two-sided paired test (level 0.05) on this many problems detects with "
                    "power 0.8, at the spread of differences observed (None: no discordant problem yet).")


def paired_contrasts(results: Mapping[str, Sequence[SearchResult]], pairs: Sequence[tuple[str, str]],
                     budgets: Sequence[int], *, seed: int = 0) -> list[PairedContrast]:
    """Paired differences of solved-within-budget between arms, on the problems every arm has finished.

    The arms ran on the same problems from the same greedy answer, so a contrast is paired by problem;
    ``detectable`` is ``(z_0.975 + z_0.8) * sd(d) / sqrt(N)``, the power calculation for this N.
    """
    ids = common_problems(results)
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    out = []
    for first, second in pairs:
        for budget in budgets:
            solved = [{r.problem_id: int(r.solved_within(budget)) for r in results[arm]} for arm in (first, second)]
            contrast = paired_contrast([(1, solved[0]), (-1, solved[1])], items=ids, seed=seed)
            if contrast is None:
                continue
            d = contrast.values
            sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
            out.append(PairedContrast(first=first, second=second, budget=budget, only_first=d.count(1),
                                      only_second=d.count(-1), difference=contrast.difference,
                                      detectable=z * sd / math.sqrt(len(d)) if sd > 0 else None))
    return out


def contrast_table(contrasts: Sequence[PairedContrast]) -> str:
    """Rows: contrasts; columns: budgets; cells: difference in points [95% CI] (first-only / second-only)."""
    budgets = sorted({c.budget for c in contrasts})
    lines = budget_header("contrast", budgets)
    for pair in dict.fromkeys((c.first, c.second) for c in contrasts):
        cells = {c.budget: c for c in contrasts if (c.first, c.second) == pair}
        row = [f"{100 * c.difference.mean:+.0f} [{100 * c.difference.low:+.0f}, {100 * c.difference.high:+.0f}] "
               f"({c.only_first}/{c.only_second})" if (c := cells.get(b)) else "" for b in budgets]
        lines.append(f"| {pair[0]} − {pair[1]} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(points: Sequence[CurvePoint], arms: Mapping[str, str]) -> str:
    """Rows: arms; columns: budgets; cells: solved / problems (share, 95% CI); then what each arm uses."""
    budgets = sorted({p.budget for p in points})
    lines = budget_header("arm", budgets)
    for arm in arms:
        cells = {p.budget: p for p in points if p.arm == arm}
        row = [f"{cells[b].solved} ({100 * cells[b].rate.low:.0f}-{100 * cells[b].rate.high:.0f}%)"
               if b in cells else "" for b in budgets]
        lines.append(f"| {arm} | " + " | ".join(row) + " |")
    legend = [f"- **{arm}**: {uses}" for arm, uses in arms.items()]
    return "\n".join(lines + [""] + legend) + "\n"


class FlagSummary(BaseModel):
    """Where a scorer put the first flagged step in the nodes one arm's searches scored (which decides
    how much of a wrong solution each cut keeps)."""

    model_config = ConfigDict(frozen=True)

    arm: str
    scored: int = Field(description="Scored nodes: the root responses and every scored branch.")
    flagged: int = Field(description="Scored nodes with a flagged step.")
    median_steps: float = Field(description="Median number of steps of a flagged node.")
    kept_share: tuple[float, float, float] = Field(
        description="Quartiles (25, 50, 75%) of the share of a flagged node's steps before its first flag.")
    at_line: dict[int, int] = Field(description="Flagged nodes whose first flag is line 1 and line 2.")


def flag_positions(tree: nx.DiGraph) -> tuple[int, list[tuple[int, int]]]:
    """The tree's scored nodes (responses and branches with step scores) and, for each flagged one,
    (index of its first flagged step, its number of steps)."""
    scored = [r for _, r in tree.nodes(data="data") if r.kind in ("response", "branch") and r.step_scores is not None]
    return len(scored), [(r.first_error_index, len(r.step_scores)) for r in scored if r.first_error_index is not None]


def flag_summary(arm: str, trees: Sequence[nx.DiGraph]) -> FlagSummary:
    """:func:`flag_positions` over one arm's trees, summarised."""
    scored, flags = 0, []
    for tree in trees:
        count, positions = flag_positions(tree)
        scored, flags = scored + count, flags + positions
    shares = [index / steps for index, steps in flags] or [math.nan]
    return FlagSummary(arm=arm, scored=scored, flagged=len(flags),
                       median_steps=float(np.median([steps for _, steps in flags])) if flags else math.nan,
                       kept_share=tuple(float(q) for q in np.quantile(shares, [0.25, 0.5, 0.75])),
                       at_line={k: sum(i == k - 1 for i, _ in flags) for k in (1, 2)})


def flag_table(summaries: Sequence[FlagSummary]) -> str:
    """One row per arm: scored and flagged nodes, median steps, the share kept, first flags at lines 1-2."""
    lines = ["| arm | scored nodes | flagged | median steps | share kept before the flag (25/50/75%) "
             "| flag at line 1 | at line 2 |", "|---|---|---|---|---|---|---|"]
    for s in summaries:
        q = "/".join(f"{100 * x:.0f}%" for x in s.kept_share)
        lines.append(f"| {s.arm} | {s.scored} | {s.flagged} | {s.median_steps:.0f} | {q} | {s.at_line[1]} "
                     f"| {s.at_line[2]} |")
    return "\n".join(lines) + "\n"


def plot_curves(points: Sequence[CurvePoint], path: str | Path, *, title: str) -> Path:
    """Solved share versus budget, one line per arm with its 95% band; written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for arm in dict.fromkeys(p.arm for p in points):
        mine = sorted((p for p in points if p.arm == arm), key=lambda p: p.budget)
        xs = [p.budget for p in mine]
        ax.plot(xs, [p.rate.mean for p in mine], marker="o", label=arm)
        ax.fill_between(xs, [p.rate.low for p in mine], [p.rate.high for p in mine], alpha=0.12)
    ax.set_xlabel("tokens generated per problem (budget)")
    ax.set_ylabel("share of problems solved")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def one_sample_rounds(result: SearchResult, tree: nx.DiGraph) -> SearchResult:
    """A result re-counted as if each round's branches had come one at a time, in branch order (prefix by
    prefix, then index), stopping at the first correct one: the same accounting for every strategy.

    Best-of-N: sample i of set k depends only on its seed, not on the batch it came in, so this is the
    run a best-of-N with rounds of one sample makes, the finest accounting. A search: a round's
    expansions are chosen before it starts, so its branches can be generated one by one and the round
    stop at its first correct branch; the scorer tokens of a round without one (scoring its branches for
    the next round) are counted after its last branch. Rounds before the solving one are unchanged in
    total, so only when a problem is solved (and where a budget cuts a round) does the count move.
    """
    if result.stop == "root-correct":
        return result
    rounds, spent, first = [], result.root_scorer_tokens, None
    for whole in result.rounds:
        if spent != whole.tokens_before:
            raise ValueError(f"problem {result.problem_id!r}: round {whole.index} starts at {whole.tokens_before} "
                             f"tokens, its predecessors end at {spent}")
        branches = [(parent, prefix_id, tree.nodes[c]["data"].branch)
                    for parent, prefix_id in zip(whole.expanded, whole.prefixes)
                    for c in sorted(tree.successors(prefix_id), key=lambda c: tree.nodes[c]["data"].branch.index)]
        for position, (parent, prefix_id, b) in enumerate(branches):
            scorer = whole.scorer_tokens if position == len(branches) - 1 else 0
            before, spent = spent, spent + len(b.token_ids) + scorer
            rounds.append(RoundRecord(index=len(rounds), expanded=[parent], prefixes=[prefix_id], sequences=1,
                                      generated_tokens=len(b.token_ids), scorer_tokens=scorer, tokens_before=before,
                                      tokens_after=spent, correct=int(b.correct)))
            if b.correct:
                first = FirstCorrect(node_id=f"{prefix_id}/{b.method}/{b.index}", round=len(rounds) - 1,
                                     tokens_before_round=before, tokens=spent)
                break
        if first is not None:
            break
    if first is None and spent != result.tokens_spent:
        raise ValueError(f"problem {result.problem_id!r}: the rounds add up to {spent} tokens, the result to "
                         f"{result.tokens_spent}")
    return result.model_copy(update={"rounds": rounds, "first_correct": first, "tokens_spent": spent})
