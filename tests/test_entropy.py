"""Entropy-line on the real embedded policy: the entropies are the model's own, the cut is the rule's."""

from __future__ import annotations

import math

import pytest

from prm_fire.entropy import EntropyScorer, entropy_line_index, token_steps
from prm_fire.prefixes import PrefixError, build_prefix
from prm_fire.problems import load_problems
from prm_fire.prompts import build_messages


@pytest.fixture(scope="module")
def smol():
    from prm_fire.generators.hf import HFGenerator

    gen = HFGenerator("smollm2-135m")
    return gen, EntropyScorer(gen.model, gen.tokenizer, vocab_size=gen.vocab_size)


@pytest.fixture(scope="module")
def solved(shared_data):
    """A GSM8K train problem and its reference solution written as a response (5+ lines)."""
    problem = next(p for p in load_problems(shared_data / "gsm8k" / "train.jsonl", limit=50)
                   if len(p.solution.splitlines()) >= 5)
    return problem, problem.solution


def _entropy(logits) -> float:
    logp = logits.float().log_softmax(-1)
    return float(-(logp.exp() * logp).sum())


def test_token_entropies_are_the_policys_next_token_entropies(smol, solved):
    """At any response token, the entropy equals that of the policy's next-token distribution after the
    prompt and the response up to that token, computed by the generator on its own."""
    gen, scorer = smol
    problem, response = solved
    messages = build_messages(problem)
    starts, entropies, texts = scorer.token_entropies(messages, response)
    assert len(starts) == len(entropies) == len(texts) > 20
    assert starts == sorted(starts) and starts[0] == 0 and "".join(texts) == response
    assert all(e >= -1e-5 for e in entropies) and max(entropies) <= math.log(gen.vocab_size)
    for j in (0, 7, len(starts) // 2, max(range(len(entropies)), key=entropies.__getitem__)):
        ids = gen.encode(messages, response[: starts[j]])
        import torch

        with torch.inference_mode():
            logits = gen.model(input_ids=torch.tensor([ids])).logits[0, -1, : gen.vocab_size]
        assert entropies[j] == pytest.approx(_entropy(logits), abs=2e-3), f"token {j} {texts[j]!r}"


def test_entropy_line_is_the_line_of_the_top_token_after_line_one(smol, solved):
    gen, scorer = smol
    problem, response = solved
    messages = build_messages(problem)
    cut = scorer.entropy_line(problem.id, messages, response)
    starts, entropies, _ = scorer.token_entropies(messages, response)
    from prm_fire.steps import split_steps

    steps = split_steps(response, "line")
    owner = token_steps(starts, [s.start for s in steps])
    later = [j for j in range(len(starts)) if owner[j] >= 1]
    top = max(later, key=entropies.__getitem__)
    assert cut.step_index == owner[top] >= 1 and cut.entropy == pytest.approx(entropies[top], abs=1e-6)
    assert len(cut.line_max) == len(steps) and cut.tokens == len(starts)
    prefix = build_prefix(response, "entropy", entropy_index=cut.step_index, problem_id=problem.id)
    assert response.startswith(prefix.text) and prefix.text.endswith("\n")
    assert prefix.kept_steps == cut.step_index


def test_entropy_cut_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least 2 steps"):
        entropy_line_index([1.0])
    with pytest.raises(PrefixError, match="problem 'p1': insertion point entropy needs an entropy-line index"):
        build_prefix("a\nb\n", "entropy", problem_id="p1")
    with pytest.raises(PrefixError, match="entropy-line index 5 is outside"):
        build_prefix("a\nb\n", "entropy", entropy_index=5, problem_id="p1")
