"""How many items (and branches per item) a Table 5 run needs: a power calculation from its first items.

The paper's claims are differences between FIRE and regular sampling at the same insertion point, so
the quantity to resolve is the paired difference d = FIRE - regular of an item's pass@k. From the
first items of a run (say 30) we take the spread of d and ask, per insertion point, how many items a
two-sided paired test (level ``alpha``) needs to detect a difference of the paper's size with
``power``, and how many give a 95% interval of half-width ``half_width``:

    N_detect = ((z_{1-alpha/2} + z_{power}) * sd(d) / delta)^2,   N_interval = (z_{0.975} * sd(d) / h)^2.

Part of sd(d) is the sampling noise of estimating pass@k from n branches. With n = 10, pass@10 is 0 or
1 per item; more branches (n = 20) estimate it with less noise. We estimate that part by resampling: for
each item and method, n fresh Bernoulli branches at the item's observed success rate, pass@k of
them, d again; the extra variance at n compared with the run's own n scales the item counts. The
numbers are estimates from a few items: the plan states them before the rest of the run is measured.

:func:`plan_contrasts` does the same for differences between two insertion points of one method (say
Oracle-line minus 1st-line, each item's own pair), with the paper's difference between those columns
as the effect (the Oracle-line takes the paper's PRM-line value): how a run of another split (MATH
after GSM8K) is sized from the items already measured.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from prm_app.experiments.config import ExperimentConfig
from prm_app.experiments.insertion import InsertionResult, journal_path
from prm_fire.atomic import write_atomic
from prm_app.experiments.table import PAPER_TABLE5
from prm_fire.journal import read_journal
from prm_fire.metrics import pass_at_k


class SampleSize(BaseModel):
    """The items a paired pass@k difference needs, estimated from the items measured so far."""

    model_config = ConfigDict(frozen=True)

    items: int = Field(description="Items the estimate comes from (those both sides of the difference hold).")
    mean: float = Field(description="Observed mean paired difference (fraction).")
    sd: float = Field(description="Observed standard deviation of the paired difference at the run's n.")
    delta: float | None = Field(description="Effect to detect: the paper's difference (fraction).")
    items_to_detect: dict[int, int | None] = Field(
        description="Per branch count n: items for a paired test to detect delta (None: no paper value, or delta 0).")
    items_for_half_width: dict[int, int] = Field(description="Per branch count n: items for a 95% interval of +- half_width.")


class PointPower(SampleSize):
    """One insertion point's FIRE - regular difference."""

    point: str


class ContrastPower(SampleSize):
    """The difference ``a`` - ``b`` between two insertion points of one method."""

    method: str
    a: str
    b: str


class PlanSettings(BaseModel):
    """What a plan was computed for: the run, pass@k, the run's n, the test's level and power, the interval."""

    model_config = ConfigDict(frozen=True)

    config_name: str
    k: int
    run_n: int
    alpha: float
    power: float
    half_width: float


class PowerPlan(PlanSettings):
    """The plan a run's first items give: per point, items needed for each branch count n."""

    first_items: int
    points: list[PointPower]


class ContrastPlan(PlanSettings):
    """Per method and contrast, the items a run needs for each branch count n (:func:`plan_contrasts`)."""

    contrasts: list[ContrastPower]


def _pass_at(correct: np.ndarray, n: int, k: int) -> np.ndarray:
    return np.array([pass_at_k(n, int(c), k) for c in correct])


def _noise_variance(rates: np.ndarray, n: int, k: int, rng: np.random.Generator, draws: int = 400) -> float:
    """Mean over items of the variance of pass@k estimated from n Bernoulli branches at each item's rate."""
    correct = rng.binomial(n, rates[None, :], size=(draws, rates.size))
    values = np.vectorize(lambda c: pass_at_k(n, int(c), k))(correct)
    return float(values.var(axis=0).mean())


