"""The power plan's arithmetic (pure numbers; the whole-chain test runs it on a real run's journals)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prm_app.experiments.power import point_power


def test_without_sampling_noise_the_item_counts_are_the_textbook_formulas():
    # Every item all-right or all-wrong: the observed rates are 0 or 1, so no branch noise is modelled.
    fire = np.array([10, 10, 0, 10, 0, 10, 10, 0])
    regular = np.array([0, 10, 0, 0, 0, 10, 0, 0])
    p = point_power("line1", fire, regular, run_n=10, k=10, ns=(10, 20), half_width=0.1)
    d = np.array([1, 0, 0, 1, 0, 0, 1, 0], dtype=float)
    assert p.mean == pytest.approx(d.mean()) and p.sd == pytest.approx(d.std(ddof=1))
    assert p.delta == pytest.approx((64.59 - 46.07) / 100)  # the paper's line-1 gap
    z = 1.959963984540054
    assert p.items_for_half_width[10] == p.items_for_half_width[20] == math.ceil(z**2 * d.var(ddof=1) / 0.01)
    assert p.items_to_detect[10] == math.ceil((z + 0.8416212335729143) ** 2 * d.var(ddof=1) / p.delta**2)


def test_more_branches_never_need_more_items_and_points_without_a_paper_value_get_none():
    rng = np.random.default_rng(1)
    fire, regular = rng.binomial(10, 0.15, size=30), rng.binomial(10, 0.1, size=30)
    p = point_power("entropy", fire, regular, run_n=10, k=10, ns=(10, 20))
    assert p.delta is None and p.items_to_detect == {10: None, 20: None}
    assert p.items_for_half_width[20] < p.items_for_half_width[10]
    with pytest.raises(ValueError, match="pass@10 needs n >= 10"):
        point_power("line1", fire, regular, run_n=5)
    with pytest.raises(ValueError, match="same >= 2 items"):
        point_power("line1", fire[:3], regular[:2], run_n=10)
