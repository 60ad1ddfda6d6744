"""pass@k against its definition, #EA with and without an equivalence, the bootstrap interval."""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from prm_fire.metrics import Interval, effective_answers, mean_ci, paired_contrast, pass_at_k


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) that hold a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


# --- pass@k -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_pass_at_1_is_the_correct_share() -> None:
    assert pass_at_k(64, 16, 1) == pytest.approx(0.25)


def test_pass_at_k_large_n_is_stable() -> None:
    # C(1000, 500) overflows a float; the product form does not
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5)
    exact = 1 - Fraction(comb(990, 100), comb(1000, 100))
    assert pass_at_k(1000, 10, 100) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (5, 2), (10, 10), (200, 7)])
def test_pass_at_k_edges(n: int, k: int) -> None:
    assert pass_at_k(n, 0, k) == 0.0
    assert pass_at_k(n, n, k) == 1.0


@pytest.mark.parametrize(
    ("n", "c", "k", "names"),
    [
        (3, 1, 4, "n=3, c=1, k=4"),  # n < k
        (3, 4, 1, "n=3, c=4, k=1"),  # c > n
        (3, -1, 1, "n=3, c=-1, k=1"),  # negative
        (-1, 0, 1, "n=-1, c=0, k=1"),
        (3, 1, 0, "n=3, c=1, k=0"),  # k < 1
    ],
)
def test_pass_at_k_rejects_bad_values(n: int, c: int, k: int, names: str) -> None:
    with pytest.raises(ValueError, match=names):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_non_integers() -> None:
    with pytest.raises(ValueError, match="k=1.5"):
        pass_at_k(4, 1, 1.5)  # type: ignore[arg-type]


# --- effective answers ------------------------------------------------------------------------


def test_effective_answers_exact() -> None:
    assert effective_answers([]) == 0
    assert effective_answers([None, None]) == 0
    assert effective_answers(["5", "5 ", "\t5", "6", None, "5.0"]) == 3
    assert effective_answers(["\\frac{1}{2}", "1/2"]) == 2  # no equivalence: different strings


def test_effective_answers_with_equivalence() -> None:
    def same_value(a: str, b: str) -> bool:
        return Fraction(a) == Fraction(b)

    assert effective_answers(["1/2", "0.5", "2/4", "3", "6/2", None, "7"], equivalent=same_value) == 3


def test_effective_answers_greedy_clustering_uses_the_first_representative() -> None:
    # "within 1" is not transitive: 2 joins 1's cluster, 3 is compared with 1 (the representative)
    def within_one(a: str, b: str) -> bool:
        return abs(int(a) - int(b)) <= 1

    assert effective_answers(["1", "2", "3"], equivalent=within_one) == 2
    assert effective_answers(["2", "1", "3"], equivalent=within_one) == 1


def test_effective_answers_calls_equivalence_once_per_distinct_string() -> None:
    calls: list[tuple[str, str]] = []

    def equal(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    assert effective_answers(["a", "a", " a", "b", "b"], equivalent=equal) == 2
    assert calls == [("a", "b")]


# --- bootstrap interval -----------------------------------------------------------------------


def _coin_flips(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_mean_ci_contains_the_mean() -> None:
    values = _coin_flips(200, 0.3, seed=1)
    ci = mean_ci(values)
    assert isinstance(ci, Interval)
    assert ci.mean == pytest.approx(values.mean())
    assert ci.low < ci.mean < ci.high
    assert (ci.n, ci.confidence) == (200, 0.95)


def test_mean_ci_narrows_with_more_data() -> None:
    small = mean_ci(_coin_flips(50, 0.5, seed=2))
    large = mean_ci(_coin_flips(2000, 0.5, seed=2))
    assert large.high - large.low < (small.high - small.low) / 3


def test_mean_ci_matches_the_normal_approximation() -> None:
    values = _coin_flips(1000, 0.4, seed=3)
    ci = mean_ci(values)
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.1)


def test_mean_ci_wider_at_higher_confidence() -> None:
    values = _coin_flips(100, 0.5, seed=4)
    assert mean_ci(values, confidence=0.99).high - mean_ci(values, confidence=0.99).low > (
        mean_ci(values, confidence=0.8).high - mean_ci(values, confidence=0.8).low
    )


def test_mean_ci_same_seed_same_interval() -> None:
    values = list(np.random.default_rng(5).normal(size=80))  # continuous: 0/1 values give lattice bounds
    assert mean_ci(values, seed=7) == mean_ci(values, seed=7)
    assert mean_ci(values, seed=7) != mean_ci(values, seed=8)


def test_mean_ci_large_inputs_in_chunks() -> None:
    """5000 values resample in 5 chunks of 400; the interval is the one a single unchunked draw gives."""
    values = _coin_flips(5000, 0.2, seed=6)
    ci = mean_ci(values, n_resamples=2000)
    means = values[np.random.default_rng(0).integers(0, 5000, size=(2000, 5000))].mean(axis=1)
    assert (ci.low, ci.high) == tuple(np.quantile(means, [0.025, 0.975]))
    assert (ci.mean, ci.n) == (values.mean(), 5000)
    half = 1.96 * values.std() / np.sqrt(values.size)  # and it is the width the normal approximation gives
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.1)


def test_mean_ci_edges() -> None:
    assert mean_ci([3.5]) == Interval(mean=3.5, low=3.5, high=3.5, n=1, confidence=0.95)
    assert mean_ci([True, False, True, True]).mean == 0.75
    constant = mean_ci([2.0] * 10)
    assert (constant.low, constant.high) == (2.0, 2.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="finite"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        mean_ci([1.0, 2.0], n_resamples=0)


def test_paired_contrast_resamples_items_with_their_pairs() -> None:
    rng = np.random.default_rng(1)
    ability = rng.uniform(0, 1, 200)  # each item's own level, shared by both arms
    first = {f"i{k}": float(a + 0.05) for k, a in enumerate(ability)}
    second = {f"i{k}": float(a) for k, a in enumerate(ability)}
    second["extra"] = 1.0  # in one arm only: left out
    contrast = paired_contrast([(1.0, first), (-1.0, second)])
    assert contrast.items == list(first) and contrast.values == pytest.approx([0.05] * 200)
    assert contrast.difference == mean_ci([first[i] - second[i] for i in first])  # the same numbers, same seed
    assert contrast.difference.high - contrast.difference.low < 1e-9  # pairing removes the items' own spread


def test_paired_contrast_sums_signed_terms_in_the_given_order() -> None:
    gain_1 = {"a": 0.9, "b": 0.4, "c": 0.7}
    base_1 = {"a": 0.5, "b": 0.4, "c": 0.6}
    gain_2 = {"c": 0.8, "b": 0.5, "a": 0.6}
    base_2 = {"a": 0.6, "b": 0.5}
    terms = [(1, gain_1), (-1, base_1), (-1, gain_2), (1, base_2)]  # (gain_1 - base_1) - (gain_2 - base_2)
    contrast = paired_contrast(terms, items=["b", "a"], seed=3)
    assert contrast.items == ["b", "a"] and contrast.values == pytest.approx([0.0, 0.4])
    assert contrast.difference == mean_ci(contrast.values, seed=3)
    assert paired_contrast(terms, items=["c"]) is None
    with pytest.raises(ValueError, match="at least one term"):
        paired_contrast([])