def _items_needed(a: np.ndarray, b: np.ndarray, delta: float | None, *, run_n: int, k: int, ns: tuple[int, ...],
                  alpha: float, power: float, half_width: float, seed: int) -> dict:
    """items, mean, sd, delta, items_to_detect, items_for_half_width of the paired pass@k difference a - b,
    from the correct-branch counts (of ``run_n``) of the same items."""
    if k > run_n:
        raise ValueError(f"power: pass@{k} needs n >= {k} branches, the run has n = {run_n}")
    z_a, z_p, z_95 = (NormalDist().inv_cdf(q) for q in (1 - alpha / 2, power, 0.975))
    rng = np.random.default_rng(seed)
    d = _pass_at(a, run_n, k) - _pass_at(b, run_n, k)
    sd = float(d.std(ddof=1))
    rates = [a / run_n, b / run_n]
    noise_run = sum(_noise_variance(r, run_n, k, rng) for r in rates)
    detect, interval = {}, {}
    for n in (n for n in ns if n >= k):
        noise_n = sum(_noise_variance(r, n, k, rng) for r in rates)
        var = max(sd**2 - noise_run + noise_n, 1e-12)  # the same items, the noise of n branches instead of run_n
        detect[n] = max(math.ceil((z_a + z_p) ** 2 * var / delta**2), 2) if delta else None
        interval[n] = max(math.ceil(z_95**2 * var / half_width**2), 2)
    return {"items": len(d), "mean": float(d.mean()), "sd": sd, "delta": delta, "items_to_detect": detect,
            "items_for_half_width": interval}


def point_power(
    point: str,
    fire: np.ndarray,
    regular: np.ndarray,
    *,
    run_n: int,
    k: int = 10,
    ns: tuple[int, ...] = (10, 20),
    alpha: float = 0.05,
    power: float = 0.8,
    half_width: float = 0.10,
    seed: int = 0,
) -> PointPower:
    """Items one point needs, from the correct-branch counts (of ``run_n``) of the same items per method."""
    if len(fire) != len(regular) or len(fire) < 2:
        raise ValueError(f"power: {point} needs the same >= 2 items for both methods, got {len(fire)} and {len(regular)}")
    paper = PAPER_TABLE5.get(("fire", point)), PAPER_TABLE5.get(("regular", point))
    delta = None if None in paper else (paper[0] - paper[1]) / 100
    return PointPower(point=point, **_items_needed(fire, regular, delta, run_n=run_n, k=k, ns=ns, alpha=alpha,
                                                   power=power, half_width=half_width, seed=seed))


def paper_column(point: str) -> str:
    """The paper's column that stands for ``point``: the Oracle-line is judged against the PRM-line's value."""
    return "prm" if point == "oracle" else point


def plan_contrasts(
    config: ExperimentConfig,
    contrasts: list[tuple[str, str]],
    *,
    k: int | None = None,
    ns: tuple[int, ...] = (10, 20),
    alpha: float = 0.05,
    power: float = 0.8,
    half_width: float = 0.10,
) -> ContrastPlan:
    """For each method of the run and each ``(a, b)`` pair of its insertion points, the items a paired test
    of a - b needs (every item both points hold; the settings as in :func:`point_power`)."""
    k = k or max(config.insertion.ks)
    run_n = config.insertion.n
    journals = {p: read_journal(journal_path(config, p), InsertionResult) for p in {p for c in contrasts for p in c}}
    out = []
    for method in config.insertion.methods:
        for a, b in contrasts:
            counts = [{r.item_id: r.correct for r in journals[p] if r.method == method} for p in (a, b)]
            ids = [i for i in counts[0] if i in counts[1]]
            if len(ids) < 2:
                continue
            paper = PAPER_TABLE5.get((method, paper_column(a))), PAPER_TABLE5.get((method, paper_column(b)))
            delta = None if None in paper else (paper[0] - paper[1]) / 100
            arrays = [np.array([c[i] for i in ids]) for c in counts]
            out.append(ContrastPower(method=method, a=a, b=b, **_items_needed(
                *arrays, delta, run_n=run_n, k=k, ns=ns, alpha=alpha, power=power, half_width=half_width, seed=0)))
    return ContrastPlan(config_name=config.name, k=k, run_n=run_n, alpha=alpha, power=power, half_width=half_width,
                        contrasts=out)


def plan_power(
    config: ExperimentConfig,
    *,
    first_items: int = 30,
    k: int | None = None,
    ns: tuple[int, ...] = (10, 20),
    alpha: float = 0.05,
    power: float = 0.8,
    half_width: float = 0.10,
) -> PowerPlan:
    """The power plan from the first ``first_items`` kept items (in attempt order) at every insertion point,
    for pass@k (default: the config's largest k); the other settings as in :func:`point_power`."""
    from prm_app.experiments.dataset import read_items

    k = k or max(config.insertion.ks)
    order = [i.problem.id for i in read_items(config)][:first_items]
    run_n = config.insertion.n
    points = []
    for point in config.insertion.points:
        by = {(r.item_id, r.method): r for r in read_journal(journal_path(config, point), InsertionResult)}
        ids = [i for i in order if (i, "fire") in by and (i, "regular") in by]
        if len(ids) >= 2:
            counts = {m: np.array([by[(i, m)].correct for i in ids]) for m in ("fire", "regular")}
            points.append(point_power(point, counts["fire"], counts["regular"], run_n=run_n, k=k, ns=ns,
                                      alpha=alpha, power=power, half_width=half_width))
    return PowerPlan(config_name=config.name, k=k, run_n=run_n, first_items=first_items, points=points,
                     alpha=alpha, power=power, half_width=half_width)


