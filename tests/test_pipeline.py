"""End to end on the real embedded model and a real MATH train problem: data -> steps -> prefix ->
FIRE branches -> grader -> pass@k -> tree JSON; and the ``prm-fire branch`` command."""

from __future__ import annotations

import pytest
import torch

from prm_fire import (
    SamplingConfig,
    add_branch_set,
    add_response,
    branch,
    build_messages,
    build_prefix,
    find_problem,
    load_problems,
    load_tree,
    make_generator,
    new_tree,
    save_tree,
    split_steps,
    summarize,
)
from prm_app.cli import main
from prm_fire.tree import trees_equal


@pytest.fixture(scope="module")
def generator():
    return make_generator("hf", "smollm2-135m")


def test_fire_branches_of_a_real_math_problem_land_in_a_tree(generator, shared_data, tmp_path):
    problems = load_problems(shared_data / "math" / "train.jsonl", limit=50)
    multi_line = next(p for p in problems if len(split_steps(p.solution)) >= 3)
    problem = find_problem(problems, multi_line.id)
    prefix = build_prefix(problem.solution, "line2", problem_id=problem.id)
    assert prefix.kept_steps == 1 and problem.solution.startswith(prefix.text)

    result = branch(problem, prefix, n=4, sampling=SamplingConfig(max_new_tokens=24, seed=7), generator=generator)
    assert result.n == 4 and [b.index for b in result.branches] == [0, 1, 2, 3]
    assert all(b.grade is not None and b.grade.gold == problem.answer for b in result.branches)
    assert all(0 < len(b.token_ids) <= 24 for b in result.branches)
    # Every hot first token lies in the top-16 of the model's next-token distribution after the prefix.
    ids = generator.encode(build_messages(problem), prefix.text)
    with torch.inference_mode():
        top16 = set(generator.model(torch.tensor([ids])).logits[0, -1].topk(16).indices.tolist())
    assert {b.first_token_id for b in result.branches} <= top16
    assert all(b.first_token_sampled_logprob > b.first_token_logprob for b in result.branches
               if b.first_token_logprob < -3)  # the hot distribution lifts unlikely tokens

    tree = new_tree(problem)
    response_id = add_response(tree, problem.solution, origin="dataset")
    prefix_id = add_branch_set(tree, response_id, result)
    summary = summarize(tree, prefix_id, "fire", ks=(1, 4))
    assert summary.n == 4 and 0 <= summary.correct <= 4 and set(summary.pass_at) == {1, 4}
    assert trees_equal(tree, load_tree(save_tree(tree, tmp_path / "tree.json")))


def test_cli_branch_writes_a_tree_and_prints_both_methods(tmp_path, capsys):
    out = tmp_path / "tree.json"
    code = main(["branch", "--model", "smollm2-135m", "--response-from", "model", "--point", "line2", "--n", "3",
                 "--max-new-tokens", "16",
                 "--response-max-new-tokens", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "== fire: 3 branches from line2" in printed and "== regular: 3 branches from line2" in printed
    tree = load_tree(out)
    assert tree.nodes["problem"]["data"].problem.id == "builtin/1"
    assert tree.nodes["r0"]["data"].origin == "sampled:smollm2-135m"
    assert len(list(tree.successors("r0/line2"))) == 6
    assert "<html" in out.with_suffix(".html").read_text() and f"{out.with_suffix('.html')}" in printed
    assert "distinct first tokens" in printed and "pass@1" in printed  # the side-by-side table


def test_cli_errors_are_named(tmp_path, capsys, shared_data):
    assert main(["branch", "--response", "Only one line.", "--point", "line3", "--out", str(tmp_path / "t.json")]) == 2
    assert "response has 1 line, insertion point line3 needs 3" in capsys.readouterr().err
    assert main(["branch", "--data", str(shared_data / "math" / "test.jsonl"), "--id", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
