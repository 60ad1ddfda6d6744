"""The rows the exporter writes, in TRL's dataset types, and the one rule that turns a first error into labels.

*Stepwise supervision* (TRL's ``PRMTrainer``): ``prompt`` (the problem), ``completions`` (the steps)
and ``labels`` (one bool per step: is the step right). *Preference* (TRL's ``DPOTrainer`` and kin):
``prompt``, ``chosen``, ``rejected``. Each row also carries ``id``, where it came from; TRL's trainers
drop columns they do not use.

Steps after the first wrong one: ProcessBench and every first-error locator name only the *earliest*
wrong step, so whether a later step is right is unknown. By default (``after_error="drop"``) a
solution's completions therefore end at its first wrong step, as in TRL's PRM800K conversion, where a
sequence ends at the first step rated wrong. ``after_error="false"`` keeps the later steps and labels
them False (Math-Shepherd's reading: no step after an error leads to the right answer on its own).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AfterError = Literal["drop", "false"]
AFTER_ERROR: tuple[AfterError, ...] = ("drop", "false")


class StepwiseRow(BaseModel):
    """One solution with a label per step (TRL stepwise supervision)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Where the row came from (item id, tree node).")
    prompt: str = Field(description="The problem statement.")
    completions: list[str] = Field(min_length=1, description="The steps, in order.")
    labels: list[bool] = Field(min_length=1, description="One per step: True where the step is right.")

    @model_validator(mode="after")
    def _one_label_per_step(self) -> StepwiseRow:
        if len(self.labels) != len(self.completions):
            raise ValueError(f"row {self.id!r}: {len(self.labels)} labels for {len(self.completions)} steps")
        return self


class PreferenceRow(BaseModel):
    """Two continuations of one prefix: one reaching the gold answer, one not (TRL preference)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The prefix node and the two branches.")
    prompt: str = Field(description="The problem statement.")
    chosen: str = Field(description="The shared prefix + a branch graded correct.")
    rejected: str = Field(description="The shared prefix + a sibling branch graded incorrect.")
    prefix: str = Field(description="The shared start of chosen and rejected (kept steps of the response).")


def stepwise_row(row_id: str, prompt: str, steps: list[str], first_error: int | None,
                 after_error: AfterError = "drop") -> StepwiseRow:
    """Label ``steps`` from the index of the first wrong step (None: every step is right).

    >>> stepwise_row("a", "2+2?", ["x", "y", "z"], 1).labels
    [True, False]
    >>> stepwise_row("a", "2+2?", ["x", "y", "z"], 1, after_error="false").labels
    [True, False, False]
    >>> stepwise_row("a", "2+2?", ["x", "y"], None).labels
    [True, True]
    """
    if first_error is not None and not 0 <= first_error < len(steps):
        raise ValueError(f"{row_id}: first error {first_error} is outside the {len(steps)} steps")
    if first_error is None:
        return StepwiseRow(id=row_id, prompt=prompt, completions=steps, labels=[True] * len(steps))
    kept = steps if after_error == "false" else steps[: first_error + 1]
    labels = [i < first_error for i in range(len(kept))]
    return StepwiseRow(id=row_id, prompt=prompt, completions=kept, labels=labels)


__all__ = ["AFTER_ERROR", "AfterError", "PreferenceRow", "StepwiseRow", "stepwise_row"]
