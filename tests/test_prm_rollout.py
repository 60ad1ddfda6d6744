"""prm_models/rollout.py and prm_models/gold.py: Monte-Carlo rollout PRM on real items with a real model.

The fast tests use SmolLM2-135M with tiny budgets (m=2, a dozen tokens): they check the mechanics on
real GSM8K / ProcessBench text -- the last step graded from the response's own answer, per-prefix
seeds shared by both modes, binary search cost and agreement, the tree JSON. The slow test uses
Qwen2.5-Coder-0.5B with budgets where the rollouts reach an answer.
"""

from __future__ import annotations

import math
import re

import pytest

from prm_fire.problems import Problem, load_problems, load_processbench
from prm_fire.tree import load_tree, new_tree, save_tree
from prm_models import PRMS, make_prm
from prm_models.gold import GoldIndex, MissingGoldAnswerError
from prm_models.rollout import ANSWER_TOKENS, RolloutConfig, RolloutPRM, add_scored_response


@pytest.fixture(scope="module")
def janet(shared_data):
    """GSM8K test item 0, its reference solution (calculator marks dropped) and a corrupted copy."""
    problem = load_problems(shared_data / "gsm8k" / "test.jsonl", limit=1)[0]
    gold = re.sub(r"<<[^>]*>>", "", problem.solution) + f"\n#### {problem.answer}"
    bad = gold.replace("= 9 duck", "= 7 duck").replace("9 * 2 = $18", "7 * 2 = $14").replace("#### 18", "#### 14")
    assert bad.count("7") >= 2 and "#### 14" in bad
    return problem, gold, bad


@pytest.fixture(scope="module")
def small_generator():
    from prm_fire.generators import make_generator

    return make_generator("hf", "smollm2-135m")


def test_registered_and_built_through_make_prm():
    assert PRMS.get("rollout") is RolloutPRM and RolloutPRM.Config is RolloutConfig
    prm = make_prm("rollout", {"m": 2, "mode": "binary", "estimate": "soft"})
    assert (prm.config.m, prm.config.mode, prm.config.estimate, prm.config.model) == (2, "binary", "soft", "qwen2.5-coder-0.5b")
    with pytest.raises(ValueError, match="m"):
        RolloutConfig(m=0)


def test_missing_gold_answer_is_named_and_processbench_gold_is_looked_up(shared_data):
    item = load_processbench(shared_data / "processbench" / "gsm8k.json", limit=1)[0]
    with pytest.raises(MissingGoldAnswerError, match=r"problem 'gsm8k-0' has no gold answer.*gold_data"):
        RolloutPRM().score(item.problem, item.steps)  # raised before any model is loaded
    filled = RolloutPRM(gold_data=str(shared_data)).with_gold(item.problem)
    gsm8k = {p.question: p.answer for p in load_problems(shared_data / "gsm8k" / "test.jsonl")}
    assert filled.answer == gsm8k[item.problem.question] and filled.id == "gsm8k-0"
    stray = Problem(id="x/1", question="Not a test problem.", source="processbench")
    with pytest.raises(MissingGoldAnswerError, match=r"problem 'x/1' has no gold answer and its text matches no"):
        RolloutPRM(gold_data=str(shared_data)).with_gold(stray)


def test_every_processbench_gsm8k_and_math_problem_has_a_test_split_answer(shared_data):
    index = GoldIndex.from_data_dir(shared_data)
    for split in ("gsm8k", "math"):
        items = load_processbench(shared_data / "processbench" / f"{split}.json")
        missing = [it.problem.id for it in items if index.lookup(it.problem.question) is None]
        assert missing == [], f"{split}: {len(missing)} without a gold answer, e.g. {missing[:3]}"


def test_empty_steps_are_refused(janet):
    problem, _, _ = janet
    with pytest.raises(ValueError, match=r"problem 'gsm8k/test/0': no steps"):
        RolloutPRM().score(problem, [])
    with pytest.raises(ValueError, match="step 1 is empty"):
        RolloutPRM().score(problem, ["a", " "])


