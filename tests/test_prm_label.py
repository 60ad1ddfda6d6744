"""The label PRM: ProcessBench's gold first-error labels as step scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from prm_fire.problems import Problem, load_processbench
from prm_models import PRMS, make_prm
from prm_models.label import LabelPRM, MissingLabelError


def test_scores_follow_the_real_labels(shared_data: Path) -> None:
    path = shared_data / "processbench" / "gsm8k.json"
    items = {item.problem.id: item for item in load_processbench(path)}
    prm = LabelPRM(data=str(path))
    wrong, right = items["gsm8k-0"], items["gsm8k-200"]  # labels 1 and -1
    assert (wrong.label, right.label) == (1, -1)
    scored = prm.score(wrong.problem, wrong.steps)
    assert scored.scores == [1.0, 0.0, 0.0, 0.0] and scored.first_error_index == 1
    scored = prm.score(right.problem, right.steps)
    assert scored.scores == [1.0] * len(right.steps) and scored.first_error_index is None
    for item in items.values():  # every item: the first step under the threshold is the label
        index = prm.score(item.problem, item.steps).first_error_index
        assert (-1 if index is None else index) == item.label


def test_labels_from_items_inline_and_through_the_registry(shared_data: Path) -> None:
    items = load_processbench(shared_data / "processbench" / "math.json", limit=3)
    assert PRMS.get("label") is LabelPRM
    prm = make_prm("label", {}, items=items)  # the evaluator hands its items over
    first = items[0]
    assert prm.score(first.problem, first.steps).first_error_index == (None if first.label == -1 else first.label)
    inline = make_prm("label", {"labels": {"x": 0}})
    assert inline.score(Problem(id="x", question="?", source="builtin"), ["a", "b"]).scores == [0.0, 0.0]


def test_missing_label_is_a_clear_error(shared_data: Path) -> None:
    prm = LabelPRM(data=[str(shared_data / "processbench" / "gsm8k.json")])
    with pytest.raises(MissingLabelError, match=r"problem 'math-0' has no gold first-error label .*400 problems"):
        prm.score(Problem(id="math-0", question="?", source="processbench"), ["a"])
    with pytest.raises(MissingLabelError, match="no data, labels or items given"):
        LabelPRM().score(Problem(id="math-0", question="?", source="processbench"), ["a"])


def test_labels_that_do_not_fit_the_steps_are_errors(shared_data: Path) -> None:
    prm = LabelPRM(data=[str(shared_data / "processbench" / "gsm8k.json")])
    problem = Problem(id="gsm8k-0", question="?", source="processbench")
    with pytest.raises(ValueError, match="its label 1 is for a 4-step solution, got 2 steps"):
        prm.score(problem, ["a", "b"])
    with pytest.raises(ValueError, match="label 3 is past the last step"):
        LabelPRM(labels={"x": 3}).score(Problem(id="x", question="?", source="builtin"), ["a"])
    with pytest.raises(ValueError, match="labels"):
        make_prm("label", {"labels": {"x": "first"}})
