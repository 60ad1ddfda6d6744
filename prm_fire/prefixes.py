"""Cut a response at an insertion point, keeping only the verified start.

Insertion points: ``line1``, ``line2``, ``line3`` (generally ``line<k>``: keep the first k-1 steps
verbatim, branch at the start of step k) and ``prm`` (keep the steps before the first incorrect step
located by a process reward model).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.steps import StepMode, split_steps

_LINE = re.compile(r"line([1-9][0-9]*)")


class PrefixError(ValueError):
    """A response cannot be cut at the asked insertion point."""


class Prefix(BaseModel):
    """The kept start of a response: ``text`` is exactly the response's first ``kept_steps`` steps
    (with the separators after them), where the branches start."""

    model_config = ConfigDict(frozen=True)

    point: str = Field(description="Insertion point: 'line<k>' or 'prm'.")
    text: str = Field(description="response[:start of the first dropped step].")
    kept_steps: int = Field(ge=0, description="Number of steps kept verbatim.")
    step_mode: StepMode = "line"
    first_error_index: int | None = Field(default=None, description="PRM's first incorrect step (0-based), for 'prm'.")


def check_point(point: str) -> str:
    """Validate an insertion point name and return it.

    >>> check_point("line2"), check_point("prm")
    ('line2', 'prm')
    >>> check_point("line0")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: unknown insertion point 'line0': use line1, line2, ... or prm
    """
    if point != "prm" and not _LINE.fullmatch(point):
        raise PrefixError(f"unknown insertion point {point!r}: use line1, line2, ... or prm")
    return point


def build_prefix(
    response: str,
    point: str,
    *,
    step_mode: StepMode = "line",
    first_error_index: int | None = None,
    problem_id: str = "?",
) -> Prefix:
    """Cut ``response`` at ``point``.

    ``line<k>`` keeps the first k-1 steps and needs the response to have at least k steps (step k is
    the one that gets replaced). ``prm`` keeps the steps before ``first_error_index`` (0-based). A
    ``first_error_index`` that is given must name a step of the response, whatever the point.

    >>> r = "Let x = 2.\\nThen 2x = 4.\\nSo the answer is 4."
    >>> build_prefix(r, "line3").text
    'Let x = 2.\\nThen 2x = 4.\\n'
    >>> build_prefix(r, "line1").text
    ''
    >>> build_prefix(r, "prm", first_error_index=1).kept_steps
    1
    >>> build_prefix("One line only.", "line3", problem_id="builtin/1")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: problem 'builtin/1': response has 1 line, insertion point line3 needs 3
    """
    check_point(point)
    steps = split_steps(response, step_mode)
    unit = step_mode
    if first_error_index is not None and not 0 <= first_error_index < len(steps):
        raise PrefixError(
            f"problem {problem_id!r}: first-error index {first_error_index} is outside the "
            f"response's {len(steps)} {unit}s"
        )
    if point == "prm":
        if first_error_index is None:
            raise PrefixError(f"problem {problem_id!r}: insertion point prm needs a first-error index (none given)")
        keep = first_error_index
    else:
        k = int(point[4:])
        if len(steps) < k:
            plural = "" if len(steps) == 1 else "s"
            raise PrefixError(
                f"problem {problem_id!r}: response has {len(steps)} {unit}{plural}, insertion point {point} needs {k}"
            )
        keep = k - 1
    text = response[: steps[keep].start]
    return Prefix(point=point, text=text, kept_steps=keep, step_mode=step_mode, first_error_index=first_error_index)