def test_gold_solution_vs_corrupted_early_step(janet, small_generator):
    problem, gold, bad = janet
    prm = RolloutPRM(generator=small_generator, m=2, max_new_tokens=12, mode="binary")
    good = prm.score_response(problem, gold)
    # the whole gold response is graded directly: correct, so nothing needs rolling out
    assert good.graded_final and good.answers[-1] == ["18"] and good.estimates[-1] == 1.0
    assert good.prefix_evaluations == 0 and good.tokens_generated == 0
    assert good.scores == [1.0, 1.0, 1.0] and good.first_error_index is None and good.first_zero_index is None

    wrong = prm.score_response(problem, bad)
    assert wrong.answers[-1] == ["14"] and wrong.estimates[-1] == 0.0
    assert wrong.first_error_index is not None and wrong.first_error_index == wrong.first_zero_index
    assert 1 <= wrong.prefix_evaluations <= math.ceil(math.log2(3))
    assert wrong.scores[wrong.first_zero_index] == 0.0
    assert 0 < wrong.tokens_generated <= wrong.prefix_evaluations * 2 * 12
    for i, est in enumerate(wrong.estimates[:-1]):
        assert (est is None) == (wrong.answers[i] == [])  # answers recorded exactly where evaluated
        assert est is None or len(wrong.answers[i]) == 2


def test_a_response_without_final_answer_is_asked_for_it(janet, small_generator):
    problem, gold, _ = janet
    unanswered = gold.rsplit("\n", 1)[0]  # the reference solution without its '#### 18' line
    prm = RolloutPRM(generator=small_generator, m=2, max_new_tokens=200, mode="binary")
    result = prm.score_response(problem, unanswered)
    assert not result.graded_final and len(result.answers[-1]) == 2
    assert result.prefix_evaluations >= 1
    # the last prefix is response + ANSWER_CUE: at most ANSWER_TOKENS tokens per rollout there
    last_only = result.prefix_evaluations == 1
    assert not last_only or result.tokens_generated <= 2 * ANSWER_TOKENS


def test_binary_needs_fewer_prefix_evaluations_and_agrees_with_linear(shared_data, small_generator):
    item = load_processbench(shared_data / "processbench" / "gsm8k.json")[1]  # 7 steps, wrong final answer
    assert len(item.steps) == 7 and not item.final_answer_correct
    common = dict(generator=small_generator, m=2, max_new_tokens=12, gold_data=str(shared_data))
    linear = RolloutPRM(mode="linear", **common).score(item.problem, item.steps)
    binary = RolloutPRM(mode="binary", **common).score(item.problem, item.steps)
    assert linear.prefix_evaluations == 6 and linear.graded_final  # the 7th step is the graded answer
    assert binary.prefix_evaluations <= math.ceil(math.log2(7)) < linear.prefix_evaluations
    assert len(linear.scores) == len(binary.scores) == 7 and all(e is not None for e in linear.estimates)
    # the same prefix gets the same rollouts (seed per prefix) in both modes
    for b, lin in zip(binary.estimates, linear.estimates):
        assert b is None or b == lin
    monotone = all(not (a == 0 and b != 0) for a, b in zip(linear.estimates, linear.estimates[1:]))
    if monotone:
        assert binary.first_zero_index == linear.first_zero_index
    assert binary.first_zero_index is not None and binary.scores[binary.first_zero_index] == 0.0
    assert all(s == 1.0 for s, e in zip(binary.scores[: binary.first_zero_index], binary.estimates) if e is None)


