"""Step labels and preference pairs read off a branched tree (:mod:`prm_fire.tree`).

**Step labels.** A step is *positive* when some continuation after it reaches the gold answer
(Math-Shepherd's hard estimate, from the tree's own branches). Each prefix node that keeps ``k >= 1``
steps and has graded branches estimates step ``k - 1``: positive iff one of its branches is graded
correct. A graded solution (the response, or a branch's full text) is its own continuation: correct,
its last step is positive; wrong, its last step reaches a wrong answer and is negative. A positive step
makes every step before it positive (the rest of the solution plus that continuation is a
continuation after them). Each graded solution gives one row: its steps up to the last positive one,
then the next step if it is known negative (the first wrong step); steps whose label the tree does
not determine are not exported. A row repeated across sibling solutions, or that is the start of
another row, is written once.

**Preference pairs.** Under one prefix node, every branch graded correct against every sibling graded
incorrect: ``chosen`` and ``rejected`` are the full texts (the shared prefix + each branch).
"""

from __future__ import annotations

import networkx as nx

from prm_app.export.rows import AfterError, PreferenceRow, StepwiseRow
from prm_fire.tree import node_text
from prm_fire.steps import split_steps


class NoGradedBranchesError(ValueError):
    """A tree none of whose branches carries a grade (nothing to label from)."""


def _graded_prefixes(tree: nx.DiGraph, source: str) -> dict[str, bool]:
    """Prefix node -> whether one of its graded branches is correct (prefixes with graded branches only)."""
    reached: dict[str, bool] = {}
    for node_id, attrs in tree.nodes(data=True):
        record = attrs["data"]
        if record.kind == "branch" and record.branch.grade is not None:
            [parent] = tree.predecessors(node_id)
            reached[parent] = reached.get(parent, False) or record.branch.correct
    if not reached:
        raise NoGradedBranchesError(f"{source}: the tree has no graded branches (nothing to label steps from)")
    return reached


def _known_labels(tree: nx.DiGraph, node_id: str, reached: dict[str, bool]) -> tuple[list[str], dict[int, bool]]:
    """The steps of a solution node and the labels the tree determines (before propagation)."""
    record = tree.nodes[node_id]["data"]
    text, mode = node_text(tree, node_id), record.step_mode
    steps = [s.text for s in split_steps(text, mode)]
    known: dict[int, bool] = {}
    grade = record.grade if record.kind == "response" else record.branch.grade
    if grade is not None and steps:
        known[len(steps) - 1] = grade.correct
    for prefix_id, correct in reached.items():
        prefix = tree.nodes[prefix_id]["data"].prefix
        k = prefix.kept_steps
        if 1 <= k <= len(steps) and prefix.step_mode == mode and text.startswith(prefix.text) and (
                [s.text for s in split_steps(prefix.text, mode)] == steps[:k]):
            known[k - 1] = known.get(k - 1, False) or correct
    return steps, known


def tree_stepwise(tree: nx.DiGraph, *, source: str = "tree", after_error: AfterError = "drop") -> list[StepwiseRow]:
    """One stepwise row per graded solution of ``tree`` (see the module docstring), repeats removed.

    ``after_error="false"`` also keeps the steps after the first negative one, labelled False.
    Raises :class:`NoGradedBranchesError` when no branch is graded.
    """
    reached = _graded_prefixes(tree, source)
    question = tree.nodes["problem"]["data"].problem.question
    rows: dict[tuple, StepwiseRow] = {}
    for node_id, attrs in tree.nodes(data=True):
        if attrs["data"].kind not in ("response", "branch"):
            continue
        steps, known = _known_labels(tree, node_id, reached)
        positive = max((i for i, ok in known.items() if ok), default=-1) + 1  # steps 0 .. positive-1 are right
        if known.get(positive) is False:
            end = len(steps) if after_error == "false" else positive + 1
        elif positive:
            end = positive
        else:
            continue
        labels = [i < positive for i in range(end)]
        key = tuple(zip(steps[:end], labels))
        if key not in rows:
            rows[key] = StepwiseRow(id=f"{source}:{node_id}", prompt=question, completions=steps[:end], labels=labels)
    # a row that is the start of another row (same steps, same labels) adds nothing
    starts = {key[:n] for key in rows for n in range(1, len(key))}
    return [row for key, row in rows.items() if key not in starts]


def tree_pairs(tree: nx.DiGraph, *, source: str = "tree") -> list[PreferenceRow]:
    """Every (correct, incorrect) pair of sibling branches under each prefix node of ``tree``.

    Raises :class:`NoGradedBranchesError` when no branch is graded.
    """
    _graded_prefixes(tree, source)
    question = tree.nodes["problem"]["data"].problem.question
    pairs = []
    for prefix_id, attrs in tree.nodes(data=True):
        if attrs["data"].kind != "prefix":
            continue
        graded = [c for c in tree.successors(prefix_id) if tree.nodes[c]["data"].branch.grade is not None]
        good = [c for c in graded if tree.nodes[c]["data"].branch.correct]
        bad = [c for c in graded if not tree.nodes[c]["data"].branch.correct]
        for chosen in good:
            for rejected in bad:
                pairs.append(PreferenceRow(
                    id=f"{source}:{chosen}>{rejected}", prompt=question, chosen=node_text(tree, chosen),
                    rejected=node_text(tree, rejected), prefix=attrs["data"].prefix.text,
                ))
    return pairs


__all__ = ["NoGradedBranchesError", "tree_pairs", "tree_stepwise"]
