"""The re-branching search on real models: depth > 1 trees that round-trip, the budget stop, the early stop."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from prm_fire.problems import load_builtin
from prm_fire.prompts import build_messages
from prm_fire.sampling import SamplingConfig, stream_seed
from prm_fire.steps import split_steps
from prm_fire.search import SearchConfig, SearchResult, make_cut, run_searches, search, start_search
from prm_fire.search.report import one_sample_rounds
from prm_fire.tree import load_tree, node_text, save_tree, tree_depth, tree_from_json, tree_to_json, trees_equal
from prm_fire.view import embedded_tree_json, render_html
from prm_models import make_prm

PROBLEM = load_builtin()[0]  # gold answer 8; solution: 4 lines, the last "The answer is \boxed{8}"
LAST_LINE_WRONG = PROBLEM.solution.replace("\\boxed{8}", "\\boxed{11}")  # the reference checker flags line 4
FIRST_LINE_WRONG = ("The baker makes 4 * 9 = 32 muffins.\nAfter selling 23 she has 32 - 23 = 9 muffins.\n"
                    "After giving 5 away she has 9 - 5 = 4 muffins.\nThe answer is \\boxed{4}")


def _check_tree(tree, result) -> None:
    """Structure every search tree must have: graded branches under prefixes cut from their parent's text."""
    for node_id, record in tree.nodes(data="data"):
        if record.kind == "prefix":
            [parent] = tree.predecessors(node_id)
            assert node_text(tree, parent).startswith(record.prefix.text)
        if record.kind == "branch" and record.step_scores is not None:
            assert len(record.step_scores) == len(split_steps(node_text(tree, node_id), record.step_mode))
    spent = sum(r.generated_tokens + r.scorer_tokens for r in result.rounds) + result.root_scorer_tokens
    assert spent == result.tokens_spent
    for before, after in zip(result.rounds, result.rounds[1:]):
        assert after.tokens_before == before.tokens_after


@pytest.fixture(scope="module")
def smollm2():
    from prm_fire.generators import make_generator

    return make_generator("hf", "smollm2-135m")


@pytest.fixture(scope="module")
def small_search(smollm2):
    """smollm2 never finishes in 8 tokens: two rounds of 2 branches, the second from a branch's own cut."""
    config = SearchConfig(budget=20, n=2, width=1, sampling=SamplingConfig(method="fire", max_new_tokens=8))
    return search(PROBLEM, FIRST_LINE_WRONG, config, generator=smollm2, scorer=make_prm("reference"))


def test_search_grows_a_tree_of_depth_two_that_round_trips_through_json(small_search, tmp_path):
    tree, result = small_search
    assert result.depth >= 2 and tree_depth(tree) == result.depth
    deep = [n for n, r in tree.nodes(data="data") if r.kind == "prefix" and tree.nodes[next(tree.predecessors(n))][
        "data"].kind == "branch"]
    assert deep, "a branch should be the parent of a prefix"
    parent = next(tree.predecessors(deep[0]))
    assert tree.nodes[parent]["data"].prm == "reference" and tree.nodes[parent]["data"].step_scores is not None
    _check_tree(tree, result)
    back = load_tree(save_tree(tree, tmp_path / "search.json"))
    assert trees_equal(tree, back) and tree_depth(back) == result.depth
    assert back.graph["search"]["tokens_spent"] == result.tokens_spent
    page = render_html(back)
    assert page.count('class="node prefix"') == sum(1 for _, r in tree.nodes(data="data") if r.kind == "prefix")
    assert trees_equal(tree_from_json(embedded_tree_json(page)), tree)


def test_search_stops_at_the_budget(small_search):
    _, result = small_search
    assert not result.solved and result.stop == "budget"
    assert result.tokens_spent >= result.config.budget > result.rounds[-1].tokens_before
    assert not result.solved_within(result.config.budget)
    assert [r.sequences for r in result.rounds] == [2, 2]


def test_a_correct_starting_response_stops_before_any_round():
    s = start_search(PROBLEM, PROBLEM.solution, SearchConfig(budget=100), model="none", scorer=make_prm("reference"))
    run_searches([s], generator=None)  # nothing to generate: the generator is never touched
    result = s.result()
    assert result.stop == "root-correct" and result.rounds == [] and result.tokens_spent == 0
    assert result.solved_within(1)


