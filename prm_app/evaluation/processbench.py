"""ProcessBench evaluation of any scorer in :data:`prm_models.PRMS` (Zheng et al. 2024, Qwen team).

Protocol. A scorer gives each step a score; the **prediction** for an item is the first step scored
below the threshold (``-1``: none, "all steps correct"). On the *erroneous* subset (gold label
``!= -1``) a prediction is right iff it equals the label; on the *all-correct* subset (label
``-1``) iff it is ``-1``. **F1** is the harmonic mean of the two accuracies (ProcessBench's
headline number, in percent).

**Floors** (:data:`FLOORS`), computed on the same items as every scorer: *answer-only* names
paragraph 1 when ProcessBench's ``final_answer_correct`` is False and "no error" otherwise (it knows
the gold answer and reads no step); *always-paragraph-1* and *always-no-error*. A scorer's gain over the
answer-only floor is what its step reading adds. Each Metrics also holds the exact accuracy on
erroneous items with label >= 1 (naming paragraph 0 is always wrong there) and label >= 3 (paragraphs
0-2 too, so the answer-only floor scores 0): :data:`LATE_LABELS`. Paragraphs are numbered from 0, as in
ProcessBench's labels.

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

from prm_fire.atomic import replace_atomically
from prm_fire.journal import append_journal, complete_lines
from prm_fire.problems import ProcessBenchItem
from prm_models import PRMS, PRMScorer, StepScores

SPLITS: tuple[str, ...] = ("gsm8k", "math", "olympiadbench", "omnimath")
SWEEP: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95
#: Erroneous items with a first error at paragraph >= k (0-based): past the first paragraph, and in the
#: regime of Table 5 (k = 3: paragraph 4 or later counted from 1).
LATE_LABELS: tuple[int, ...] = (1, 3)


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


class LabelSubset(BaseModel):
    """Exact first-error accuracy on the erroneous items whose gold label is at least ``min_label``."""

    model_config = ConfigDict(frozen=True)

    min_label: int = Field(description="Items with label >= this (0-based paragraph index).")
    items: int
    correct: int = Field(description="... of them predicted at exactly the labelled step.")
    accuracy: float | None = Field(description="Percent (None: no such item).")


class Metrics(BaseModel):
    """ProcessBench's metrics at one threshold (accuracies and F1 in percent)."""

    model_config = ConfigDict(frozen=True)

    threshold: float | None = Field(description="None for a floor (it reads no scores).")
    items: int
    erroneous: int = Field(description="Items with a gold error (label != -1).")
    erroneous_correct: int = Field(description="... of them predicted at exactly the labelled step.")
    all_correct: int = Field(description="Items whose every step is right (label -1).")
    all_correct_correct: int = Field(description="... of them predicted to have no error.")
    acc_erroneous: float | None = Field(description="Accuracy on the erroneous subset, % (None: empty subset).")
    acc_correct: float | None = Field(description="Accuracy on the all-correct subset, % (None: empty subset).")
    f1: float | None = Field(description="Harmonic mean of the two accuracies, % (None: a subset is empty).")
    late: list[LabelSubset] = Field(
        default_factory=list, description="Accuracy on erroneous items with label >= each of LATE_LABELS.")

    def late_accuracy(self, min_label: int) -> float | None:
        """The accuracy on erroneous items with label >= ``min_label`` (None: not computed or no item)."""
        return next((s.accuracy for s in self.late if s.min_label == min_label), None)


def predict(scores: Sequence[float], threshold: float) -> int:
    """The first step scored below ``threshold``, or -1 if none.

    >>> predict([1.0, 0.4, 0.0], 0.5), predict([1.0, 0.6], 0.5)
    (1, -1)
    """
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


def _percent(hits: int, total: int) -> float | None:
    return 100.0 * hits / total if total else None


