"""Cut a response at an insertion point, keeping only the verified start.

Insertion points: ``line1``, ``line2``, ``line3`` (generally ``line<k>``: keep the first k-1 steps
verbatim, branch at the start of step k), ``prm`` (keep the steps before the first incorrect step
located by a process reward model), ``entropy`` (keep the steps before the line holding the
policy's highest-entropy token, :mod:`prm_fire.entropy`: no reward model) and ``oracle`` (keep the
steps before a human-labelled first error, e.g. ProcessBench's label: the cut a perfect locator makes).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.steps import StepMode, split_steps

_LINE = re.compile(r"line([1-9][0-9]*)")
#: The points that cut before an indexed step, and what names the index in errors.
_INDEXED = {"prm": "first-error", "entropy": "entropy-line", "oracle": "labelled first-error"}


class PrefixError(ValueError):
    """A response cannot be cut at the asked insertion point."""


class Prefix(BaseModel):
    """The kept start of a response: ``text`` is exactly the response's first ``kept_steps`` steps
    (with the separators after them), where the branches start."""

    model_config = ConfigDict(frozen=True)

    point: str = Field(description="Insertion point: 'line<k>', 'prm', 'entropy' or 'oracle'.")
    text: str = Field(description="response[:start of the first dropped step].")
    kept_steps: int = Field(ge=0, description="Number of steps kept verbatim.")
    step_mode: StepMode = "line"
    first_error_index: int | None = Field(default=None, description="PRM's first incorrect step (0-based), for 'prm'.")
    entropy_index: int | None = Field(default=None, description="The entropy-line's step (0-based), for 'entropy'.")
    label_index: int | None = Field(default=None, description="The labelled first error (0-based), for 'oracle'.")


def check_point(point: str) -> str:
    """Validate an insertion point name and return it.

    >>> check_point("line2"), check_point("prm"), check_point("entropy"), check_point("oracle")
    ('line2', 'prm', 'entropy', 'oracle')
    >>> check_point("line0")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: unknown insertion point 'line0': use line1, line2, ..., prm, entropy or oracle
    """
    if point not in _INDEXED and not _LINE.fullmatch(point):
        raise PrefixError(f"unknown insertion point {point!r}: use line1, line2, ..., prm, entropy or oracle")
    return point


def build_prefix(
    response: str,
    point: str,
    *,
    step_mode: StepMode = "line",
    first_error_index: int | None = None,
    entropy_index: int | None = None,
    label_index: int | None = None,
    problem_id: str = "?",
) -> Prefix:
    """Cut ``response`` at ``point``.

    ``line<k>`` keeps the first k-1 steps and needs the response to have at least k steps (step k is
    the one that gets replaced). ``prm`` keeps the steps before ``first_error_index`` (0-based),
    ``entropy`` those before ``entropy_index``, ``oracle`` those before ``label_index``. An index that
    is given must name a step of the response, whatever the point.

    >>> r = "Let x = 2.\\nThen 2x = 4.\\nSo the answer is 4."
    >>> build_prefix(r, "line3").text
    'Let x = 2.\\nThen 2x = 4.\\n'
    >>> build_prefix(r, "line1").text
    ''
    >>> build_prefix(r, "prm", first_error_index=1).kept_steps
    1
    >>> build_prefix(r, "entropy", entropy_index=2).text
    'Let x = 2.\\nThen 2x = 4.\\n'
    >>> build_prefix(r, "oracle", label_index=1).text
    'Let x = 2.\\n'
    >>> build_prefix("One line only.", "line3", problem_id="builtin/1")
    Traceback (most recent call last):
    ...
    prm_fire.prefixes.PrefixError: problem 'builtin/1': response has 1 line, insertion point line3 needs 3
    """
    check_point(point)
    steps = split_steps(response, step_mode)
    unit = step_mode
    indices = {"prm": first_error_index, "entropy": entropy_index, "oracle": label_index}
    for name, index in indices.items():
        if index is not None and not 0 <= index < len(steps):
            raise PrefixError(f"problem {problem_id!r}: {_INDEXED[name]} index {index} is outside the "
                              f"response's {len(steps)} {unit}s")
    if point in _INDEXED:
        keep = indices[point]
        if keep is None:
            name = _INDEXED[point]
            article = "an" if name[0] in "aeiou" else "a"
            raise PrefixError(f"problem {problem_id!r}: insertion point {point} needs {article} {name} index "
                              "(none given)")
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
                  entropy_index=entropy_index, label_index=label_index)