def test_screen_step_stops_early_when_its_prefix_fails(shared_data, small_generator):
    item = load_processbench(shared_data / "processbench" / "gsm8k.json")[1]  # 7 steps, wrong final answer
    common = dict(generator=small_generator, m=2, max_new_tokens=12, gold_data=str(shared_data))
    linear = RolloutPRM(mode="linear", **common).score(item.problem, item.steps)
    screened = RolloutPRM(mode="binary", screen_step=2, **common).score(item.problem, item.steps)
    for s, lin in zip(screened.estimates, linear.estimates):  # same rollouts per prefix
        assert s is None or s == lin
    assert screened.estimates[2] == linear.estimates[2]  # the screen prefix is always evaluated
    if linear.estimates[2] == 0:
        assert screened.screened and screened.first_zero_index == 2 and screened.prefix_evaluations == 1
        assert screened.scores[:3] == [0.0, 0.0, 0.0] and screened.abstained[:3] == [True, True, False]
        assert screened.first_error_index == 0
    else:
        assert not screened.screened and screened.abstained is None
        assert screened.first_zero_index is None or screened.first_zero_index > 2
        assert screened.scores[:3] == [1.0, 1.0, 1.0]  # step 2 reaches the answer: 0-1 inferred correct


def test_first_error_index_is_stored_in_the_tree_json(janet, small_generator, tmp_path):
    problem, gold, bad = janet
    prm = RolloutPRM(generator=small_generator, m=2, max_new_tokens=8, mode="binary")
    tree = new_tree(problem)
    scores = {}
    for text, origin in ((gold, "dataset"), (bad, "given")):
        scores[origin] = prm.score_response(problem, text)
        add_scored_response(tree, text, scores[origin], origin=origin)
    back = load_tree(save_tree(tree, tmp_path / "janet.json"))
    nodes = {back.nodes[n]["data"].origin: back.nodes[n]["data"] for n in back.successors("problem")}
    for origin, s in scores.items():
        assert nodes[origin].prm == "rollout"
        assert nodes[origin].step_scores == s.scores and nodes[origin].first_error_index == s.first_error_index
        assert len(nodes[origin].steps) == len(s.scores)
    assert nodes["dataset"].first_error_index is None and nodes["given"].first_error_index is not None
    with pytest.raises(ValueError, match="rollout scores have 3 entries but the response has 1 line steps"):
        add_scored_response(tree, "one line", scores["dataset"], origin="given")


@pytest.mark.slow
def test_rollouts_from_the_gold_prefix_reach_the_answer_more_often_qwen():
    """0.5B policy, m=4, 160 tokens: the prefix holding the gold work scores at least the corrupted one."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    problem = load_problems(data / "gsm8k" / "test.jsonl", limit=1)[0]
    gold = re.sub(r"<<[^>]*>>", "", problem.solution) + f"\n#### {problem.answer}"
    bad = gold.replace("= 9 duck", "= 7 duck").replace("9 * 2 = $18", "7 * 2 = $14").replace("#### 18", "#### 14")
    prm = RolloutPRM(m=4, max_new_tokens=160, estimate="soft", mode="linear")
    good, wrong = prm.score_response(problem, gold), prm.score_response(problem, bad)
    assert good.estimates[1] >= wrong.estimates[1]
    assert wrong.first_error_index is not None


def test_many_responses_share_search_rounds_and_score_as_alone(shared_data, small_generator, monkeypatch):
    """Three ProcessBench responses scored together: one generator call per search round (not per
    prefix), and each response's estimates equal those it gets when scored alone."""
    items = load_processbench(shared_data / "processbench" / "gsm8k.json")[1:4]
    prm = RolloutPRM(mode="binary", generator=small_generator, m=2, max_new_tokens=12, gold_data=str(shared_data))
    alone = [prm.score(item.problem, item.steps) for item in items]
    calls = []
    real = small_generator.branch_many
    monkeypatch.setattr(small_generator, "branch_many", lambda requests: calls.append(len(requests)) or real(requests))
    together = prm.score_many([(item.problem, item.steps) for item in items])
    for a, b in zip(alone, together):
        assert (b.estimates, b.first_zero_index, b.prefix_evaluations) == (a.estimates, a.first_zero_index,
                                                                          a.prefix_evaluations)
        assert b.tokens_generated == a.tokens_generated
    assert sum(calls) == sum(a.prefix_evaluations for a in alone)  # every rollout set, none twice
    assert len(calls) == max(a.prefix_evaluations for a in alone) < sum(calls)  # rounds, not prefixes