def tally(pairs: Iterable[tuple[int, int]], threshold: float | None = None) -> Metrics:
    """Metrics of (gold label, prediction) pairs: both accuracies, F1, and the late-label accuracies.

    >>> m = tally([(1, 1), (3, 1), (-1, -1), (-1, 0)])
    >>> (m.acc_erroneous, m.acc_correct, m.f1, m.late_accuracy(3))
    (50.0, 50.0, 50.0, 0.0)
    """
    err = err_ok = ok = ok_ok = 0
    late = {k: [0, 0] for k in LATE_LABELS}
    for label, prediction in pairs:
        if label == -1:
            ok += 1
            ok_ok += prediction == -1
            continue
        err += 1
        err_ok += prediction == label
        for k, counts in late.items():
            if label >= k:
                counts[0] += 1
                counts[1] += prediction == label
    a, b = _percent(err_ok, err), _percent(ok_ok, ok)
    f1 = None if a is None or b is None else 2 * a * b / (a + b) if a + b else 0.0
    return Metrics(threshold=threshold, items=err + ok, erroneous=err, erroneous_correct=err_ok, all_correct=ok,
                   all_correct_correct=ok_ok, acc_erroneous=a, acc_correct=b, f1=f1,
                   late=[LabelSubset(min_label=k, items=n, correct=c, accuracy=_percent(c, n))
                         for k, (n, c) in late.items()])


def compute_metrics(results: Iterable[ItemResult], threshold: float) -> Metrics:
    """Accuracy on each subset and their harmonic mean at ``threshold``."""
    return tally(((r.label, predict(r.scores, threshold)) for r in results), threshold)


# --- floors: what needs no step reading ----------------------------------------------------------------

#: The paragraph the answer-only and always-paragraph floors name: index 1 in ProcessBench's 0-based
#: numbering (the second step), the commonest first-error position on gsm8k and math.
FLOOR_PARAGRAPH = 1
FLOORS: dict[str, str] = {
    "answer-only": f"paragraph {FLOOR_PARAGRAPH} when the final answer is wrong (ProcessBench's "
                   "final_answer_correct), else no error",
    "always-paragraph-1": f"paragraph {FLOOR_PARAGRAPH} on every item",
    "always-no-error": "no error on every item",
}


def floor_prediction(floor: str, result: ItemResult) -> int:
    """What floor ``floor`` (a key of :data:`FLOORS`) predicts for an item; it reads no score.

    >>> r = ItemResult(id="a", label=3, scores=[1.0], final_answer_correct=False)
    >>> [floor_prediction(f, r) for f in FLOORS]
    [1, 1, -1]
    """
    if floor == "answer-only":
        if result.final_answer_correct is None:
            raise ValueError(f"item {result.id!r}: no final_answer_correct, so no answer-only floor")
        return -1 if result.final_answer_correct else FLOOR_PARAGRAPH
    if floor == "always-paragraph-1":
        return FLOOR_PARAGRAPH
    if floor == "always-no-error":
        return -1
    raise ValueError(f"unknown floor {floor!r}; known: {', '.join(FLOORS)}")


def floor_metrics(results: Sequence[ItemResult]) -> dict[str, Metrics]:
    """Every floor of :data:`FLOORS` on exactly these items (the answer-only floor only when every item
    says whether its final answer is correct)."""
    known = all(r.final_answer_correct is not None for r in results)
    return {floor: tally((r.label, floor_prediction(floor, r)) for r in results)
            for floor in FLOORS if known or floor != "answer-only"}


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
    floors: dict[str, Metrics] = Field(
        default_factory=dict, description="Each floor of FLOORS on the same items (it reads no scores).")
    gain_over_answer_only: float | None = Field(
        default=None, description="F1 points above the answer-only floor on the same items (None: no floor).")
    sweep: list[Metrics] = Field(default_factory=list, description="At every swept threshold (empty: no sweep).")
    best: Metrics | None = Field(default=None, description="The swept threshold with the best F1.")
    abstained_steps: float | None = Field(default=None, description="Fraction of steps the scorer abstained on.")
    scoring_seconds: float = Field(description="Sum of the per-item scoring times (over resumed runs too).")
    wall_seconds: float | None = Field(description="Wall time of the scoring invocation (None: not known).")


