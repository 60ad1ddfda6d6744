"""Metrics: pass@k, the number of effective answers (#EA), a bootstrap confidence interval, paired contrasts.

Small pure functions, each with a runnable example; numpy is the only dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021): ``1 - C(n-c, k) / C(n, k)``.

    The chance that ``k`` samples drawn without replacement from ``n`` samples, ``c`` of them
    correct, include a correct one. Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which stays
    accurate where the binomials overflow.

    >>> round(pass_at_k(10, 3, 1), 6)
    0.3
    >>> round(pass_at_k(4, 2, 2), 6)  # 1 - C(2,2)/C(4,2) = 1 - 1/6
    0.833333
    >>> pass_at_k(5, 0, 3), pass_at_k(5, 5, 3), pass_at_k(5, 3, 3)
    (0.0, 1.0, 1.0)
    >>> pass_at_k(2, 1, 3)
    Traceback (most recent call last):
    ...
    ValueError: pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n=2, c=1, k=3
    """
    values = {"n": n, "c": c, "k": k}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"pass_at_k needs integers, got {name}={value!r}")
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    miss = math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
    return 1.0 - miss


def effective_answers(
    answers: Sequence[str | None],
    equivalent: Callable[[str, str], bool] | None = None,
) -> int:
    """#EA: how many distinct final answers the samples reached.

    ``None`` (no answer extracted) and blank answers are not counted. Answers are stripped of
    surrounding whitespace; by default two answers are the same when the stripped strings are equal.
    With ``equivalent`` (say a math grader), answers are clustered greedily in order: an answer joins
    the first cluster whose representative (its first answer) is equivalent to it, else starts a new
    one. ``equivalent`` is called at most once per pair of distinct strings and representative.

    >>> effective_answers(["12", " 12", "13", None, "1/2"])
    3
    >>> same_number = lambda a, b: float(eval(a)) == float(eval(b))
    >>> effective_answers(["0.5", "1/2", "2/4", "3"], equivalent=same_number)
    2
    >>> effective_answers([None, "  "])
    0
    """
    distinct: dict[str, None] = {}  # ordered set: first occurrence order
    for answer in answers:
        if answer is not None and answer.strip():
            distinct.setdefault(answer.strip())
    if equivalent is None:
        return len(distinct)
    representatives: list[str] = []
    for answer in distinct:  # an exact repeat joins the same cluster as its first occurrence
        if not any(equivalent(rep, answer) for rep in representatives):
            representatives.append(answer)
    return len(representatives)


class Interval(BaseModel):
    """A mean with a bootstrap confidence interval over ``n`` values."""

    model_config = ConfigDict(frozen=True)

    mean: float = Field(description="Mean of the values.")
    low: float = Field(description="Lower end of the interval.")
    high: float = Field(description="Upper end of the interval.")
    n: int = Field(ge=1, description="Number of values (problems).")
    confidence: float = Field(gt=0, lt=1, description="Nominal coverage, e.g. 0.95.")

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}] ({self.confidence:.0%} CI, n={self.n})"


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of per-problem values with a percentile-bootstrap confidence interval.

    Resamples the values (problems) with replacement ``n_resamples`` times using
    ``numpy.random.default_rng(seed)``, so the same seed gives the same interval. A single value
    gives ``low == high == mean``. Booleans count as 0/1.

    >>> ci = mean_ci([1, 0, 1, 1, 0, 1, 1, 0, 1, 1])
    >>> ci.mean, ci.n, ci.low <= ci.mean <= ci.high
    (0.7, 10, True)
    >>> mean_ci([0.25])
    Interval(mean=0.25, low=0.25, high=0.25, n=1, confidence=0.95)
    >>> mean_ci([])
    Traceback (most recent call last):
    ...
    ValueError: mean_ci needs at least one value, got none
    """
    data = np.asarray(values, dtype=float).reshape(-1)
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value, got none")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"mean_ci needs finite values, got {int(np.sum(~np.isfinite(data)))} NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n = int(data.size)
    mean = float(data.mean())
    if n == 1:
        return Interval(mean=mean, low=mean, high=mean, n=1, confidence=confidence)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)  # resample in chunks to bound memory at ~16 MB
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        means[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(mean=mean, low=float(low), high=float(high), n=n, confidence=confidence)


class PairedContrast(BaseModel):
    """A contrast of values paired by item: its per-item values and their mean with a bootstrap interval."""

    model_config = ConfigDict(frozen=True)

    items: list[str] = Field(description="The items every term holds, in the order resampled.")
    values: list[float] = Field(description="Per item, the signed sum of its values over the terms.")
    difference: Interval = Field(description="Mean of ``values`` with its percentile-bootstrap interval.")


def paired_contrast(
    terms: Sequence[tuple[float, Mapping[str, float]]],
    *,
    items: Sequence[str] | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedContrast | None:
    """A contrast of per-item values, paired by item: per item, ``sum(sign * values[item])`` over the
    ``terms`` (sign, values by item id), on the items every term holds; their mean with :func:`mean_ci`
    (resampling items keeps each item's values together). None when no item is in every term.

    Items are taken in the order of ``items`` when given (those every term holds), else of the first
    term; the order fixes which items a seeded resample draws, so the same call gives the same interval.

    >>> fire = {"a": 1.0, "b": 0.5, "c": 1.0}
    >>> regular = {"b": 0.0, "a": 0.5}
    >>> c = paired_contrast([(1, fire), (-1, regular)])
    >>> c.items, c.values, c.difference.mean
    (['a', 'b'], [0.5, 0.5], 0.5)
    >>> paired_contrast([(1, fire), (-1, regular)], items=["b", "a", "z"]).items
    ['b', 'a']
    >>> paired_contrast([(1, fire), (-1, {"z": 1.0})]) is None
    True
    """
    if not terms:
        raise ValueError("paired_contrast needs at least one term, got none")
    order = items if items is not None else list(terms[0][1])
    common = [i for i in order if all(i in values for _, values in terms)]
    if not common:
        return None
    values = [sum(sign * by_item[i] for sign, by_item in terms) for i in common]
    return PairedContrast(items=common, values=values, difference=mean_ci(values, confidence=confidence, seed=seed))
