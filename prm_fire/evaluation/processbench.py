"""ProcessBench evaluation of any scorer in :data:`prm_models.PRMS` (Zheng et al. 2024, Qwen team).

Protocol. A scorer gives each step a score; the **prediction** for an item is the first step scored
below the threshold (``-1``: none, "all steps correct"). On the *erroneous* subset (gold label
``!= -1``) a prediction is right iff it equals the label; on the *all-correct* subset (label
``-1``) iff it is ``-1``. **F1** is the harmonic mean of the two accuracies (ProcessBench's
headline number, in percent).

Scores are stored per step, so a threshold sweep (:func:`sweep`) recomputes every metric without
scoring again. :func:`evaluate` writes one JSON line per item as it goes (after a header line naming
the scorer, its options and the data); run again with the same settings it skips the items already
in the file, so a killed run continues where it stopped and ends with the same numbers. A last line
cut short by the kill is dropped and its item scored again.

>>> r = [ItemResult(id="a", label=1, scores=[1.0, 0.0, 1.0]), ItemResult(id="b", label=-1, scores=[1.0, 0.2])]
>>> m = compute_metrics(r, threshold=0.5)
>>> (m.erroneous_correct, m.erroneous, m.all_correct_correct, m.all_correct, m.f1)
(1, 1, 0, 1, 0.0)
>>> compute_metrics(r, threshold=0.1).f1
100.0
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.journal import append_journal, complete_lines
from prm_fire.problems import ProcessBenchItem
from prm_models import PRMScorer, StepScores

SPLITS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")
SWEEP: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


class ItemResult(BaseModel):
    """One scored item, as stored in the JSONL file."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="ProcessBench item id (gsm8k-0).")
    label: int = Field(ge=-1, description="Gold first-error index, -1 if every step is right.")
    scores: list[float] = Field(description="The scorer's score per step.")
    abstained: list[bool] | None = Field(default=None, description="Per step: the scorer had no evidence.")
    generator: str | None = Field(default=None, description="The model that wrote the solution.")
    final_answer_correct: bool | None = Field(default=None)
    seconds: float = Field(default=0.0, ge=0, description="Wall time of scoring this item.")
    record: dict[str, Any] = Field(default_factory=dict, description="The scorer's full StepScores (details).")


class RunHeader(BaseModel):
    """First line of a results file: what produced it (a resumed run must match it)."""

    model_config = ConfigDict(frozen=True)

    prm: str
    options: dict[str, Any]
    data: str = Field(description="The ProcessBench file scored.")
    sample: str | None = Field(default=None, description="The seeded random subset scored, if not the whole file.")


class Metrics(BaseModel):
    """ProcessBench's metrics at one threshold (accuracies and F1 in percent)."""

    model_config = ConfigDict(frozen=True)

    threshold: float
    items: int
    erroneous: int = Field(description="Items with a gold error (label != -1).")
    erroneous_correct: int = Field(description="... of them predicted at exactly the labelled step.")
    all_correct: int = Field(description="Items whose every step is right (label -1).")
    all_correct_correct: int = Field(description="... of them predicted to have no error.")
    acc_erroneous: float | None = Field(description="Accuracy on the erroneous subset, % (None: empty subset).")
    acc_correct: float | None = Field(description="Accuracy on the all-correct subset, % (None: empty subset).")
    f1: float | None = Field(description="Harmonic mean of the two accuracies, % (None: a subset is empty).")


def predict(scores: Sequence[float], threshold: float) -> int:
    """The first step scored below ``threshold``, or -1 if none.

    >>> predict([1.0, 0.4, 0.0], 0.5), predict([1.0, 0.6], 0.5)
    (1, -1)
    """
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


def _percent(hits: int, total: int) -> float | None:
    return 100.0 * hits / total if total else None


def compute_metrics(results: Iterable[ItemResult], threshold: float) -> Metrics:
    """Accuracy on each subset and their harmonic mean at ``threshold``."""
    err = err_ok = ok = ok_ok = 0
    for r in results:
        prediction = predict(r.scores, threshold)
        if r.label == -1:
            ok += 1
            ok_ok += prediction == -1
        else:
            err += 1
            err_ok += prediction == r.label
    a, b = _percent(err_ok, err), _percent(ok_ok, ok)
    f1 = None if a is None or b is None else 2 * a * b / (a + b) if a + b else 0.0
    return Metrics(threshold=threshold, items=err + ok, erroneous=err, erroneous_correct=err_ok, all_correct=ok,
                   all_correct_correct=ok_ok, acc_erroneous=a, acc_correct=b, f1=f1)


