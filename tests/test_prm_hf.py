"""prm_models/hf_prm.py: the Qwen2.5-Math-PRM and Math-Shepherd conventions.

The 7B checkpoints cannot be downloaded here, so the mechanics (tag positions, score extraction,
padded batching, truncation) run on tiny models built from configs with fixed (seeded) weights and
the real tokenizers of the embedded models, on real ProcessBench solutions. Neither embedded
tokenizer has the tags as one token: ``<extra_0>`` is added to the Qwen2.5 tokenizer as a special
token (the Qwen PRM tokenizer has it) and ``ки`` to the SmolLM2 tokenizer (the Mistral tokenizer of
Math-Shepherd splits it, and the model card matches its last piece).
"""

from __future__ import annotations

import pytest
import torch

from prm_fire.models import resolve_model
from prm_fire.problems import load_processbench
from prm_models import PRMS
from prm_models.hf_prm import (
    MATH_SHEPHERD_PRM,
    QWEN_PRM_7B,
    QWEN_SYSTEM,
    HFPRMConfig,
    MathShepherdPRM,
    QwenMathPRM,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def items(shared_data):
    return load_processbench(shared_data / "processbench" / "gsm8k.json", limit=6)


@pytest.fixture(scope="module")
def qwen_parts():
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model("qwen2.5-coder-0.5b"))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.Qwen2ForTokenClassification(config).eval(), tokenizer


@pytest.fixture(scope="module")
def shepherd_parts():
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    tokenizer.add_tokens(["ки"])
    config = transformers.MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    return transformers.MistralForCausalLM(config).eval(), tokenizer


def test_registered_with_the_documented_hub_ids():
    assert PRMS.get("qwen-prm") is QwenMathPRM and PRMS.get("math-shepherd") is MathShepherdPRM
    assert QwenMathPRM.default_model == QWEN_PRM_7B == "Qwen/Qwen2.5-Math-PRM-7B"
    assert MathShepherdPRM.default_model == MATH_SHEPHERD_PRM == "peiyi9979/math-shepherd-mistral-7b-prm"
    with pytest.raises(ValueError, match="needs its tokenizer"):
        QwenMathPRM(model=object())


def test_qwen_input_is_the_model_card_chat_with_a_tag_after_every_step(qwen_parts, items):
    prm = QwenMathPRM(model=qwen_parts[0], tokenizer=qwen_parts[1])
    item = items[0]
    text = prm.render(item.problem, item.steps)
    assert f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>" in text
    assert f"<|im_start|>user\n{item.problem.question}<|im_end|>" in text
    assert "<|im_start|>assistant\n" + "<extra_0>".join(item.steps) + "<extra_0><|im_end|>" in text
    assert not text.rstrip().endswith("<|im_start|>assistant")  # no generation prompt


def test_qwen_tag_positions_follow_each_step(qwen_parts, items):
    model, tokenizer = qwen_parts
    prm = QwenMathPRM(model=model, tokenizer=tokenizer)
    item = items[1]
    ids = prm.encode(item.problem, item.steps)
    tag = tokenizer.convert_tokens_to_ids("<extra_0>")
    positions = [p for p, t in enumerate(ids) if t == tag]
    assert len(positions) == len(item.steps)
    # the text between consecutive tags is exactly the next step
    for k in range(1, len(positions)):
        assert tokenizer.decode(ids[positions[k - 1] + 1 : positions[k]]) == item.steps[k]


def test_qwen_score_is_the_positive_class_probability_at_the_tags(qwen_parts, items):
    model, tokenizer = qwen_parts
    prm = QwenMathPRM(model=model, tokenizer=tokenizer)
    item = items[2]
    ids = prm.encode(item.problem, item.steps)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    tag = tokenizer.convert_tokens_to_ids("<extra_0>")
    expected = [logits[p].softmax(-1)[1].item() for p, t in enumerate(ids) if t == tag]
    result = prm.score(item.problem, item.steps)
    assert result.scores == pytest.approx(expected, abs=1e-6)
    assert result.scored_steps == len(item.steps) and not result.truncated

    # With the head's bias pushed to class 1 (resp. 0) every step scores ~1 (resp. ~0).
    head = model.score
    saved = head.bias.detach().clone() if head.bias is not None else None
    try:
        with torch.no_grad():
            if head.bias is None:
                head.bias = torch.nn.Parameter(torch.zeros(2))
            head.bias.copy_(torch.tensor([-50.0, 50.0]))
            assert min(prm.score(item.problem, item.steps).scores) > 0.999
            head.bias.copy_(torch.tensor([50.0, -50.0]))
            low = prm.score(item.problem, item.steps)
            assert max(low.scores) < 1e-3 and low.first_error_index == 0
    finally:
        with torch.no_grad():
            if saved is None:
                head.bias = None
            else:
                head.bias.copy_(saved)