def test_best_of_n_samples_from_scratch_with_a_new_seed_each_set(smollm2):
    config = SearchConfig(strategy="best-of-n", budget=1, n=2, width=2,
                          sampling=SamplingConfig(method="regular", max_new_tokens=4))
    tree, result = search(PROBLEM, LAST_LINE_WRONG, config, generator=smollm2)
    assert result.scorer is None and len(result.rounds) == 1
    prefixes = result.rounds[0].prefixes
    assert prefixes == ["r0/scratch0", "r0/scratch1"]
    assert all(tree.nodes[p]["data"].prefix.text == "" for p in prefixes)
    seeds = {tree.nodes[c]["data"].sampling.seed for p in prefixes for c in tree.successors(p)}
    assert seeds == {stream_seed(0, PROBLEM.id, "search/0"), stream_seed(0, PROBLEM.id, "search/1")}
    per_sample = one_sample_rounds(result, tree)  # the same samples, one per round
    assert [r.sequences for r in per_sample.rounds] == [1, 1, 1, 1] and per_sample.first_correct is None
    assert per_sample.tokens_spent == result.tokens_spent == sum(r.generated_tokens for r in per_sample.rounds)


def test_a_search_is_counted_per_sample_like_best_of_n_on_a_committed_run():
    """The critic search on gsm8k/test/11 (results/search): round 0 expands the root (2 branches, then 20
    critic tokens scoring them), round 1 (4 branches) holds the first correct branch, which comes first."""
    path = Path(__file__).resolve().parents[1] / "results/search/trees/search-fire-critic/gsm8k_test_11.json.gz"
    tree = tree_from_json(gzip.decompress(path.read_bytes()).decode())
    result = SearchResult.model_validate(tree.graph["search"])
    assert [r.sequences for r in result.rounds] == [2, 4] and result.rounds[0].scorer_tokens == 20
    assert result.first_correct.node_id == "r0/prm/fire/1/prm/fire/0" and result.first_correct.round == 1
    per_sample = one_sample_rounds(result, tree)
    assert [r.sequences for r in per_sample.rounds] == [1, 1, 1] and per_sample.rounds[0].tokens_before == 10
    assert [r.scorer_tokens for r in per_sample.rounds] == [0, 20, 0]  # after the round's last branch
    assert per_sample.rounds[1].tokens_after == result.rounds[0].tokens_after  # a whole round: the same total
    first = tree.nodes[result.first_correct.node_id]["data"].branch
    fc = per_sample.first_correct
    assert (fc.node_id, fc.round, fc.tokens_before_round) == (result.first_correct.node_id, 2, 481)
    assert fc.tokens == 481 + len(first.token_ids) == per_sample.tokens_spent < result.first_correct.tokens
    assert per_sample.solved_within(fc.tokens) and not result.solved_within(fc.tokens)
    assert per_sample.solved_within(result.first_correct.tokens) and not per_sample.solved_within(fc.tokens - 1)


def test_cut_needs_a_scorer_and_bad_names_fail():
    with pytest.raises(ValueError, match="needs a scorer"):
        start_search(PROBLEM, LAST_LINE_WRONG, SearchConfig(budget=10), model="none")
    with pytest.raises(ValueError, match="unknown cut 'entropy'"):
        make_cut("entropy")
    with pytest.raises(ValueError, match="unknown selection rule 'random'"):
        SearchConfig(budget=10, select="random")


