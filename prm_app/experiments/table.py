"""Stage 3 of Table 5: pass@k and #EA per insertion point and method, beside the paper's numbers.

Reads the insertion journals, computes per item the unbiased pass@k and the number of effective
answers, averages over items with a percentile-bootstrap 95% interval, and writes ``table5.md``,
``table5.json`` and ``table5.png`` into the run folder. Per insertion point it also gives the paper's
comparison as a **paired** difference: FIRE minus regular on the same items, item by item, with a
bootstrap interval over items (resampling items keeps each item's pair together).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, computed_field

from prm_app.experiments.claims import Claim, paper_claims, render_claims
from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.dataset import Attempt, read_items
from prm_app.experiments.located import LocatedGroup, located_groups, render_groups
from prm_app.experiments.insertion import InsertionResult, journal_path
from prm_fire.journal import read_journal
from prm_fire.atomic import replacing, write_atomic
from prm_fire.grader import answers_equivalent
from prm_fire.metrics import Interval, effective_answers, mean_ci, paired_contrast, pass_at_k
from prm_fire.sampling import Method

# FIRE paper (arXiv 2410.21236), Table 5: pass@10 (%) on MATH train, Qwen2-7B-Instruct.
PAPER_TABLE5: dict[tuple[Method, str], float] = {
    ("regular", "line1"): 46.07, ("regular", "line2"): 74.36, ("regular", "line3"): 74.77, ("regular", "prm"): 75.73,
    ("fire", "line1"): 64.59, ("fire", "line2"): 74.96, ("fire", "line3"): 75.92, ("fire", "prm"): 78.21,
}
POINT_TITLES = {"line1": "1st-line", "line2": "2nd-line", "line3": "3rd-line", "prm": "PRM-line",
                "oracle": "Oracle-line", "entropy": "Entropy-line"}
METHOD_TITLES = {"regular": "Regular", "fire": "FIRE"}


class Cell(BaseModel):
    """One (method, insertion point) cell: means over items with 95% bootstrap intervals."""

    model_config = ConfigDict(frozen=True)

    method: Method
    point: str
    items: int
    pass_at: dict[int, Interval]
    effective_answers: Interval
    tokens: int
    paper_pass_at_10: float | None


class PairedDifference(BaseModel):
    """FIRE minus regular at one insertion point, item by item over the items both methods hold."""

    model_config = ConfigDict(frozen=True)

    point: str
    metric: str = Field(description="'pass@<k>' (a fraction) or '#EA' (answers).")
    difference: Interval = Field(description="Mean over items of FIRE's value minus regular's, paired bootstrap.")
    paper: float | None = Field(default=None, description="The paper's FIRE minus regular (pass@10 only), a fraction.")


class RunStats(BaseModel):
    """What the run cost: problems tried, items kept, tokens generated per stage, summed wall time."""

    model_config = ConfigDict(frozen=True)

    problems: int
    kept: int
    base_tokens: int
    prm_tokens: int
    prm_tokens_unrecorded: int = Field(description="Attempts from before the PRM's tokens were recorded.")
    insertion_tokens: int
    seconds: float = Field(description="Sum of the per-problem and per-set wall times (model loading excluded).")
    items_cap: int | None = Field(default=None, description="The table holds only the first this many kept items.")
    kept_in_run: int | None = Field(default=None, description="With a cap: the kept items the whole run holds.")

    @computed_field
    @property
    def tokens_per_second(self) -> float:
        """The whole chain's throughput: every stage's generated tokens over the summed wall time."""
        return round((self.base_tokens + self.prm_tokens + self.insertion_tokens) / max(self.seconds, 1e-9), 1)

    @computed_field
    @property
    def seconds_per_kept_item(self) -> float | None:
        """Wall time per kept item (rejected problems' cost included)."""
        return round(self.seconds / self.kept, 1) if self.kept else None


class AnsweredClaims(BaseModel):
    """The claims recomputed on the items whose base response has a final answer."""

    model_config = ConfigDict(frozen=True)

    items: int = Field(description="Items whose base response states a final answer.")
    of: int = Field(description="Items of the table.")
    claims: list[Claim]


class Table5(BaseModel):
    """The aggregate of a run."""

    model_config = ConfigDict(frozen=True)

    config: ExperimentConfig
    cells: list[Cell]
    differences: list[PairedDifference] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list, description="The paper's claims as paired pass@10 contrasts.")
    answered: AnsweredClaims | None = Field(
        default=None, description="The claims again on the items whose base response states a final answer "
                                  "(only when some does not: a response cut at its token budget).")
    located: list[LocatedGroup] = Field(
        default_factory=list, description="With an oracle-line: the PRM-line's cells split by where its flag "
                                          "fell against the labelled first error.")
    stats: RunStats | None = None

    def cell(self, method: Method, point: str) -> Cell | None:
        return next((c for c in self.cells if c.method == method and c.point == point), None)