@pytest.mark.parametrize("which", ["qwen", "shepherd"])
def test_padded_batch_equals_one_by_one(which, qwen_parts, shepherd_parts, items):
    model, tokenizer = qwen_parts if which == "qwen" else shepherd_parts
    cls = QwenMathPRM if which == "qwen" else MathShepherdPRM
    prm = cls(HFPRMConfig(batch_size=4), model=model, tokenizer=tokenizer)
    solutions = [(it.problem, it.steps) for it in items]
    lengths = {len(prm.encode(p, s)) for p, s in solutions}
    assert len(lengths) > 1  # the batch really pads
    batched = prm.score_many(solutions)
    single = [prm.score(p, s) for p, s in solutions]
    assert [len(b.scores) for b in batched] == [len(s) for _, s in solutions]
    for b, s in zip(batched, single):
        assert b.scores == pytest.approx(s.scores, abs=1e-5)


def test_math_shepherd_input_and_plus_probability(shepherd_parts, items):
    model, tokenizer = shepherd_parts
    prm = MathShepherdPRM(model=model, tokenizer=tokenizer)
    item = items[0]
    text = prm.render(item.problem, item.steps)
    assert text == item.problem.question + " " + " ки\n".join(item.steps) + " ки"
    ids = prm.encode(item.problem, item.steps)
    tag = tokenizer.encode("ки", add_special_tokens=False)[-1]
    good, bad = tokenizer.encode("+ -", add_special_tokens=False)
    assert prm.candidate_ids() == (good, bad)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    expected = [logits[p, [good, bad]].softmax(-1)[0].item() for p, t in enumerate(ids) if t == tag]
    assert len(expected) == len(item.steps)
    assert prm.score(item.problem, item.steps).scores == pytest.approx(expected, abs=1e-6)

    # Raising the '-' logit everywhere makes every step incorrect.
    with torch.no_grad():
        saved = model.lm_head.weight[bad].clone()
        model.lm_head.weight[bad] = model.lm_head.weight[good] + 0.0
        tied = prm.score(item.problem, item.steps).scores
        model.lm_head.weight[bad] = saved
    assert tied == pytest.approx([0.5] * len(item.steps), abs=1e-6)  # equal logits -> 0.5


def test_overflow_error_names_the_problem_and_truncate_marks_it(qwen_parts, items):
    model, tokenizer = qwen_parts
    item = max(items, key=lambda it: len(it.steps))
    full = QwenMathPRM(model=model, tokenizer=tokenizer).score(item.problem, item.steps)
    ids = QwenMathPRM(model=model, tokenizer=tokenizer).encode(item.problem, item.steps)
    tag = tokenizer.convert_tokens_to_ids("<extra_0>")
    second_tag = [p for p, t in enumerate(ids) if t == tag][1]
    limit = second_tag + 1  # room for exactly two tags

    strict = QwenMathPRM(HFPRMConfig(max_length=limit), model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match=rf"problem '{item.problem.id}': {len(ids)} tokens for {len(item.steps)} steps exceed the context of {limit}"):
        strict.score(item.problem, item.steps)

    cut = QwenMathPRM(HFPRMConfig(max_length=limit, overflow="truncate"), model=model, tokenizer=tokenizer)
    result = cut.score(item.problem, item.steps)
    assert result.truncated and result.scored_steps == 2 and result.n_tokens == len(ids)
    assert result.scores[:2] == pytest.approx(full.scores[:2], abs=1e-5)  # causal: same prefix, same scores
    assert result.scores[2:] == [1.0] * (len(item.steps) - 2)

    with pytest.raises(ValueError, match="no step tag within the first 5 tokens"):
        QwenMathPRM(HFPRMConfig(max_length=5, overflow="truncate"), model=model, tokenizer=tokenizer).score(
            item.problem, item.steps
        )


def test_bad_inputs_are_named(qwen_parts, items):
    model, tokenizer = qwen_parts
    prm = QwenMathPRM(model=model, tokenizer=tokenizer)
    p = items[0].problem
    with pytest.raises(ValueError, match=rf"problem '{p.id}': no steps"):
        prm.score(p, [])
    with pytest.raises(ValueError, match="step 1 is empty"):
        prm.score(p, ["a", "  "])
    with pytest.raises(ValueError, match="step 0 contains the step tag"):
        prm.score(p, ["x <extra_0> y"])
    # without the added token, the tag is several tokens: a clear error, not silent misplacement
    plain = transformers.AutoTokenizer.from_pretrained(resolve_model("qwen2.5-coder-0.5b"))
    with pytest.raises(ValueError, match="does not keep the tag '<extra_0>' as one token"):
        QwenMathPRM(model=model, tokenizer=plain).score(p, items[0].steps)