def test_cli_reports_bad_input_in_one_line_each(capsys):
    from prm_app.cli import main

    code = main(["search", "--budget", "10", "--cut", "middle", "--prm", "nope", "--model", "nothere"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "error: --cut: unknown cut 'middle'; known: entropy-line, prm, line<k> (k >= 1)",
        "error: --prm: unknown PRM scorer 'nope'; known: " + ", ".join(__import__("prm_models").PRMS.names()),
        err[2],
    ] and err[2].startswith("error: --model: model 'nothere'")


@pytest.fixture(scope="module")
def qwen():
    from prm_fire.generators import make_generator

    return make_generator("hf", "qwen2.5-coder-0.5b")


@pytest.mark.slow
def test_a_problem_the_first_branch_solves_stops_at_once(qwen):
    """Cut before the wrong last line, qwen's greedy continuation writes the right answer: one round, then stop."""
    config = SearchConfig(budget=10_000, n=1, width=2,
                          sampling=SamplingConfig(method="regular", temperature=0, max_new_tokens=24))
    tree, result = search(PROBLEM, LAST_LINE_WRONG, config, generator=qwen, scorer=make_prm("reference"))
    assert result.stop == "solved" and len(result.rounds) == 1 and result.depth == 1
    assert result.first_correct.node_id == "r0/prm/regular/0" and tree.nodes["r0/prm"]["data"].prefix.kept_steps == 3
    assert result.tokens_spent == result.first_correct.tokens == result.rounds[0].generated_tokens < 24
    assert result.solved_within(result.tokens_spent) and not result.solved_within(result.tokens_spent - 1)


@pytest.mark.slow
def test_qwen_search_reaches_depth_two_and_round_trips(qwen, tmp_path):
    config = SearchConfig(budget=40, n=2, width=2, sampling=SamplingConfig(method="fire", max_new_tokens=12))
    tree, result = search(PROBLEM, FIRST_LINE_WRONG, config, generator=qwen, scorer=make_prm("reference"))
    assert result.depth >= 2 and len(result.rounds) >= 2
    _check_tree(tree, result)
    back = tree_from_json(tree_to_json(tree))
    assert trees_equal(tree, back)


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["prm", "entropy-line"])
def test_cli_search_writes_a_tree_that_loads(tmp_path, capsys, cut):
    from prm_app.cli import main

    out = tmp_path / "search.json"
    code = main(["search", "--model", "smollm2-135m", "--response", FIRST_LINE_WRONG, "--budget", "10", "--n", "2",
                 "--width", "1", "--max-new-tokens", "6", "--cut", cut, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "round 0: expanded r0; 2 branches" in printed and "not solved within 10 tokens" in printed
    tree = load_tree(out)
    assert tree.graph["search"]["stop"] == "budget" and out.with_suffix(".html").read_text().startswith("<!DOCTYPE")
    assert {tree.nodes[p]["data"].prefix.point for p in tree.successors("r0")} == {cut.removesuffix("-line")}


def test_a_cut_too_long_for_the_context_is_dropped_and_the_search_stops_exhausted(smollm2):
    import copy

    from prm_fire.branching import BranchJob, job_fits
    from prm_fire.prefixes import Prefix

    config = SearchConfig(budget=100, n=2, width=1, sampling=SamplingConfig(method="fire", max_new_tokens=8))
    # a context one token short of the empty prefix's job: no cut of the root fits (the shortest is empty)
    needed = len(smollm2.encode(build_messages(PROBLEM), "")) + 8
    small = copy.copy(smollm2)
    small.shape = smollm2.shape.model_copy(update={"context_length": needed - 1})
    job = BranchJob(problem=PROBLEM, prefix=Prefix(point="prm", text="", kept_steps=0), n=2, sampling=config.sampling)
    assert job_fits(job, smollm2) and not job_fits(job, small)
    s = start_search(PROBLEM, FIRST_LINE_WRONG, config, model=smollm2.model_name, scorer=make_prm("reference"))
    run_searches([s], small)  # branch_many would refuse the job: the search drops it instead
    result = s.result()
    assert result.stop == "exhausted" and result.too_long == 1 and result.rounds == [] and not result.solved


def test_flag_summary_counts_where_the_scorer_flagged(small_search, smollm2):
    from prm_fire.search.report import flag_positions, flag_summary, flag_table

    tree, _ = small_search
    scored, flags = flag_positions(tree)
    assert scored == 1 + sum(1 for _, r in tree.nodes(data="data") if r.kind == "branch" and r.step_scores)
    assert flags[0] == (0, 4)  # the root: its first line is wrong (4 * 9 = 32)
    summary = flag_summary("arm", [tree, tree])
    assert (summary.scored, summary.flagged) == (2 * scored, 2 * len(flags))
    assert summary.at_line[1] == 2 * sum(i == 0 for i, _ in flags) and summary.kept_share[0] == 0.0
    assert "| arm | " in flag_table([summary])
    bon, _ = search(PROBLEM, LAST_LINE_WRONG, SearchConfig(strategy="best-of-n", budget=1, n=1, width=1,
                    sampling=SamplingConfig(method="regular", max_new_tokens=4)), generator=smollm2)
    assert flag_positions(bon) == (0, [])  # best-of-N scores nothing


def test_entropy_line_cut_searches_without_a_scorer_from_the_policys_least_sure_line(smollm2, tmp_path):
    from prm_fire.entropy import EntropyScorer
    from prm_fire.search.cuts import CutInput

    entropy = EntropyScorer.for_generator(smollm2, "smollm2-135m")
    assert entropy.model is smollm2.model  # the HF policy's own weights, not a second copy
    config = SearchConfig(budget=20, n=2, width=1, cut="entropy-line",
                          sampling=SamplingConfig(method="fire", max_new_tokens=8))
    tree, result = search(PROBLEM, FIRST_LINE_WRONG, config, generator=smollm2,
                          cut=make_cut("entropy-line", entropy=entropy))
    assert result.scorer is None and result.depth >= 2
    assert not any(getattr(r, "step_scores", None) for _, r in tree.nodes(data="data"))
    expected = entropy.entropy_line(PROBLEM.id, build_messages(PROBLEM), FIRST_LINE_WRONG).step_index
    [root_cut] = [tree.nodes[p]["data"].prefix for p in tree.successors("r0")]
    assert root_cut.point == "entropy" and root_cut.kept_steps == expected >= 1
    _check_tree(tree, result)
    assert trees_equal(load_tree(save_tree(tree, tmp_path / "entropy.json")), tree)
    built = make_cut("entropy-line", generator=smollm2, model="smollm2-135m")  # as the CLI makes it
    root = CutInput(text=FIRST_LINE_WRONG, steps=split_steps(FIRST_LINE_WRONG), problem=PROBLEM)
    assert built.keep(root) == expected and built.entropy.model is smollm2.model
    two_lines = "a = 1\nb = 2"
    with pytest.raises(ValueError, match="needs the policy's weights"):
        make_cut("entropy-line").keep(CutInput(text=two_lines, steps=split_steps(two_lines), problem=PROBLEM))


def _easy_then_hard(path: Path, hard: bool = True) -> Path:
    """GSM8K-format problems: two qwen2.5-coder-0.5b answers right greedily (58 and 94 tokens), then builtin/3,
    whose greedy answer is cut at 100 tokens before any final answer (at full length it says 5, not 8)."""
    import json

    rows = [{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"},
            {"question": "What is 10 - 3?", "answer": "10 - 3 = 7\n#### 7"}]
    if hard:
        rows.append({"question": load_builtin()[2].question, "answer": "3x - 1 = 2x + 7, so x = 8.\n#### 8"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


SHORT = ["--budget", "16", "--n", "2", "--width", "1", "--max-new-tokens", "8", "--cut", "line1"]


@pytest.mark.slow
def test_plain_search_starts_from_a_problem_the_model_gets_wrong(tmp_path, capsys):
    """`prm-fire search --budget N` with the defaults: builtin/3, which qwen2.5-coder-0.5b answers 5 (gold 8)."""
    from prm_app.cli import main

    out = tmp_path / "search.json"
    assert main(["search", *SHORT, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("problem builtin/3 (gold answer: 8)") and "greedy answer 5: wrong" in printed
    assert "round 0: expanded r0; 2 branches" in printed
    assert load_tree(out).nodes["problem"]["data"].problem.id == "builtin/3"


def test_search_without_id_skips_problems_the_greedy_answer_solves(tmp_path, capsys):
    from prm_app.cli import main

    data, out = _easy_then_hard(tmp_path / "mixed.jsonl"), tmp_path / "search.json"
    assert main(["search", "--data", str(data), *SHORT, "--response-max-new-tokens", "100", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "greedy answer 4: correct" in printed and "greedy answer 7: correct" in printed
    assert "no --id given: the next problem, gsm8k/mixed/2" in printed and "greedy answer None: wrong" in printed
    assert "round 0: expanded r0; 2 branches" in printed
    assert load_tree(out).nodes["problem"]["data"].problem.id == "gsm8k/mixed/2"


@pytest.mark.slow
def test_search_without_id_says_when_nothing_needs_searching(tmp_path, capsys):
    """Every greedy answer right: exit 1, one line naming the problems tried, nothing written."""
    from prm_app.cli import main

    data, out = _easy_then_hard(tmp_path / "easy.jsonl", hard=False), tmp_path / "search.json"
    assert main(["search", "--data", str(data), *SHORT, "--out", str(out)]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert line == ("error: nothing to search: qwen2.5-coder-0.5b answers all 2 problems tried greedily right "
                    "(gsm8k/easy/0, gsm8k/easy/1); name one with --id or give a wrong --response")
    assert list(tmp_path.iterdir()) == [data]
