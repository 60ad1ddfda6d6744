"""Which wrong nodes a search expands next: a sort key over the candidates, registered by name.

Every rule ranks first the candidates whose cut prefix was expanded the fewest times (two nodes cut to
the same text would only re-sample one prefix), then by its own key, then by age (older first).
``deepest`` prefers the longest verified prefix (most kept steps, then most characters), then the
higher mean step score; ``score`` prefers the higher mean step score, then the deeper cut.

>>> a = Candidate(node_id="r0", order=0, kept_steps=1, prefix_chars=10, mean_score=0.9, times_expanded=0)
>>> b = Candidate(node_id="r0/prm/fire/1", order=1, kept_steps=3, prefix_chars=40, mean_score=0.2, times_expanded=0)
>>> [c.node_id for c in sorted([a, b], key=SELECTIONS.get("deepest"))]
['r0/prm/fire/1', 'r0']
>>> [c.node_id for c in sorted([a, b], key=SELECTIONS.get("score"))]
['r0', 'r0/prm/fire/1']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prm_fire.registry import Registry

SELECTIONS: Registry[Callable[["Candidate"], tuple]] = Registry("selection rule")


@dataclass(frozen=True)
class Candidate:
    """A wrong node that can be expanded, with what the rules rank it by."""

    node_id: str
    order: int
    kept_steps: int
    prefix_chars: int
    mean_score: float
    times_expanded: int


@SELECTIONS.register("deepest")
def deepest(c: Candidate) -> tuple:
    """Longest verified prefix first."""
    return (c.times_expanded, -c.kept_steps, -c.prefix_chars, -c.mean_score, c.order)


@SELECTIONS.register("score")
def highest_score(c: Candidate) -> tuple:
    """Highest mean step score first."""
    return (c.times_expanded, -c.mean_score, -c.kept_steps, -c.prefix_chars, c.order)
