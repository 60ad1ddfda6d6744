"""SamplingConfig validation and the regular/hot logit transforms on hand-checked tensors."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from prm_fire.sampling import FireConfig, SamplingConfig, draw, guard_vocab, hot_logits, regular_logits

LOGITS = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -1), ("min_p", 1.0),
     ("max_new_tokens", 0), ("seed", -3), ("method", "hot")],
)
def test_bad_values_fail_at_construction_naming_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        SamplingConfig(**{field: value})


def test_fire_defaults_and_method_switch():
    cfg = SamplingConfig(temperature=0.5)
    assert cfg.fire == FireConfig(temperature=30.0, top_k=16)
    regular = cfg.with_method("regular")
    assert regular.fire is None and regular.temperature == 0.5
    assert regular.with_method("fire").fire == FireConfig()
    with pytest.raises(ValidationError, match="method='regular' takes no fire settings"):
        SamplingConfig(method="regular", fire=FireConfig())
    with pytest.raises(ValidationError, match="temperature"):
        FireConfig(temperature=0)


def _probs(logits: torch.Tensor) -> list[float]:
    return logits.softmax(-1)[0].tolist()


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    kept = _probs(regular_logits(LOGITS, SamplingConfig(top_p=0.7, temperature=1.0)))
    assert kept == pytest.approx([2 / 3, 1 / 3, 0, 0])


def test_min_p_drops_tokens_below_a_fraction_of_the_top():
    kept = _probs(regular_logits(LOGITS, SamplingConfig(min_p=0.4, temperature=1.0)))
    assert kept == pytest.approx([0.5 / 0.75, 0.25 / 0.75, 0, 0])


def test_temperature_then_top_k():
    kept = _probs(regular_logits(LOGITS, SamplingConfig(temperature=2.0, top_k=2)))
    a, b = math.sqrt(0.5), math.sqrt(0.25)
    assert kept == pytest.approx([a / (a + b), b / (a + b), 0, 0])


def test_hot_token_is_top_k_of_raw_logits_then_hot_temperature():
    kept = _probs(hot_logits(LOGITS, FireConfig(temperature=30.0, top_k=3)))
    w = [p ** (1 / 30) for p in (0.5, 0.25, 0.15)]
    assert kept == pytest.approx([x / sum(w) for x in w] + [0])


def test_guard_masks_ids_past_the_vocabulary_and_draw_respects_it():
    logits = guard_vocab(torch.tensor([[0.0, 0.0, 50.0]]), vocab_size=2)
    assert logits[0, 2] == float("-inf")
    gens = [torch.Generator().manual_seed(i) for i in range(1)]
    assert all(int(draw(logits, gens)) < 2 for _ in range(50))