def summarize(
    results: Sequence[ItemResult], header: RunHeader, *, split: str, results_path: str, threshold: float,
    do_sweep: bool, wall_seconds: float | None,
) -> Summary:
    """Metrics at ``threshold`` (and over :data:`SWEEP` with ``do_sweep``), the floors on the same items,
    and cost figures."""
    swept = sweep(results) if do_sweep else []
    flags = [a for r in results if r.abstained is not None for a in r.abstained]
    metrics = compute_metrics(results, threshold)
    floors = floor_metrics(results)
    answer_only = floors.get("answer-only")
    gain = None if answer_only is None or answer_only.f1 is None or metrics.f1 is None else metrics.f1 - answer_only.f1
    return Summary(
        prm=header.prm, options=header.options, split=split, data=header.data, sample=header.sample,
        results=results_path, items=len(results), metrics=metrics, floors=floors, gain_over_answer_only=gain,
        sweep=swept, best=max(swept, key=lambda m: -1.0 if m.f1 is None else m.f1) if swept else None,
        abstained_steps=sum(flags) / len(flags) if flags else None,
        scoring_seconds=sum(r.seconds for r in results), wall_seconds=wall_seconds,
    )


def percent_text(value: float | None) -> str:
    """A percentage with one decimal, ``n/a`` for None.

    >>> percent_text(47.91), percent_text(None)
    ('47.9', 'n/a')
    """
    return "n/a" if value is None else f"{value:.1f}"


def _late_text(m: Metrics) -> str:
    return " | ".join(f"{percent_text(s.accuracy)} ({s.correct}/{s.items})" for s in m.late) or " | ".join(
        "n/a" for _ in LATE_LABELS)


def markdown(summary: Summary) -> str:
    """The summary as a markdown table: the scorer's row, then each floor on the same items (and one row
    per threshold with a sweep)."""
    late = " | ".join(f"acc. label >= {k}" for k in LATE_LABELS)
    head = (f"| PRM | split | items | erroneous acc. | all-correct acc. | F1 | {late} | threshold |\n"
            "|---|---|---|---|---|---|---|---|---|\n")

    def row(name: str, m: Metrics) -> str:
        threshold = "-" if m.threshold is None else f"{m.threshold:g}"
        return (f"| {name} | {summary.split} | {m.items} | {percent_text(m.acc_erroneous)} "
                f"({m.erroneous_correct}/{m.erroneous}) | {percent_text(m.acc_correct)} ({m.all_correct_correct}/"
                f"{m.all_correct}) | {percent_text(m.f1)} | {_late_text(m)} | {threshold} |\n")

    text = head + row(summary.prm, summary.metrics)
    text += "".join(row(f"floor: {name}", m) for name, m in summary.floors.items())
    if summary.sweep:
        text += "\nThreshold sweep (from the stored scores):\n\n" + head + "".join(
            row(summary.prm, m) for m in summary.sweep)
    notes = [f"options: `{json.dumps(summary.options)}`",
             f"data: `{summary.data}`" + (f" (random sample: {summary.sample})" if summary.sample else ""),
             f"scoring time {summary.scoring_seconds:.1f} s (sum over items)"
             + ("" if summary.wall_seconds is None else f", wall time {summary.wall_seconds:.1f} s")]
    if summary.gain_over_answer_only is not None:
        notes.append(f"F1 {summary.gain_over_answer_only:+.1f} points over the answer-only floor")
    if summary.abstained_steps is not None:
        notes.append(f"abstained on {100 * summary.abstained_steps:.1f}% of steps")
    floors = "; ".join(f"{name}: {FLOORS[name]}" for name in summary.floors)
    return text + "\n" + "; ".join(notes) + "\n" + (f"\nFloors ({floors}).\n" if floors else "")