def capped(attempts: list[Attempt], cap: int | None) -> list[Attempt]:
    """The attempts up to and including the ``cap``-th kept one (all of them without a cap, or with
    fewer kept): the problems a run stopped at its planned size would have tried."""
    kept_at = [i for i, a in enumerate(attempts) if a.kept]
    return attempts[:kept_at[cap - 1] + 1] if cap is not None and len(kept_at) >= cap else attempts


def run_stats(everything: list[Attempt], sets: list[InsertionResult], cap: int | None = None) -> RunStats:
    """Totals over a run's attempts and its insertion results ``sets`` (all points); with ``cap``, over
    the attempts up to the cap-th kept one (what a run stopped there would have cost)."""
    attempts = capped(everything, cap)
    return RunStats(
        items_cap=cap, kept_in_run=sum(a.kept for a in everything) if cap is not None else None,
        problems=len(attempts),
        kept=sum(a.kept for a in attempts),
        base_tokens=sum(a.tokens for a in attempts),
        prm_tokens=sum(a.prm_tokens or 0 for a in attempts),
        prm_tokens_unrecorded=sum(a.prm_tokens is None for a in attempts),
        insertion_tokens=sum(r.tokens for r in sets),
        seconds=round(sum(a.seconds for a in attempts) + sum(r.seconds for r in sets), 1),
    )


class UnequalItemsError(ValueError):
    """Cells of the table hold different items (a run stopped half-way, or journals out of step)."""


def check_equal_items(items: dict[tuple[Method, str], set[str]]) -> None:
    """Raise :class:`UnequalItemsError` naming the items some (method, point) cells lack.

    >>> check_equal_items({("fire", "line1"): {"a", "b"}, ("regular", "line1"): {"a", "b"}})
    >>> check_equal_items({("fire", "line1"): {"a", "b"}, ("regular", "prm"): {"a"}})
    Traceback (most recent call last):
    ...
    prm_app.experiments.table.UnequalItemsError: cells hold different items (2 in all): regular/prm lacks b; pass --allow-unequal to aggregate anyway
    """
    everything = set().union(*items.values()) if items else set()
    gaps = [f"{method}/{point} lacks {', '.join(sorted(everything - mine)[:5])}"
            + (f" and {len(everything - mine) - 5} more" if len(everything - mine) > 5 else "")
            for (method, point), mine in items.items() if mine != everything]
    if gaps:
        raise UnequalItemsError(f"cells hold different items ({len(everything)} in all): {'; '.join(gaps)}; "
                                "pass --allow-unequal to aggregate anyway")


