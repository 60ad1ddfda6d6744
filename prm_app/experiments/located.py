"""Where the PRM-line fell against the labelled first error, and what the branches from each gave.

With ProcessBench's solutions (``cpu-oracle``) every item has a human-labelled first error and the
PRM's own first flag. Items split by where the flag falls: **before** the label (the cut drops correct
steps), **at** it (the PRM-line is the oracle-line), or **after** it (the kept prefix carries the
error). Per group: the items, and each method's pass@k at the PRM-line and the oracle-line with the
paired difference, so a reader sees what each kind of misplacement costs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_app.experiments.claims import PointMetrics
from prm_app.experiments.dataset import DatasetItem
from prm_fire.metrics import Interval, mean_ci, paired_contrast
from prm_fire.sampling import Method

Relation = Literal["before", "at", "after"]


class LocatedGroup(BaseModel):
    """The items whose PRM flag falls ``relation`` the label, and one method's branches there."""

    model_config = ConfigDict(frozen=True)

    relation: Relation
    method: Method
    items: int
    prm: Interval = Field(description="pass@k at the PRM-line, mean over the group's items.")
    oracle: Interval = Field(description="pass@k at the oracle-line, mean over the group's items.")
    difference: Interval = Field(description="Oracle-line minus PRM-line, paired item by item.")


def relation(item: DatasetItem) -> Relation | None:
    """Where the PRM's first flag falls against the label (None if either is missing)."""
    if item.first_error_index is None or item.label_index is None:
        return None
    if item.first_error_index == item.label_index:
        return "at"
    return "before" if item.first_error_index < item.label_index else "after"


def located_groups(items: list[DatasetItem], values: PointMetrics, metric: str) -> list[LocatedGroup]:
    """One group per (relation, method) that has items with both cells."""
    groups = []
    for rel in ("before", "at", "after"):
        for method in ("regular", "fire"):
            ids = [i.problem.id for i in items if relation(i) == rel
                   and all((i.problem.id, method) in values.get(point, {}) for point in ("prm", "oracle"))]
            if not ids:
                continue
            prm = {i: values["prm"][(i, method)][metric] for i in ids}
            oracle = {i: values["oracle"][(i, method)][metric] for i in ids}
            difference = paired_contrast([(1.0, oracle), (-1.0, prm)], items=ids)
            assert difference is not None  # every id has both cells
            groups.append(LocatedGroup(relation=rel, method=method, items=len(ids), prm=mean_ci(list(prm.values())),
                                       oracle=mean_ci(list(oracle.values())), difference=difference.difference))
    return groups


def render_groups(groups: list[LocatedGroup], metric: str, prm_title: str) -> list[str]:
    """Markdown lines: one row per (relation, method), in points."""
    if not groups:
        return []
    pct = lambda v: f"{100 * v.mean:.1f} [{100 * v.low:.1f}, {100 * v.high:.1f}]"  # noqa: E731
    lines = [f"Where the {prm_title} fell against the labelled first error, and {metric} (%) there and at the "
             "Oracle-line, paired over the group's items [95% bootstrap interval]:", "",
             "| flag vs label | method | items | PRM-line | Oracle-line | oracle - PRM |", "|---|---|---|---|---|---|"]
    for g in groups:
        d = g.difference
        lines.append(f"| {g.relation} | {g.method} | {g.items} | {pct(g.prm)} | {pct(g.oracle)} | "
                     f"{100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] |")
    return lines