def sweep(results: Sequence[ItemResult], thresholds: Iterable[float] = SWEEP) -> list[Metrics]:
    """:func:`compute_metrics` at every threshold (from the stored scores; nothing is rescored)."""
    return [compute_metrics(results, t) for t in thresholds]


def sample_items(items: Sequence[ProcessBenchItem], n: int, seed: int) -> list[ProcessBenchItem]:
    """The first ``n`` items of the file shuffled with ``random.Random(seed)``, in that shuffled order.

    Scoring follows this order, so the first M items scored of a sample are the sample of size M with
    the same seed: a run stopped early is still a seeded random subset (not the file's first part,
    which in ProcessBench holds the erroneous items first).

    >>> sample_items(list("abcdefgh"), 3, 0), sample_items(list("abcdefgh"), 5, 0)  # any sequence works
    (['e', 'b', 'f'], ['e', 'b', 'f', 'c', 'a'])
    """
    if not 1 <= n <= len(items):
        raise ValueError(f"--sample must be between 1 and the {len(items)} items of the split, got {n}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    return [items[i] for i in order[:n]]


# --- scoring with a resumable JSONL file -------------------------------------------------------------


def _read_results(path: Path, header: RunHeader) -> dict[str, ItemResult] | None:
    """Results already in ``path`` (checked against ``header``; None: not even a header yet).

    A torn last line is left out (and cut off by the next append)."""
    lines = complete_lines(path)
    if not lines:
        return None
    try:
        found = RunHeader.model_validate_json(lines[0][1])
    except ValueError as exc:
        raise ValueError(f"{path}: first line is not a run header ({exc.__class__.__name__}); "
                         "pass another --out or delete the file") from None
    if found != header:
        raise ValueError(
            f"{path} holds results of another run ({found.model_dump()}), not of {header.model_dump()}; "
            "pass another --out or delete the file"
        )
    results = {}
    for number, line in lines[1:]:
        try:
            result = ItemResult.model_validate_json(line)
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: not an item result ({exc})") from None
        results[result.id] = result
    return results


def score_items(scorer: PRMScorer, items: Sequence[ProcessBenchItem]) -> list[ItemResult]:
    """Score items (in one ``score_many`` call when the scorer has one) and keep everything it returned;
    each item's ``seconds`` is its share of the call."""
    started = time.perf_counter()
    many = getattr(scorer, "score_many", None)
    solutions = [(item.problem, list(item.steps)) for item in items]
    scored: list[StepScores] = many(solutions) if many else [scorer.score(p, s) for p, s in solutions]
    seconds = (time.perf_counter() - started) / max(len(items), 1)
    results = []
    for item, one in zip(items, scored):
        if len(one.scores) != len(item.steps):
            raise ValueError(
                f"item {item.problem.id!r}: scorer {one.prm!r} returned {len(one.scores)} scores for "
                f"{len(item.steps)} steps"
            )
        results.append(ItemResult(
            id=item.problem.id, label=item.label, scores=one.scores, abstained=one.abstained,
            generator=item.generator, final_answer_correct=item.final_answer_correct, seconds=seconds,
            record=one.model_dump(mode="json", exclude={"scores", "abstained"}),
        ))
    return results


def evaluate(
    scorer: PRMScorer,
    items: Sequence[ProcessBenchItem],
    results_path: str | Path,
    header: RunHeader,
    *,
    progress: bool = False,
    batch: int = 1,
) -> list[ItemResult]:
    """Score every item not yet in ``results_path`` (appending a line each), then all results in item order.

    ``batch`` items go together to a scorer with ``score_many`` (one engine call); their lines are
    appended once the batch is scored, so a kill loses at most the batch in progress.
    ``header`` names the run; an existing file written by another run is an error, not overwritten.
    """
    path = Path(results_path)
    done = _read_results(path, header)
    if done is None:
        append_journal(path, header)  # also cuts off a torn header line
        done = {}
    known = {item.problem.id for item in items}
    stray = sorted(set(done) - known)
    if stray:
        raise ValueError(f"{path} has results for items not in {header.data}: {stray[:3]}")
    todo = [item for item in items if item.problem.id not in done]
    bar = None
    if progress:
        from tqdm import tqdm

        desc = f"{header.prm} on {Path(header.data).name}"
        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item")
    step = batch if hasattr(scorer, "score_many") else 1  # scorers without it: one item, its own seconds
    for start in range(0, len(todo), step):
        for result in score_items(scorer, todo[start : start + step]):
            append_journal(path, result)  # one durable line per item; a torn last line is cut off first
            done[result.id] = result
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [done[item.problem.id] for item in items]


# --- the report ---------------------------------------------------------------------------------------


class Summary(BaseModel):
    """What the command writes as JSON next to the per-item results."""

    prm: str
    options: dict[str, Any]
    split: str
    data: str
    sample: str | None = Field(default=None, description="The seeded random subset scored, if not the whole file.")
    results: str = Field(description="The per-item JSONL file.")
    items: int
    metrics: Metrics = Field(description="At the chosen threshold.")
    sweep: list[Metrics] = Field(default_factory=list, description="At every swept threshold (empty: no sweep).")
    best: Metrics | None = Field(default=None, description="The swept threshold with the best F1.")
    abstained_steps: float | None = Field(default=None, description="Fraction of steps the scorer abstained on.")
    scoring_seconds: float = Field(description="Sum of the per-item scoring times (over resumed runs too).")
    wall_seconds: float = Field(description="Wall time of this invocation.")


def summarize(
    results: Sequence[ItemResult], header: RunHeader, *, split: str, results_path: str, threshold: float,
    do_sweep: bool, wall_seconds: float,
) -> Summary:
    """Metrics at ``threshold`` (and over :data:`SWEEP` with ``do_sweep``) and cost figures."""
    swept = sweep(results) if do_sweep else []
    flags = [a for r in results if r.abstained is not None for a in r.abstained]
    return Summary(
        prm=header.prm, options=header.options, split=split, data=header.data, sample=header.sample,
        results=results_path,
        items=len(results), metrics=compute_metrics(results, threshold), sweep=swept,
        best=max(swept, key=lambda m: -1.0 if m.f1 is None else m.f1) if swept else None,
        abstained_steps=sum(flags) / len(flags) if flags else None,
        scoring_seconds=sum(r.seconds for r in results), wall_seconds=wall_seconds,
    )


def percent_text(value: float | None) -> str:
    """A percentage with one decimal, ``n/a`` for None.

    >>> percent_text(47.91), percent_text(None)
    ('47.9', 'n/a')
    """
    return "n/a" if value is None else f"{value:.1f}"


def markdown(summary: Summary) -> str:
    """The summary as a markdown table (one row; one per threshold with a sweep)."""
    head = ("| PRM | split | items | erroneous acc. | all-correct acc. | F1 | threshold |\n"
            "|---|---|---|---|---|---|---|\n")

    def row(m: Metrics) -> str:
        return (f"| {summary.prm} | {summary.split} | {m.items} | {percent_text(m.acc_erroneous)} "
                f"({m.erroneous_correct}/{m.erroneous}) | {percent_text(m.acc_correct)} ({m.all_correct_correct}/"
                f"{m.all_correct}) | {percent_text(m.f1)} | {m.threshold:g} |\n")

    text = head + row(summary.metrics)
    if summary.sweep:
        text += "\nThreshold sweep (from the stored scores):\n\n" + head + "".join(row(m) for m in summary.sweep)
    notes = [f"options: `{json.dumps(summary.options)}`",
             f"data: `{summary.data}`" + (f" (random sample: {summary.sample})" if summary.sample else ""),
             f"scoring time {summary.scoring_seconds:.1f} s (sum over items), wall time {summary.wall_seconds:.1f} s"]
    if summary.abstained_steps is not None:
        notes.append(f"abstained on {100 * summary.abstained_steps:.1f}% of steps")
    return text + "\n" + "; ".join(notes) + "\n"


__all__ = [
    "ItemResult", "Metrics", "RunHeader", "SPLITS", "SWEEP", "Summary", "compute_metrics", "evaluate",
    "markdown", "percent_text", "predict", "sample_items", "score_items", "summarize", "sweep",
]