def write_report(summary: Summary, stem: Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` (each under a temporary name first, then renamed)."""
    written = []
    for suffix, text in ((".json", summary.model_dump_json(indent=2) + "\n"), (".md", markdown(summary))):
        written.append(replace_atomically(stem.with_name(stem.name + suffix), lambda p, t=text: p.write_text(t)))
    return written[0], written[1]


def overview_table(summaries: Sequence[Summary]) -> str:
    """One markdown row per summary (named by its results file): F1, the answer-only floor's F1 on the
    same items, the gain, and the exact accuracy on erroneous items with label >= each of LATE_LABELS."""
    late = " | ".join(f"acc. label >= {k}" for k in LATE_LABELS)
    text = (f"| results | split | items | erroneous acc. | all-correct acc. | F1 | answer-only F1 | gain | {late} |\n"
            "|---|---|---|---|---|---|---|---|" + "---|" * len(LATE_LABELS) + "\n")
    for s in summaries:
        m, floor = s.metrics, s.floors.get("answer-only")
        gain = "n/a" if s.gain_over_answer_only is None else f"{s.gain_over_answer_only:+.1f}"
        text += (f"| {Path(s.results).stem} | {s.split} | {s.items} | {percent_text(m.acc_erroneous)} | "
                 f"{percent_text(m.acc_correct)} | {percent_text(m.f1)} | "
                 f"{percent_text(None if floor is None else floor.f1)} | {gain} | {_late_text(m)} |\n")
    return text


# --- the report again, from a finished journal ----------------------------------------------------------


def read_run(path: Path) -> tuple[RunHeader, list[ItemResult]]:
    """The header and item results of a results file written by :func:`evaluate` (in file order)."""
    lines = complete_lines(path)
    if not lines:
        raise ValueError(f"{path}: no such results file (or it is empty)")
    try:
        header = RunHeader.model_validate_json(lines[0][1])
    except ValueError as exc:
        raise ValueError(f"{path}: first line is not a run header ({exc.__class__.__name__})") from None
    return header, list(_read_results(path, header).values())  # type: ignore[union-attr]


def rebuild_summary(results_path: str | Path, *, threshold: float | None = None,
                    do_sweep: bool | None = None) -> Summary:
    """The summary of the results file ``<stem>.jsonl`` computed again; nothing is scored.

    Settings not given come from the summary ``<stem>.json`` already there (its threshold, whether it
    swept, its wall time), else the scorer's default threshold; the split is the data file's name.
    """
    path = Path(results_path)
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: not a .jsonl results file")
    header, results = read_run(path)
    split = Path(header.data).stem
    if split not in SPLITS:
        raise ValueError(f"{path}: data file {header.data!r} is not a ProcessBench split ({', '.join(SPLITS)})")
    if not results:
        raise ValueError(f"{path}: no scored items")
    stem = path.with_suffix("")
    old_path = stem.with_name(stem.name + ".json")
    old = Summary.model_validate_json(old_path.read_text()) if old_path.exists() else None
    if threshold is None:
        threshold = old.metrics.threshold if old is not None and old.metrics.threshold is not None else getattr(
            PRMS.get(header.prm).Config.model_validate(header.options), "threshold", 0.5)
    return summarize(
        results, header, split=split, results_path=old.results if old is not None else str(path),
        threshold=threshold, do_sweep=bool(old and old.sweep) if do_sweep is None else do_sweep,
        wall_seconds=old.wall_seconds if old is not None else None,
    )


def rebuild_report(results_path: str | Path, *, threshold: float | None = None,
                   do_sweep: bool | None = None) -> Summary:
    """:func:`rebuild_summary`, written to ``<stem>.json`` and ``<stem>.md`` next to the results file."""
    summary = rebuild_summary(results_path, threshold=threshold, do_sweep=do_sweep)
    write_report(summary, Path(results_path).with_suffix(""))
    return summary


__all__ = [
    "FLOORS", "FLOOR_PARAGRAPH", "ItemResult", "LATE_LABELS", "LabelSubset", "Metrics", "RunHeader", "SPLITS",
    "SWEEP", "Summary", "compute_metrics", "evaluate", "floor_metrics", "floor_prediction", "markdown",
    "overview_table", "percent_text", "predict", "read_run", "rebuild_report",
    "rebuild_summary", "sample_items", "score_items", "summarize", "sweep",
    "tally", "write_report",
]
