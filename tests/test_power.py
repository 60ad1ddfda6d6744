"""The power plan's arithmetic (pure numbers; the whole-chain test runs it on a real run's journals)."""

from __future__ import annotations

import math
from pathlib import Path

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


def test_contrasts_from_a_real_runs_journals_on_the_command_line(tmp_path, capsys):
    """`--stage power --contrasts` on cpu-power's committed journals: the paired means are those of the
    journals, each method's paper difference is the paper's (the Oracle-line would take the PRM-line's)."""
    import json
    import shutil

    from prm_app.cli import main
    from prm_app.experiments.insertion import InsertionResult
    from prm_app.experiments.power import paper_column
    from prm_fire.journal import read_journal

    committed = Path(__file__).resolve().parents[1] / "results" / "cpu-power" / "insertion"
    (tmp_path / "cpu-power" / "insertion").mkdir(parents=True)
    for point in ("prm", "line3"):
        shutil.copy(committed / f"{point}.jsonl", tmp_path / "cpu-power" / "insertion")
    args = ["table5", "--config", "cpu-power", "--out-dir", str(tmp_path), "--stage", "power"]
    assert main([*args, "--contrasts", "prm-line3"]) == 0
    plan = json.loads((tmp_path / "cpu-power" / "power-contrasts.json").read_text())
    assert [(c["method"], c["a"], c["b"]) for c in plan["contrasts"]] == [("regular", "prm", "line3"),
                                                                         ("fire", "prm", "line3")]
    for c in plan["contrasts"]:
        rows = [{r.item_id: r.correct for r in read_journal(committed / f"{p}.jsonl", InsertionResult)
                 if r.method == c["method"]} for p in ("prm", "line3")]
        ids = [i for i in rows[0] if i in rows[1]]
        solved = lambda row: np.array([row[i] > 0 for i in ids], dtype=float)  # noqa: E731  pass@10 with n = 10
        assert c["items"] == len(ids) and c["mean"] == pytest.approx((solved(rows[0]) - solved(rows[1])).mean())
        paper = {"regular": 75.73 - 74.77, "fire": 78.21 - 75.92}[c["method"]]
        assert c["delta"] == pytest.approx(paper / 100)
    assert paper_column("oracle") == "prm" and "| fire | prm - line3 |" in capsys.readouterr().out
    # Bad contrasts are refused before anything is read: one line, exit 2.
    for extra, message in ((["--contrasts", "prm-line9"], "--contrasts"), (["--contrasts", "prm"], "--contrasts"),
                           (["--contrasts", "oracle-line1"], "oracle not among the config's points")):
        with pytest.raises(SystemExit) as stop:
            if main([*args, *extra]) == 2:
                raise SystemExit(2)
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
