"""Stage 3 of Table 5: pass@k and #EA per insertion point and method, beside the paper's numbers.

Reads the insertion journals, computes per item the unbiased pass@k and the number of effective
answers, averages over items with a percentile-bootstrap 95% interval, and writes ``table5.md``,
``table5.json`` and ``table5.png`` into the run folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.experiments.config import ExperimentConfig
from prm_fire.experiments.dataset import Attempt
from prm_fire.experiments.insertion import InsertionResult, journal_path
from prm_fire.journal import read_journal
from prm_fire.grader import answers_equivalent
from prm_fire.metrics import Interval, effective_answers, mean_ci, pass_at_k
from prm_fire.sampling import Method

# FIRE paper (arXiv 2410.21236), Table 5: pass@10 (%) on MATH train, Qwen2-7B-Instruct.
PAPER_TABLE5: dict[tuple[Method, str], float] = {
    ("regular", "line1"): 46.07, ("regular", "line2"): 74.36, ("regular", "line3"): 74.77, ("regular", "prm"): 75.73,
    ("fire", "line1"): 64.59, ("fire", "line2"): 74.96, ("fire", "line3"): 75.92, ("fire", "prm"): 78.21,
}
POINT_TITLES = {"line1": "1st-line", "line2": "2nd-line", "line3": "3rd-line", "prm": "PRM-line"}
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


class Table5(BaseModel):
    """The aggregate of a run."""

    model_config = ConfigDict(frozen=True)

    config: ExperimentConfig
    cells: list[Cell]
    stats: RunStats | None = None

    def cell(self, method: Method, point: str) -> Cell | None:
        return next((c for c in self.cells if c.method == method and c.point == point), None)


def run_stats(config: ExperimentConfig, sets: list[InsertionResult]) -> RunStats:
    """Totals over the run's attempts journal and its insertion results ``sets`` (all points)."""
    attempts = read_journal(config.run_dir / "attempts.jsonl", Attempt)
    return RunStats(
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
    prm_fire.experiments.table.UnequalItemsError: cells hold different items (2 in all): regular/prm lacks b; pass --allow-unequal to aggregate anyway
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

    The cells must hold the same items (else a difference between cells may only be a difference of
    items): :class:`UnequalItemsError` names the missing ones unless ``allow_unequal``.
    """
    cells, sets, items = [], [], {}
    for point in config.insertion.points:
        results = read_journal(journal_path(config, point), InsertionResult)
        sets += results
        for method in config.insertion.methods:
            mine = [r for r in results if r.method == method]
            if not mine:
                continue
            items[(method, point)] = {r.item_id for r in mine}
            ks = [k for k in config.insertion.ks if all(k <= r.n for r in mine)]
            cells.append(Cell(
                method=method, point=point, items=len(mine),
                pass_at={k: mean_ci([pass_at_k(r.n, r.correct, k) for r in mine]) for k in ks},
                effective_answers=mean_ci([float(effective_answers(r.answers, answers_equivalent)) for r in mine]),
                tokens=sum(r.tokens for r in mine),
                paper_pass_at_10=PAPER_TABLE5.get((method, point)),
            ))
    if not allow_unequal:
        check_equal_items(items)
    return Table5(config=config, cells=cells, stats=run_stats(config, sets))


def _pct(interval: Interval) -> str:
    return f"{100 * interval.mean:.1f} [{100 * interval.low:.1f}, {100 * interval.high:.1f}]"


def render_markdown(table: Table5) -> str:
    """The table in the paper's layout (methods as rows, insertion points as columns)."""
    points = table.config.insertion.points
    head = "| | " + " | ".join(POINT_TITLES.get(p, p) for p in points) + " |"
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
    lines += ["", "Items per cell: " + ", ".join(f"{c.method}/{c.point} {c.items}" for c in table.cells)]
    if (st := table.stats) is not None:
        unrecorded = f" (not recorded for {n} early attempts)" if (n := st.prm_tokens_unrecorded) else ""
        lines += ["", f"Run: {st.problems} problems tried, {st.kept} kept; tokens generated: base responses "
                  f"{st.base_tokens:,}, PRM {st.prm_tokens:,}{unrecorded}, insertion {st.insertion_tokens:,}; "
                  f"wall time {st.seconds / 3600:.2f} h (sum over problems and branch sets; model loading "
                  "and work lost to interruptions excluded)."]
    lines += ["",
              "Paper (Qwen2-7B-Instruct, MATH train, pass@10 %):", "", head, rule]
    for method in ("regular", "fire"):
        lines.append(f"| {METHOD_TITLES[method]} | " + " | ".join(f"{PAPER_TABLE5.get((method, p), float('nan')):.2f}" for p in points) + " |")
    return "\n".join(lines) + "\n"


def plot(table: Table5, path: Path) -> Path:
    """pass@10 (or the largest k) by insertion point, one line per method, the paper's values dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = table.config.insertion.points
    k = max((k for c in table.cells for k in c.pass_at), default=1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
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
    ax.set_xticks(list(x), [POINT_TITLES.get(p, p) for p in points])
    ax.set_ylabel(f"pass@{k} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{table.config.name}: {table.config.model}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_table5(config: ExperimentConfig, *, allow_unequal: bool = False) -> Table5:
    """Aggregate (:func:`aggregate`) and write ``table5.md``, ``table5.json`` and ``table5.png`` into the run folder."""
    table = aggregate(config, allow_unequal=allow_unequal)
    if not table.cells:
        raise ValueError(f"{config.run_dir}: no insertion results yet; run the insertion stage first")
    config.run_dir.mkdir(parents=True, exist_ok=True)
    (config.run_dir / "table5.md").write_text(render_markdown(table))
    (config.run_dir / "table5.json").write_text(table.model_dump_json(indent=1))
    plot(table, config.run_dir / "table5.png")
    return table
