"""prm_models/combined.py: cheap checks first, the expensive scorer (a real model) only where they abstain."""

from __future__ import annotations

import pytest

from prm_fire.problems import find_problem, load_problems
from prm_models import make_prm


@pytest.fixture(scope="module")
def smollm2():
    from prm_fire.generators import make_generator

    return make_generator("hf", "smollm2-135m")


@pytest.fixture(scope="module")
def natalia(shared_data):
    return find_problem(load_problems(shared_data / "gsm8k" / "train.jsonl", limit=1), "gsm8k/train/0")


def test_evidence_from_the_cheap_check_is_kept_and_its_silence_escalates_to_the_model(natalia, smollm2) -> None:
    combo = make_prm("combined", {"cheap": ["reference"], "expensive": "critic",
                                  "options": {"critic": {"k": 3, "max_new_tokens": 6}}}, generator=smollm2)
    correct = ["She sold 48/2 = 24 clips in May.", "Altogether 48 + 24 = 72 clips.", "#### 72"]
    kept = combo.score(natalia, correct)  # the answer matches the reference: evidence, no model call
    assert (kept.used, kept.escalated, [s.prm for s in kept.stages]) == ("reference", False, ["reference"])
    assert kept.first_error_index is None and kept.decided

    slip = ["She sold 48/2 = 25 clips in May.", "Altogether 48 + 25 = 73 clips.", "#### 73"]
    flagged = combo.score(natalia, slip)  # false arithmetic at step 0: evidence
    assert (flagged.used, flagged.escalated, flagged.first_error_index) == ("reference", False, 0)
    assert flagged.reasons[0][0].startswith("arithmetic:")

    wrong = ["In May she sold 48/2 = 24 clips.", "Only May counts, so the answer is 24.", "#### 24"]
    escalated = combo.score(natalia, wrong)  # wrong answer, no rule fired: the critic decides
    assert escalated.escalated and [s.prm for s in escalated.stages] == ["reference", "critic"]
    critic = escalated.details["critic"]
    assert len(critic["votes"]) == 3 and critic["model"] == "smollm2-135m"
    # The critic alone, same model and seeds, gives the same replies; its verdict is what the combination
    # uses, and with no parsed reply the reference checker's wrong-answer guess (step 0) stands, undecided.
    alone = make_prm("critic", {"k": 3, "max_new_tokens": 6}, generator=smollm2).score(natalia, wrong)
    assert (critic["votes"], critic["verdict"]) == (alone.votes, alone.verdict)
    expected = ("critic", alone.first_error_index, True) if alone.decided else ("reference", 0, False)
    assert (escalated.used, escalated.first_error_index, escalated.decided) == expected
    assert all(s.seconds >= 0 for s in escalated.stages)


def test_bad_combinations_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown PRM scorer 'nope'"):
        make_prm("combined", {"cheap": ["nope"]})
    with pytest.raises(ValueError, match=r"options given for scorers not in the combination: \['symbolic'\]"):
        make_prm("combined", {"cheap": ["reference"], "options": {"symbolic": {}}})


def test_many_solutions_escalate_together_and_match_one_by_one(natalia, smollm2) -> None:
    combo = make_prm("combined", {"cheap": ["reference"], "expensive": "critic",
                                  "options": {"critic": {"k": 2, "max_new_tokens": 6}}}, generator=smollm2)
    solutions = [["She sold 48/2 = 24 clips in May.", "Altogether 48 + 24 = 72 clips.", "#### 72"],
                 ["In May she sold 48/2 = 24 clips.", "Only May counts, so the answer is 24.", "#### 24"],
                 ["She sold 48 clips in April.", "She sold 48 more in May, 96 in all.", "#### 96"]]
    together = combo.score_many([(natalia, steps) for steps in solutions])
    alone = [combo.score(natalia, steps) for steps in solutions]
    assert [s.escalated for s in together] == [s.escalated for s in alone] == [False, True, True]
    assert [(s.used, s.scores, s.decided) for s in together] == [(s.used, s.scores, s.decided) for s in alone]
    assert [s.details.get("critic", {}).get("replies") for s in together] == \
        [s.details.get("critic", {}).get("replies") for s in alone]


@pytest.mark.parametrize("options, field", [({"cheap": ["symbolic", "label"]}, "cheap"),
                                            ({"cheap": ["symbolic"], "expensive": "label"}, "expensive")])
def test_the_label_oracle_is_refused_inside_a_combination(options, field) -> None:
    from prm_app.preflight import InputError, check_prm

    with pytest.raises(InputError, match=rf"^--prm-option {field}: .*a combination cannot contain 'label': it reads "
                                         r"the dataset's labels"):
        check_prm("combined", options)  # the command line stops here, before anything is built
    with pytest.raises(ValueError, match="a combination cannot contain 'label'"):
        make_prm("combined", options)


def test_the_dataset_items_reach_no_scorer_inside_a_combination(shared_data) -> None:
    from prm_fire.problems import load_processbench

    items = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)
    item = items[0]  # gsm8k-0: first error at step 1, where the symbolic checker finds no false claim
    combo = make_prm("combined", {"cheap": ["symbolic"], "expensive": None}, items=items)  # as the evaluator calls it
    scored = combo.score(item.problem, item.steps)
    alone = make_prm("symbolic", {}).score(item.problem, item.steps)
    assert (item.label, scored.used, scored.decided) == (1, "symbolic", False)
    assert (scored.scores, scored.first_error_index) == (alone.scores, alone.first_error_index)
    assert scored.first_error_index is None  # not the label's step 1: the labels did not find their way in