def _size_table(first: list[str], rows: list[tuple[list[str], PointPower | ContrastPower]], half_width: float) -> list[str]:
    """Markdown rows: the ``first`` columns, then items, mean and sd of the difference, the paper's
    difference and, per branch count n, the items to detect it and for the interval."""
    ns = sorted({n for _, r in rows for n in r.items_for_half_width})
    w = f"{100 * half_width:.0f}"
    lines = ["| " + " | ".join(first) + " | items | mean diff (pts) | sd (pts) | paper diff (pts) | "
             + " | ".join(f"N detect, n={n} | N +-{w}, n={n}" for n in ns) + " |",
             "|---" * (len(first) + 4 + 2 * len(ns)) + "|"]
    for cells, r in rows:
        counts = []
        for n in ns:
            det = r.items_to_detect.get(n)
            counts += ["–" if det is None else f"{det:,}", f"{r.items_for_half_width[n]:,}"]
        paper = "–" if r.delta is None else f"{100 * r.delta:+.1f}"
        lines.append("| " + " | ".join([*cells, str(r.items), f"{100 * r.mean:+.1f}", f"{100 * r.sd:.1f}", paper,
                                        *counts]) + " |")
    return lines


def render_power(plan: PowerPlan) -> str:
    """The plan as markdown."""
    lines = [
        f"### {plan.config_name}: power plan from the first {max(p.items for p in plan.points)} items (pass@{plan.k}, "
        f"FIRE - regular, paired)",
        "",
        f"Items needed for a two-sided paired test at level {plan.alpha} to detect the paper's difference "
        f"with power {plan.power}, and for a 95% interval of +-{100 * plan.half_width:.0f} points, with n "
        "branches per (item, point, method). The run's own n is " + str(plan.run_n) + ".",
        "",
        *_size_table(["point"], [([p.point], p) for p in plan.points], plan.half_width),
    ]
    return "\n".join(lines) + "\n"


def render_contrasts(plan: ContrastPlan) -> str:
    """The contrast plan as markdown."""
    lines = [
        f"### {plan.config_name}: items needed for differences between insertion points (pass@{plan.k}, paired)",
        "",
        f"From every item both points hold. A two-sided paired test at level {plan.alpha} with power {plan.power} "
        f"to detect the paper's difference between the two columns (the Oracle-line takes the paper's PRM-line "
        f"value), and a 95% interval of +-{100 * plan.half_width:.0f} points, with n branches per (item, point, "
        f"method); the run's n is {plan.run_n}.",
        "",
        *_size_table(["method", "contrast"], [([c.method, f"{c.a} - {c.b}"], c) for c in plan.contrasts],
                     plan.half_width),
    ]
    return "\n".join(lines) + "\n"


def write_contrasts(config: ExperimentConfig, contrasts: list[tuple[str, str]], **kwargs) -> ContrastPlan:
    """Compute :func:`plan_contrasts` and write ``power-contrasts.md`` and ``.json`` into the run folder."""
    plan = plan_contrasts(config, contrasts, **kwargs)
    if not plan.contrasts:
        raise ValueError(f"{config.run_dir}: no contrast has 2 items with both points yet")
    write_atomic(config.run_dir / "power-contrasts.md", render_contrasts(plan))
    write_atomic(config.run_dir / "power-contrasts.json", plan.model_dump_json(indent=1))
    return plan


def write_power(config: ExperimentConfig, **kwargs) -> PowerPlan:
    """Compute the plan (:func:`plan_power`) and write ``power.md`` and ``power.json`` into the run folder."""
    plan = plan_power(config, **kwargs)
    if not plan.points:
        raise ValueError(f"{config.run_dir}: no insertion point has 2 items with both methods yet")
    write_atomic(config.run_dir / "power.md", render_power(plan))
    write_atomic(config.run_dir / "power.json", plan.model_dump_json(indent=1))
    return plan