def aggregate(config: ExperimentConfig, *, allow_unequal: bool = False) -> Table5:
    """Every (method, point) cell that has results, from the run's journals, and the run's totals.

    With ``config.insertion.items = N`` only the first N kept items (in attempt order) count: the size
    a power plan fixed, whatever the run went on to add. The cells must hold the same items (else a
    difference between cells may only be a difference of items): :class:`UnequalItemsError` names the
    missing ones unless ``allow_unequal``.
    """
    cap = config.insertion.items
    attempts = read_journal(config.run_dir / "attempts.jsonl", Attempt)
    chosen = {a.problem_id for a in capped(attempts, cap) if a.kept} if cap is not None else None
    cells, sets, items, differences, by_point = [], [], {}, [], {}
    for point in config.insertion.points:
        results = read_journal(journal_path(config, point), InsertionResult)
        if chosen is not None:
            results = [r for r in results if r.item_id in chosen]
        sets += results
        # Each set's pass@k and #EA once (#EA calls the grader per answer pair): cells and differences share them.
        metrics = by_point[point] = {(r.item_id, r.method): _item_metrics(r, config.insertion.ks) for r in results}
        differences += paired_differences(metrics, point)
        for method in config.insertion.methods:
            mine = [r for r in results if r.method == method]
            if not mine:
                continue
            items[(method, point)] = {r.item_id for r in mine}
            ks = [k for k in config.insertion.ks if all(k <= r.n for r in mine)]
            values = [metrics[(r.item_id, method)] for r in mine]
            cells.append(Cell(
                method=method, point=point, items=len(mine),
                pass_at={k: mean_ci([v[f"pass@{k}"] for v in values]) for k in ks},
                effective_answers=mean_ci([v["#EA"] for v in values]),
                tokens=sum(r.tokens for r in mine),
                paper_pass_at_10=PAPER_TABLE5.get((method, point)),
            ))
    if not allow_unequal:
        check_equal_items(items)
    titles = lambda p: point_title(config, p)  # noqa: E731
    claims = paper_claims(by_point, PAPER_TABLE5, titles) if 10 in config.insertion.ks else []
    branched = {i for ids in items.values() for i in ids}
    kept = [i for i in read_items(config) if i.problem.id in branched]
    answered = None
    if claims and (with_answer := {i.problem.id for i in kept if i.grade.predicted is not None}) != branched:
        subset = {p: {key: v for key, v in m.items() if key[0] in with_answer} for p, m in by_point.items()}
        answered = AnsweredClaims(items=len(with_answer), of=len(branched),
                                  claims=paper_claims(subset, PAPER_TABLE5, titles))
    metric = f"pass@{max(config.insertion.ks)}"
    return Table5(config=config, cells=cells, differences=differences, claims=claims, answered=answered,
                  located=located_groups(kept, by_point, metric), stats=run_stats(attempts, sets, cap))


def _item_metrics(result: InsertionResult, ks: list[int]) -> dict[str, float]:
    metrics = {f"pass@{k}": pass_at_k(result.n, result.correct, k) for k in ks if k <= result.n}
    return metrics | {"#EA": float(effective_answers(result.answers, answers_equivalent))}


def paired_differences(metrics: dict[tuple[str, Method], dict[str, float]], point: str) -> list[PairedDifference]:
    """FIRE minus regular per metric at ``point``, from each set's metrics keyed by (item id, method),
    over the items that have both (none if one method is missing)."""
    fire = {i: m for (i, method), m in metrics.items() if method == "fire"}
    regular = {i: m for (i, method), m in metrics.items() if method == "regular"}
    both = [i for i in fire if i in regular]
    out = []
    for metric in fire[both[0]] if both else []:
        if all(metric in fire[i] and metric in regular[i] for i in both):
            paper = None
            if metric == "pass@10" and ("fire", point) in PAPER_TABLE5:
                paper = (PAPER_TABLE5[("fire", point)] - PAPER_TABLE5[("regular", point)]) / 100
            contrast = paired_contrast([(1.0, {i: fire[i][metric] for i in both}),
                                        (-1.0, {i: regular[i][metric] for i in both})])
            out.append(PairedDifference(point=point, metric=metric, paper=paper, difference=contrast.difference))
    return out


def point_title(config: ExperimentConfig, point: str) -> str:
    """A column title; the PRM-line names the scorer that placed it."""
    title = POINT_TITLES.get(point, point)
    return f"{title} ({config.prm.name})" if point == "prm" else title


