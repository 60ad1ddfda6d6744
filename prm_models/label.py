"""Label PRM: the gold first-error labels of a step-labelled data set, as a scorer (the oracle).

ProcessBench labels each solution with the index of its earliest wrong step (``-1``: every step is
right). The label PRM turns that into step scores: **1 before the label, 0 at it and after** (a step
after the first error builds on it, and ProcessBench's protocol reads only the first step below the
threshold, so any threshold in (0, 1] predicts exactly the label). It is the sanity check of an
evaluator (it must score F1 = 100) and the oracle insertion point for experiments.

Labels come from ProcessBench files named in the config (``data``), from ``labels`` given inline,
or from the items the evaluator already loaded (``LabelPRM(items=...)``, which
:func:`prm_models.make_prm` passes when asked for ``items``). A problem with no label is an error
naming it, never a silent "all correct".

>>> from prm_fire.problems import Problem
>>> prm = LabelPRM(labels={"gsm8k-0": 1})
>>> prm.score(Problem(id="gsm8k-0", question="?", source="processbench"), ["a", "b", "c"]).scores
[1.0, 0.0, 0.0]
>>> prm.score(Problem(id="gsm8k-9", question="?", source="processbench"), ["a"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
prm_models.label.MissingLabelError: problem 'gsm8k-9' has no gold first-error label (the label PRM knows 1 ...
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prm_fire.problems import Problem, ProcessBenchItem, load_processbench
from prm_models import StepScores


class MissingLabelError(KeyError):
    """A problem the label PRM has no gold first-error label for (a KeyError that reads cleanly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LabelConfig(BaseModel):
    """Where the label PRM finds its labels. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: list[str] = Field(
        default_factory=list, description="ProcessBench files (JSON list or JSONL) to read labels from."
    )
    labels: dict[str, int] = Field(
        default_factory=dict, description="Inline labels: problem id -> first-error index (-1: none)."
    )
    threshold: float = Field(default=0.5, gt=0, le=1, description="A step scoring below it is incorrect.")

    @field_validator("data", mode="before")
    @classmethod
    def _one_file(cls, value: object) -> object:
        return [str(value)] if isinstance(value, (str, Path)) else value  # `--prm-option data=gsm8k.json`


class LabelPRM:
    """Scores 1 before the gold first-error label and 0 from it on (see the module docstring)."""

    name = "label"
    Config = LabelConfig

    def __init__(
        self, config: LabelConfig | None = None, *, items: Iterable[ProcessBenchItem] | None = None, **fields: object
    ) -> None:
        if config is not None and fields:
            raise ValueError(f"LabelPRM: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or LabelConfig(**fields)  # type: ignore[arg-type]
        self.labels: dict[str, tuple[int, int | None]] = {}  # id -> (label, number of steps if known)
        sources = []
        for path in self.config.data:
            self._add(load_processbench(Path(path)))
            sources.append(str(path))
        if items is not None:
            self._add(items)
            sources.append("the evaluated items")
        for key, label in self.config.labels.items():
            if label < -1:
                raise ValueError(f"label of {key!r} must be >= -1, got {label}")
            self.labels[key] = (label, None)
        if self.config.labels:
            sources.append("inline labels")
        self._sources = ", ".join(sources) or "nowhere (no data, labels or items given)"

    def _add(self, items: Iterable[ProcessBenchItem]) -> None:
        for item in items:
            self.labels[item.problem.id] = (item.label, len(item.steps))

    def score(self, problem: Problem, steps: list[str]) -> StepScores:
        """1.0 for the steps before the label, 0.0 from it on; all 1.0 for label -1."""
        if problem.id not in self.labels:
            raise MissingLabelError(
                f"problem {problem.id!r} has no gold first-error label (the label PRM knows "
                f"{len(self.labels)} problems, from {self._sources})"
            )
        if not steps:
            raise ValueError(f"problem {problem.id!r}: no steps to score")
        label, n_steps = self.labels[problem.id]
        if n_steps is not None and n_steps != len(steps):
            raise ValueError(
                f"problem {problem.id!r}: its label {label} is for a {n_steps}-step solution, got {len(steps)} steps"
            )
        if label >= len(steps):
            raise ValueError(f"problem {problem.id!r}: label {label} is past the last step ({len(steps)} steps)")
        scores = [1.0 if label == -1 or i < label else 0.0 for i in range(len(steps))]
        return StepScores(prm=self.name, scores=scores, threshold=self.config.threshold)


__all__ = ["LabelConfig", "LabelPRM", "MissingLabelError"]
