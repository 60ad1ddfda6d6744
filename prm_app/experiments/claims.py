"""The FIRE paper's Table 5 claims, each as one paired contrast over the same items, with a verdict.

Table 5 (pass@10) makes three claims: FIRE's gain over regular sampling at the first line; that gain
shrinking once the cut keeps a few lines; and the PRM-line beating lines 1-3. Each becomes a contrast
of per-item pass@10 values (resampling items keeps an item's values together), compared with the
paper's own value of the same contrast. The verdict is mechanical: *reproduced* when the 95% interval
lies above zero (the paper's direction: all its contrasts are positive), *contradicted* when it lies
below, *not resolved* otherwise; and whether the interval rules out the paper's size.

A run with an oracle-line (the cut at a human-labelled first error, ``cpu-oracle``) also tests the
third claim with that cut in place of the PRM's (the paper's PRM-line values stand for it: the paper's
claim is about cutting at the first error), and contrasts the oracle-line with the PRM-line on the same
items: what the locator's misplacements cost. That contrast has no paper value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from prm_fire.metrics import Interval, paired_contrast
from prm_fire.sampling import Method

# (item id, method) -> metric name -> value, per insertion point
PointMetrics = dict[str, dict[tuple[str, Method], dict[str, float]]]
Verdict = Literal["reproduced", "contradicted", "not resolved"]


class Claim(BaseModel):
    """One contrast of pass@k values over the items every cell it reads holds."""

    model_config = ConfigDict(frozen=True)

    claim: str = Field(description="The paper's claim this contrast tests.")
    contrast: str = Field(description="What is subtracted from what, e.g. 'FIRE - regular at 1st-line'.")
    difference: Interval = Field(description="Mean over items (a fraction) with its 95% bootstrap interval.")
    paper: float | None = Field(description="The same contrast in the paper's Table 5 (a fraction); None: the "
                                            "paper has no such cut.")

    @computed_field
    @property
    def verdict(self) -> Verdict:
        if self.difference.low > 0:
            return "reproduced"
        return "contradicted" if self.difference.high < 0 else "not resolved"

    @computed_field
    @property
    def rules_out_paper(self) -> bool:
        """The paper's value lies outside the interval."""
        return self.paper is not None and not self.difference.low <= self.paper <= self.difference.high


def _contrast(values: PointMetrics, metric: str, terms: list[tuple[float, str, Method]]) -> Interval | None:
    """Per item, sum of sign * value over ``terms`` (sign, point, method); None if no item has them all."""
    by_item = [(sign, {i: v[metric] for (i, m), v in values.get(p, {}).items() if m == method and metric in v})
               for sign, p, method in terms]
    contrast = paired_contrast(by_item, items=sorted(by_item[0][1]))
    return contrast.difference if contrast is not None else None


def paper_claims(values: PointMetrics, paper: dict[tuple[Method, str], float],
                 titles: Callable[[str], str]) -> list[Claim]:
    """The three claims of Table 5 on pass@10 (the paper's metric), for the points ``values`` holds
    (``paper`` in percent); with an oracle-line, the third claim at that cut and oracle minus PRM-line."""
    metric = "pass@10"
    gain = lambda p: [(1.0, p, "fire"), (-1.0, p, "regular")]  # noqa: E731
    as_paper = {"oracle": "prm"}  # the paper's PRM-line stands for the cut at the first error
    paper_value = lambda terms: sum(sign * paper[(m, as_paper.get(p, p))] for sign, p, m in terms) / 100  # noqa: E731
    specs = [("FIRE raises pass@10 at the 1st line", f"FIRE - regular at {titles('line1')}", gain("line1"))]
    for later in ("line2", "line3"):
        specs.append(("FIRE's gain shrinks once the cut keeps lines",
                      f"gain at {titles('line1')} - gain at {titles(later)}",
                      gain("line1") + [(-sign, later, m) for sign, _, m in gain(later)]))
    for method in ("regular", "fire"):
        for line in ("line1", "line2", "line3"):
            specs.append(("The PRM-line beats lines 1-3", f"{method}: {titles('prm')} - {titles(line)}",
                          [(1.0, "prm", method), (-1.0, line, method)]))
    for method in ("regular", "fire"):
        for line in ("line1", "line2", "line3"):
            specs.append(("Cutting at the labelled first error beats lines 1-3",
                          f"{method}: {titles('oracle')} - {titles(line)}",
                          [(1.0, "oracle", method), (-1.0, line, method)]))
        specs.append(("Where the locator cuts matters (no paper value)",
                      f"{method}: {titles('oracle')} - {titles('prm')}", [(1.0, "oracle", method), (-1.0, "prm", method)]))
    claims = []
    for claim, contrast, terms in specs:
        if (difference := _contrast(values, metric, terms)) is not None:
            value = None if {p for _, p, _ in terms} == {"oracle", "prm"} else paper_value(terms)
            claims.append(Claim(claim=claim, contrast=contrast, difference=difference, paper=value))
    return claims


def render_claims(claims: list[Claim]) -> list[str]:
    """Markdown lines: one row per contrast, in points."""
    if not claims:
        return []
    lines = ["The paper's claims, pass@10 contrasts paired over the same items (points, 95% bootstrap interval):",
             "", "| claim | contrast | ours | paper | verdict |", "|---|---|---|---|---|"]
    for c in claims:
        d = c.difference
        verdict = c.verdict + ("; rules out the paper's size" if c.rules_out_paper else "")
        paper = "–" if c.paper is None else f"{100 * c.paper:+.1f}"
        lines.append(f"| {c.claim} | {c.contrast} | {100 * d.mean:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}] "
                     f"| {paper} | {verdict} |")
    return lines
