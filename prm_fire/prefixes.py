"""Cut a response at an insertion point, keeping only the verified start.

Insertion points: ``line1``, ``line2``, ``line3`` (generally ``line<k>``: keep the first k-1 steps
verbatim, branch at the start of step k), ``prm`` (keep the steps before the first incorrect step
located by a process reward model) and ``entropy`` (keep the steps before the line holding the
policy's highest-entropy token, :mod:`prm_fire.entropy`: no reward model).
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

    point: str = Field(description="Insertion point: 'line<k>', 'prm' or 'entropy'.")
    text: str = Field(description="response[:start of the first dropped step].")
    kept_steps: int = Field(ge=0, description="Number of steps kept verbatim.")
    step_mode: StepMode = "line"
    first_error_index: int | None = Field(default=None, description="PRM's first incorrect step (0-based), for 'prm'.")
    entropy_index: int | None = Field(default=None, description="The entropy-line's step (0-based), for 'entropy'.")


def check_point(point: str) -> str:
    """Validate an insertion point name and return it.

    >>> check_point("line2"), check_point("prm"), check_point("entropy")
    ('line2', 'prm', 'entropy')
    >>> check_point("line0")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: unknown insertion point 'line0': use line1, line2, ..., prm or entropy
    """
    if point not in ("prm", "entropy") and not _LINE.fullmatch(point):
        raise PrefixError(f"unknown insertion point {point!r}: use line1, line2, ..., prm or entropy")
    return point


def build_prefix(
    response: str,
    point: str,
    *,
    step_mode: StepMode = "line",
    first_error_index: int | None = None,
    entropy_index: int | None = None,
    problem_id: str = "?",
) -> Prefix:
    """Cut ``response`` at ``point``.

    ``line<k>`` keeps the first k-1 steps and needs the response to have at least k steps (step k is
    the one that gets replaced). ``prm`` keeps the steps before ``first_error_index`` (0-based),
    ``entropy`` those before ``entropy_index``. An index that is given must name a step of the
    response, whatever the point.

    >>> r = "Let x = 2.\\nThen 2x = 4.\\nSo the answer is 4."
    >>> build_prefix(r, "line3").text
    'Let x = 2.\\nThen 2x = 4.\\n'
    >>> build_prefix(r, "line1").text
    ''
    >>> build_prefix(r, "prm", first_error_index=1).kept_steps
    1
    >>> build_prefix(r, "entropy", entropy_index=2).text
    'Let x = 2.\\nThen 2x = 4.\\n'
    >>> build_prefix("One line only.", "line3", problem_id="builtin/1")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: problem 'builtin/1': response has 1 line, insertion point line3 needs 3
    """
    check_point(point)
    steps = split_steps(response, step_mode)
    unit = step_mode
    for name, index in (("first-error", first_error_index), ("entropy-line", entropy_index)):
        if index is not None and not 0 <= index < len(steps):
            raise PrefixError(
                f"problem {problem_id!r}: {name} index {index} is outside the response's {len(steps)} {unit}s"
            )
    if point in ("prm", "entropy"):
        keep = first_error_index if point == "prm" else entropy_index
        if keep is None:
            needed = "a first-error index" if point == "prm" else "an entropy-line index"
            raise PrefixError(f"problem {problem_id!r}: insertion point {point} needs {needed} (none given)")
    else:
        k = int(point[4:])
        if len(steps) < k:
            plural = "" if len(steps) == 1 else "s"
            raise PrefixError(
                f"problem {problem_id!r}: response has {len(steps)} {unit}{plural}, insertion point {point} needs {k}"
            )
        keep = k - 1
    text = response[: steps[keep].start]
    return Prefix(point=point, text=text, kept_steps=keep, step_mode=step_mode, first_error_index=first_error_index,
                  entropy_index=entropy_index)
