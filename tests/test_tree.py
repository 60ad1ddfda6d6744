"""Tree of alternatives: structure, JSON round trip, summaries, and clear errors on bad files."""

from __future__ import annotations

import json

import pytest

from prm_fire.branching import BranchSet, GradedBranch
from prm_fire.grader import grade
from prm_fire.prefixes import build_prefix
from prm_fire.problems import load_builtin
from prm_fire.sampling import SamplingConfig
from prm_fire.tree import (
    TreeError,
    add_branch_set,
    add_response,
    load_tree,
    new_tree,
    save_tree,
    summarize,
    tree_from_json,
    tree_to_json,
    trees_equal,
)

PROBLEM = load_builtin()[0]  # gold answer 8


def _branch_set(prefix, method: str, texts: list[str]) -> BranchSet:
    branches = []
    for i, text in enumerate(texts):
        verdict = grade(prefix.text + text, PROBLEM.answer)
        branches.append(GradedBranch(
            index=i, method=method, token_ids=[100 + i, 7], text=text, first_token_id=100 + (i % 2),
            first_token=text[:2], first_token_logprob=-1.5, first_token_sampled_logprob=-2.7,
            finish_reason="stop", answer=verdict.predicted, grade=verdict))
    return BranchSet(problem_id=PROBLEM.id, model="test-records", prefix=prefix,
                     sampling=SamplingConfig(method=method), branches=branches)


@pytest.fixture
def tree():
    tree = new_tree(PROBLEM)
    response_id = add_response(tree, PROBLEM.solution, origin="dataset", step_scores=[0.9, 0.8, 0.2, 0.1],
                               prm="label", first_error_index=2)
    prefix = build_prefix(PROBLEM.solution, "line2", problem_id=PROBLEM.id)
    add_branch_set(tree, response_id, _branch_set(prefix, "fire", [
        "So 36 - 23 = 13.\nThen 13 - 5 = 8.\n\\boxed{8}", "Thus \\boxed{8.0}", "I get \\boxed{9}", "No answer."]))
    add_branch_set(tree, response_id, _branch_set(prefix, "regular", ["\\boxed{13}", "\\boxed{13}"]))
    return tree


def test_structure_problem_response_prefix_branches(tree):
    assert list(tree.successors("problem")) == ["r0"]
    assert list(tree.successors("r0")) == ["r0/line2"]
    assert len(list(tree.successors("r0/line2"))) == 6
    assert tree.nodes["r0/line2/fire/2"]["data"].branch.answer == "9"
    assert tree.nodes["r0"]["data"].steps[1].text.startswith("After selling 23")


def test_summary_counts_correct_branches_and_distinct_answers(tree):
    fire = summarize(tree, "r0/line2", "fire", ks=(1, 2, 10))
    assert (fire.n, fire.correct, fire.distinct_first_tokens) == (4, 2, 2)
    assert fire.pass_at == {1: 0.5, 2: pytest.approx(5 / 6)}  # pass@10 needs n >= 10: left out
    assert fire.effective_answers == 2  # "8" and "8.0" are one answer, "9" another; None is not an answer
    regular = summarize(tree, "r0/line2", "regular")
    assert (regular.correct, regular.effective_answers) == (0, 1)


def test_json_round_trip_gives_an_equal_tree(tree, tmp_path):
    path = save_tree(tree, tmp_path / "deep" / "tree.json")
    back = load_tree(path)
    assert trees_equal(tree, back)
    assert tree_to_json(back) == path.read_text()
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and {"nodes", "edges", "directed"} <= doc.keys()


def test_adding_the_same_branches_twice_or_to_a_missing_response_fails(tree):
    prefix = tree.nodes["r0/line2"]["data"].prefix
    with pytest.raises(ValueError, match="already has branch 'r0/line2/fire/0'"):
        add_branch_set(tree, "r0", _branch_set(prefix, "fire", ["x"]))
    with pytest.raises(KeyError, match="no response node 'r7'"):
        add_branch_set(tree, "r7", _branch_set(prefix, "fire", ["x"]))


def _mutate(tree, change) -> str:
    doc = json.loads(tree_to_json(tree))
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=9), "first at schema_version"),
        (lambda d: d["nodes"][1]["data"].update(kind="leaf"), "first at nodes.1.data"),
        (lambda d: d["nodes"][2]["data"]["prefix"].pop("text"), "nodes.2.data.prefix.prefix.text: Field required"),
        (lambda d: d["edges"].append({"source": "r0", "target": "ghost"}), "names unknown node 'ghost'"),
        (lambda d: d["edges"].append({"source": "r0/line2/fire/0", "target": "r0"}), "do not form a tree"),
    ],
    ids=["version", "kind", "missing-field", "dangling-edge", "cycle"],
)
def test_malformed_documents_get_clear_errors(tree, change, message):
    with pytest.raises(TreeError, match=message):
        tree_from_json(_mutate(tree, change), source="bad.json")


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(TreeError, match=f"{path}: not a prm-fire tree .*Invalid JSON"):
        load_tree(path)


def test_writing_json_leaves_the_trees_graph_attributes_alone(tree):
    before = dict(tree.graph)
    tree_to_json(tree)
    tree_to_json(tree)
    assert tree.graph == before and before["schema_version"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["nodes"][1]["data"].update(colour="red"), r"nodes.1.data.response.colour: Extra inputs are not "
                                                               r"permitted; node 'r0'"),
        (lambda d: d["nodes"][2]["data"].update(note="x"), r"Extra inputs are not permitted; node 'r0/line2'"),
        (lambda d: d["nodes"][1]["data"].update(text=d["nodes"][1]["data"]["text"].replace("36", "37")),
         r"steps do not match the text .*; node 'r0'"),
        (lambda d: d["nodes"][1]["data"]["steps"].pop(), r"steps do not match the text .*; node 'r0'"),
        (lambda d: d["nodes"][1]["data"].update(first_error_index=7), r"first_error_index 7 is outside the 4 steps"),
        (lambda d: d["nodes"][2]["data"]["prefix"].update(text="Not the start.\n"),
         r"node 'r0/line2': its prefix is not the start of response 'r0'"),
    ],
    ids=["unknown-field-response", "unknown-field-prefix", "text-edited", "steps-edited", "first-error-outside",
         "prefix-not-in-response"],
)
def test_inconsistent_nodes_fail_to_load_naming_the_node(tree, change, message):
    with pytest.raises(TreeError, match=message):
        tree_from_json(_mutate(tree, change), source="bad.json")


def test_a_first_error_outside_the_response_is_refused_when_added():
    with pytest.raises(ValueError, match="first_error_index 7 is outside the 4 steps"):
        add_response(new_tree(PROBLEM), PROBLEM.solution, origin="given", first_error_index=7)
