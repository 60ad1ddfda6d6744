"""Split a response into steps, keeping exact character offsets into the original text.

``"line"`` splits at every ``"\\n"`` (the FIRE paper's "lines"); ``"paragraph"`` at blank lines
(``"\\n\\n"``, the Qwen-PRM convention). Blank segments are not steps. Because every step keeps its
span, ``text[:steps[k].start]`` is exactly the response up to the start of step k.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

StepMode = Literal["line", "paragraph"]
_SEPARATORS: dict[str, re.Pattern[str]] = {"line": re.compile(r"\n"), "paragraph": re.compile(r"\n\s*\n")}


class Step(BaseModel):
    """One step: its text and where it stands in the response (``response[start:end] == text``)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


def split_steps(text: str, mode: StepMode = "line") -> list[Step]:
    """The non-blank steps of ``text``, with their character spans.

    >>> [s.text for s in split_steps("a = 1\\n\\nb = 2\\nSo 3.")]
    ['a = 1', 'b = 2', 'So 3.']
    >>> [s.text for s in split_steps("a = 1\\n\\nb = 2\\nSo 3.", "paragraph")]
    ['a = 1', 'b = 2\\nSo 3.']
    >>> steps = split_steps("x\\n  y\\n")
    >>> "x\\n  y\\n"[: steps[1].start]
    'x\\n'
    """
    if mode not in _SEPARATORS:
        raise ValueError(f"unknown step mode {mode!r}; use 'line' or 'paragraph'")
    steps: list[Step] = []
    start = 0
    for match in [*_SEPARATORS[mode].finditer(text), None]:
        end = match.start() if match else len(text)
        segment = text[start:end]
        if segment.strip():
            steps.append(Step(index=len(steps), text=segment, start=start, end=end))
        if match:
            start = match.end()
    return steps