def _pct(interval: Interval) -> str:
    return f"{100 * interval.mean:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def render_markdown(table: Table5) -> str:
    """The table in the paper's layout (methods as rows, insertion points as columns)."""
    points = table.config.insertion.points
    head = "| | " + " | ".join(point_title(table.config, p) for p in points) + " |"
    rule = "|---" * (len(points) + 1) + "|"
    lines = [f"### {table.config.name}: {table.config.model}, PRM {table.config.prm.name}", ""]
    ks = sorted({k for c in table.cells for k in c.pass_at})
    for k in ks:
        lines += [f"pass@{k} (%), mean over items [95% bootstrap interval]; n = {table.config.insertion.n}", "", head, rule]
        for method in table.config.insertion.methods:
            row = [_pct(c.pass_at[k]) if (c := table.cell(method, p)) and k in c.pass_at else "–" for p in points]
            lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["#EA (distinct final answers among the n branches), mean [95% interval]", "", head, rule]
    for method in table.config.insertion.methods:
        row = [f"{c.effective_answers.mean:.2f} [{c.effective_answers.low:.2f}, {c.effective_answers.high:.2f}]"
               if (c := table.cell(method, p)) else "–" for p in points]
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(row) + " |")
    if table.differences:
        lines += ["", "FIRE minus regular, paired over the same items: mean [95% paired bootstrap interval] "
                  "(pass@k in points, #EA in answers); the paper's pass@10 difference in brackets", "", head, rule]
        for metric in dict.fromkeys(d.metric for d in table.differences):
            row = []
            for p in points:
                d = next((d for d in table.differences if d.point == p and d.metric == metric), None)
                scale = 1 if metric == "#EA" else 100
                text = "–" if d is None else (f"{scale * d.difference.mean:+.{1 + (scale == 1)}f} "
                                              f"[{scale * d.difference.low:+.{1 + (scale == 1)}f}, "
                                              f"{scale * d.difference.high:+.{1 + (scale == 1)}f}]")
                if d is not None and d.paper is not None:
                    text += f" ({100 * d.paper:+.1f})"
                row.append(text)
            lines.append(f"| {metric} | " + " | ".join(row) + " |")
    if table.claims:
        lines += [""] + render_claims(table.claims)
    if (a := table.answered) is not None:
        lines += ["", f"The same claims on the {a.items} of {a.of} items whose base response states a final answer "
                  f"the grader reads (the other {a.of - a.items} state none; a sampled response without one was cut at its "
                  "token budget, wrong by truncation rather than by a mistake):", ""]
        lines += render_claims(a.claims)[2:]
    if table.located:
        lines += [""] + render_groups(table.located, f"pass@{max(table.config.insertion.ks)}",
                                      point_title(table.config, "prm"))
    lines += ["", "Items per cell: " + ", ".join(f"{c.method}/{c.point} {c.items}" for c in table.cells)]
    if (st := table.stats) is not None and st.items_cap is not None:
        held = (f"the run holds {st.kept_in_run} kept items; those past the first {st.items_cap} are left out here"
                if st.kept_in_run >= st.items_cap else f"the run holds {st.kept_in_run} of them so far")
        lines += ["", f"Items: the first {st.items_cap} kept items in attempt order (config insertion.items: the size "
                  f"fixed before the rest of the run, e.g. by its power plan); {held}."]
    if (st := table.stats) is not None:
        unrecorded = (f" (not recorded for {n} attempts: early runs, or a scorer that does not report its tokens)"
                      if (n := st.prm_tokens_unrecorded) else "")
        lines += ["", f"Run: {st.problems} problems tried, {st.kept} kept; tokens generated: base responses "
                  f"{st.base_tokens:,}, PRM {st.prm_tokens:,}{unrecorded}, insertion {st.insertion_tokens:,}; "
                  f"wall time {st.seconds / 3600:.2f} h (sum over problems and branch sets; model loading "
                  f"and work lost to interruptions excluded): {st.tokens_per_second:,.1f} tokens/s"
                  + (f", {st.seconds_per_kept_item:,.0f} s per kept item." if st.seconds_per_kept_item else ".")]
    lines += ["",
              "Paper (Qwen2-7B-Instruct, MATH train, pass@10 %):", "",
              "| | " + " | ".join(POINT_TITLES.get(p, p) for p in points) + " |", rule]
    for method in ("regular", "fire"):
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(
            f"{PAPER_TABLE5[(method, p)]:.2f}" if (method, p) in PAPER_TABLE5 else "–" for p in points) + " |")
    return "\n".join(lines) + "\n"


