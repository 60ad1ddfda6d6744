"""Where a wrong node is cut: how many of its steps the next branches keep.

A cut maps a node's steps and (when the search has a scorer) its first flagged step to the number of
steps kept. ``prm`` keeps the steps before the first flagged one; when the scorer flags none in a
response whose answer is wrong, it cuts at the last step (the answer is the one known error). ``line<k>``
keeps the first k-1 steps (all but the last when the node is shorter). Further rules register in
:data:`CUTS` (an ``entropy-line`` cut fits here: it needs the branch's token log-probs, not scores).

>>> make_cut("prm").keep(n_steps=5, first_error_index=2), make_cut("prm").keep(n_steps=5, first_error_index=None)
(2, 4)
>>> make_cut("line3").keep(n_steps=5, first_error_index=None), make_cut("line3").keep(n_steps=2, first_error_index=None)
(2, 1)
"""

from __future__ import annotations

import re
from typing import Protocol

from prm_fire.registry import Registry

_LINE = re.compile(r"line([1-9][0-9]*)")


class Cut(Protocol):
    """A cut rule: ``name`` is the insertion point recorded on the prefixes it makes."""

    name: str
    needs_scores: bool

    def keep(self, *, n_steps: int, first_error_index: int | None) -> int:
        """Steps to keep (0 .. n_steps-1) of a wrong node with ``n_steps`` >= 1 steps."""
        ...


CUTS: Registry[type] = Registry("cut")


@CUTS.register("prm")
class PrmCut:
    """Keep the steps before the scorer's first flagged step; none flagged: cut at the last step."""

    name = "prm"
    needs_scores = True

    def keep(self, *, n_steps: int, first_error_index: int | None) -> int:
        return n_steps - 1 if first_error_index is None else min(first_error_index, n_steps - 1)


class LineCut:
    """Keep the first k-1 steps (``line<k>``), at most all but the last."""

    needs_scores = False

    def __init__(self, k: int) -> None:
        self.k = k
        self.name = f"line{k}"

    def keep(self, *, n_steps: int, first_error_index: int | None) -> int:
        return min(self.k - 1, n_steps - 1)


def make_cut(name: str) -> Cut:
    """The cut rule called ``name``: ``line<k>`` or a name registered in :data:`CUTS`."""
    line = _LINE.fullmatch(name)
    if line:
        return LineCut(int(line.group(1)))
    try:
        return CUTS.get(name)()
    except KeyError:
        raise ValueError(f"unknown cut {name!r}; known: {', '.join(CUTS.names())}, line<k> (k >= 1)") from None
