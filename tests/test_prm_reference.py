"""prm_models/reference.py: the reference-guided checker on real GSM8K/MATH train solutions (not a PRM)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prm_fire.problems import Problem, find_problem, load_problems, load_processbench
from prm_fire.tree import load_tree, new_tree, save_tree
from prm_models import PRMS, make_prm
from prm_models.gold import MissingReferenceError, fill_gold_answer
from prm_models.reference import ReferencePRM
from prm_models.rollout import add_scored_response


def _steps(problem: Problem) -> list[str]:
    """GSM8K: the solution's lines and the `####` line; MATH: its sentences."""
    assert problem.solution is not None
    if problem.source == "gsm8k":
        return [line for line in problem.solution.splitlines() if line.strip()] + [f"#### {problem.answer}"]
    return [s for s in re.split(r"(?<=[.$])\s+(?=[A-Z])", problem.solution) if s.strip()]


# (data file, problem id, text in one step, its corruption, the rule that must fire at that step; for
# "unsupported" the corrupted value also becomes the final answer, as a solution carrying it would end)
CASES = [
    ("gsm8k/train.jsonl", "gsm8k/train/0", "48/2 = <<48/2=24>>24", "48/2 = <<48/2=25>>25", "arithmetic"),
    ("gsm8k/train.jsonl", "gsm8k/train/2", "15 * 2 = $<<15*2=30>>30", "15 * 2 = $<<15*2=35>>35", "arithmetic"),
    ("gsm8k/train.jsonl", "gsm8k/train/100", "36 - 12 - 9 = <<36-12-9=15>>15 sales", "17 sales", "unsupported"),
    ("gsm8k/train.jsonl", "gsm8k/train/104", "48 * 2 = <<48*2=96>>96 people", "98 people", "unsupported"),
    ("math/train.jsonl", "train/prealgebra/19.json", "$40-12=28$", "$40-12=27$", "arithmetic"),
    ("math/train.jsonl", "train/prealgebra/41.json", "$90 - 42 = 48$", "$90 - 42 = 58$", "arithmetic"),
    ("math/train.jsonl", "train/prealgebra/67.json", "$27-20= 7$", "$27-20= 9$", "arithmetic"),
]


@pytest.fixture(scope="module")
def problems(shared_data: Path) -> dict[str, list[Problem]]:
    return {name: load_problems(shared_data / name) for name in {c[0] for c in CASES}}


@pytest.mark.parametrize(("data", "problem_id", "old", "new", "rule"), CASES, ids=[c[1] for c in CASES])
def test_a_correct_solution_passes_and_one_corrupted_number_is_flagged_at_its_step(
    problems: dict[str, list[Problem]], data: str, problem_id: str, old: str, new: str, rule: str
) -> None:
    problem = find_problem(problems[data], problem_id)
    steps = _steps(problem)
    clean = ReferencePRM(answer_gate=False).score(problem, steps)
    assert clean.first_error_index is None and clean.answer_matches, clean.reasons
    k = next(i for i, s in enumerate(steps) if old in s)
    corrupted = [s.replace(old, new) if i == k else s for i, s in enumerate(steps)]
    if rule == "unsupported":
        corrupted[-1] = f"#### {new.split()[0]}"
    scored = ReferencePRM().score(problem, corrupted)
    assert scored.first_error_index == k, scored.reasons
    assert scored.reasons is not None and scored.reasons[k][0].startswith(f"{rule}:")
    assert scored.decided and scored.scores[k] == 0.0


def test_wrong_answer_without_other_evidence_is_flagged_where_it_is_written_and_left_undecided(problems) -> None:
    problem = find_problem(problems["gsm8k/train.jsonl"], "gsm8k/train/0")  # 48 clips, half as many: 72
    steps = ["In May she sold 48/2 = 24 clips.", "Only May counts, so the answer is 24.", "#### 24"]
    scored = ReferencePRM().score(problem, steps)
    assert (scored.first_error_index, scored.answer_matches, scored.decided) == (0, False, False)
    assert scored.reasons[0][0].startswith("wrong-answer: the final answer '24' differs from the reference answer '72'")


def test_a_missing_reference_is_an_error_naming_the_problem(shared_data: Path) -> None:
    bare = Problem(id="pb-7", question="What is 2 + 2?", source="processbench")
    with pytest.raises(MissingReferenceError, match=r"problem 'pb-7' has no reference solution \(set reference_data"):
        ReferencePRM().score(bare, ["2 + 2 = 4"])
    olympiad = load_processbench(shared_data / "processbench" / "olympiadbench.json", limit=1)[0]
    with pytest.raises(MissingReferenceError, match=r"problem 'olympiadbench-0' has no reference solution and its "
                                                    r"text matches no problem of"):
        ReferencePRM(reference_data=str(shared_data)).score(olympiad.problem, olympiad.steps)


def test_processbench_problems_find_their_test_solution_and_reasons_reach_the_tree(shared_data, tmp_path) -> None:
    assert PRMS.get("reference") is ReferencePRM
    prm = make_prm("reference", {"reference_data": str(shared_data)})
    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]  # label 1
    scored = prm.score(item.problem, item.steps)
    assert scored.reference_answer == fill_gold_answer(item.problem, shared_data).answer
    assert scored.reasons is not None and len(scored.reasons) == len(item.steps)
    tree = new_tree(item.problem)
    node = add_scored_response(tree, "\n".join(item.steps), scored, origin="processbench")
    save_tree(tree, tmp_path / "t.json")
    assert load_tree(tmp_path / "t.json").nodes[node]["data"].step_reasons == scored.reasons


@pytest.mark.parametrize(("item_id", "step", "old_step"), [("gsm8k-175", 2, 1), ("gsm8k-64", 4, 5)])
def test_the_wrong_answer_flag_goes_where_the_answer_is_written_as_a_number(shared_data, item_id, step, old_step):
    """gsm8k-175 answers 1: step 1 writes "10 hours" (a substring match would flag it), step 2 "1 hour".
    gsm8k-64 answers 4000: step 4 writes "4,000" (no substring match; the boxed 4000 is in step 5)."""
    item = next(i for i in load_processbench(shared_data / "processbench" / "gsm8k.json") if i.problem.id == item_id)
    scored = ReferencePRM(reference_data=str(shared_data)).score(item.problem, item.steps)
    assert scored.final_answer is not None and scored.final_answer in item.steps[old_step]
    assert scored.first_error_index == step and not scored.decided
    assert scored.reasons[step][0].startswith(f"wrong-answer: the final answer {scored.final_answer!r}")
