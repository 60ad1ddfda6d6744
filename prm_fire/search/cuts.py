"""Where a wrong node is cut: how many of its steps the next branches keep.

A cut maps a wrong node (:class:`CutInput`: its full text, steps, tree record and, when the search
has a scorer, its first flagged step) to the number of steps kept. ``prm`` keeps the steps before the
first flagged one; when the scorer flags none in a response whose answer is wrong, it cuts at the last
step (the answer is the one known error). ``line<k>`` keeps the first k-1 steps (all but the last when
the node is shorter). ``entropy-line`` needs no scorer and no reference: it keeps the steps before the
line (2 or later) that holds the policy's most uncertain token (:mod:`prm_fire.entropy`). Further rules
register in :data:`CUTS`; :func:`make_cut` hands them the shared ``resources`` their constructor names
(``entropy-line`` takes an ``entropy`` scorer, or the ``generator`` and ``model`` to build one).

>>> from prm_fire.steps import split_steps
>>> text = "a = 1\\nb = 2\\nc = 3\\nd = 4\\nSo 10."
>>> at = lambda first: CutInput(text=text, steps=split_steps(text), first_error_index=first)
>>> make_cut("prm").keep(at(2)), make_cut("prm").keep(at(None)), make_cut("line3").keep(at(None))
(2, 4, 2)
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Protocol

from prm_fire.registry import Registry
from prm_fire.problems import Problem
from prm_fire.steps import Step, StepMode

_LINE = re.compile(r"line([1-9][0-9]*)")


@dataclass(frozen=True)
class CutInput:
    """What a cut sees of one wrong node (with at least one step)."""

    text: str
    steps: list[Step]
    first_error_index: int | None = None
    record: Any = None  # the tree node's record (ResponseNode or BranchNode: token ids, first-token log-probs)
    problem: Problem | None = None  # whose prompt the policy answered (a cut that reads the policy needs it)
    step_mode: StepMode = "line"


class Cut(Protocol):
    """A cut rule: ``name`` is the insertion point recorded on the prefixes it makes."""

    name: str
    needs_scores: bool

    def keep(self, node: CutInput) -> int:
        """Steps to keep (0 .. len(node.steps) - 1)."""
        ...


CUTS: Registry[type] = Registry("cut")


@CUTS.register("prm")
class PrmCut:
    """Keep the steps before the scorer's first flagged step; none flagged: cut at the last step."""

    name = "prm"
    needs_scores = True

    def keep(self, node: CutInput) -> int:
        last = len(node.steps) - 1
        return last if node.first_error_index is None else min(node.first_error_index, last)


class LineCut:
    """Keep the first k-1 steps (``line<k>``), at most all but the last."""

    needs_scores = False

    def __init__(self, k: int) -> None:
        self.k = k
        self.name = f"line{k}"

    def keep(self, node: CutInput) -> int:
        return min(self.k - 1, len(node.steps) - 1)


@CUTS.register("entropy-line")
class EntropyLineCut:
    """Keep the steps before the entropy-line: the line (2 or later) holding the token where the policy's
    next-token entropy over the node's full text peaks. Reads neither a scorer nor the reference; it costs
    one forward pass of the policy per node (prefill, not generated tokens). A one-step node is cut at
    its start.

    Resources: ``entropy`` (an :class:`~prm_fire.entropy.EntropyScorer`), or the policy's ``generator``
    and ``model`` name, from which one is built at the first cut (the HF backend's own weights, else a
    transformers copy of ``model``).
    """

    name = "entropy"
    needs_scores = False

    def __init__(self, entropy: Any = None, generator: Any = None, model: str | None = None) -> None:
        self.entropy, self.generator, self.model = entropy, generator, model

    def keep(self, node: CutInput) -> int:
        if len(node.steps) < 2:
            return 0
        if self.entropy is None and self.model is not None:
            from prm_fire.entropy import EntropyScorer

            self.entropy = EntropyScorer.for_generator(self.generator, self.model)
        if self.entropy is None or node.problem is None:
            raise ValueError("cut 'entropy-line' needs the policy's weights and the problem: "
                             "make_cut('entropy-line', generator=generator, model=model) or entropy=EntropyScorer")
        from prm_fire.prompts import build_messages

        return self.entropy.entropy_line(node.problem.id, build_messages(node.problem), node.text,
                                         node.step_mode).step_index


def make_cut(name: str, **resources: Any) -> Cut:
    """The cut rule called ``name``: ``line<k>`` or a name registered in :data:`CUTS`.

    ``resources`` (say a ``generator``) go to a registered cut's constructor where it names them.
    """
    line = _LINE.fullmatch(name)
    if line:
        return LineCut(int(line.group(1)))
    try:
        cls = CUTS.get(name)
    except KeyError:
        raise ValueError(f"unknown cut {name!r}; known: {', '.join(CUTS.names())}, line<k> (k >= 1)") from None
    accepted = inspect.signature(cls).parameters
    return cls(**{key: value for key, value in resources.items() if key in accepted})