def plot(table: Table5, path: Path) -> Path:
    """Left: pass@10 (or the largest k) by insertion point, one line per method, the paper's values
    dashed. Right (when there are paired differences): FIRE minus regular per point for each pass@k,
    with its paired interval, and the paper's pass@10 difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = table.config.insertion.points
    titles = [point_title(table.config, p) for p in points]
    k = max((k for c in table.cells for k in c.pass_at), default=1)
    panels = 2 if table.differences else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.2), dpi=120, squeeze=False)
    ax = axes[0][0]
    x = range(len(points))
    for method, colour in (("regular", "tab:blue"), ("fire", "tab:red")):
        cells = [table.cell(method, p) for p in points]
        if any(c and k in c.pass_at for c in cells):
            ys = [100 * c.pass_at[k].mean if c and k in c.pass_at else float("nan") for c in cells]
            low = [y - 100 * c.pass_at[k].low if c and k in c.pass_at else 0 for y, c in zip(ys, cells)]
            high = [100 * c.pass_at[k].high - y if c and k in c.pass_at else 0 for y, c in zip(ys, cells)]
            ax.errorbar(x, ys, yerr=[low, high], marker="o", capsize=4, color=colour, label=f"{method} (ours)")
        paper = [PAPER_TABLE5.get((method, p), float("nan")) for p in points]
        ax.plot(x, paper, linestyle="--", marker="x", color=colour, alpha=0.6, label=f"{method} (paper, pass@10)")
    ax.set_xticks(list(x), titles, fontsize=8)
    ax.set_ylabel(f"pass@{k} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{table.config.name}: {table.config.model}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if panels == 2:
        ax = axes[0][1]
        metrics = [m for m in dict.fromkeys(d.metric for d in table.differences) if m.startswith("pass@")]
        for j, metric in enumerate(metrics):
            shift = (j - (len(metrics) - 1) / 2) * 0.15
            ds = [next((d for d in table.differences if d.point == p and d.metric == metric), None) for p in points]
            ys = [100 * d.difference.mean if d else float("nan") for d in ds]
            err = [[y - 100 * d.difference.low if d else 0 for y, d in zip(ys, ds)],
                   [100 * d.difference.high - y if d else 0 for y, d in zip(ys, ds)]]
            ax.errorbar([i + shift for i in x], ys, yerr=err, marker="o", capsize=4, linestyle="none",
                        label=f"{metric}, FIRE - regular (ours, 95% paired CI)")
        paper = [100 * d.paper if (d := next((d for d in table.differences if d.point == p and d.paper is not None),
                                             None)) else float("nan") for p in points]
        at = ((metrics.index("pass@10") - (len(metrics) - 1) / 2) * 0.15) if "pass@10" in metrics else 0.0
        ax.plot([i + at for i in x], paper, linestyle="none", marker="x", color="black", label="pass@10, paper")
        ax.axhline(0, color="grey", linewidth=1)
        ax.set_xticks(list(x), titles, fontsize=8)
        ax.set_ylabel("FIRE minus regular (points)")
        ax.set_title("Paired differences over the same items")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_table5(config: ExperimentConfig, *, allow_unequal: bool = False) -> Table5:
    """Aggregate (:func:`aggregate`) and write ``table5.md``, ``table5.json`` and ``table5.png`` into the run folder."""
    table = aggregate(config, allow_unequal=allow_unequal)
    if not table.cells:
        raise ValueError(f"{config.run_dir}: no insertion results yet; run the insertion stage first")
    config.run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(config.run_dir / "table5.md", render_markdown(table))
    write_atomic(config.run_dir / "table5.json", table.model_dump_json(indent=1))
    plot(table, config.run_dir / "table5.png")
    return table
