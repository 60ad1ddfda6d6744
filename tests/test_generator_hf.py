"""The HF backend: FIRE's first-token distribution, regular decoding after it, the shared-prefix path
against a per-branch reference, the vocabulary guard, and greedy equality with HF ``generate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from prm_fire.generators import Message, make_generator
from prm_fire.generators.hf import HFGenerator
from prm_fire.models import resolve_model
from prm_fire.sampling import (
    FireConfig,
    SamplingConfig,
    branch_seed,
    draw,
    guard_vocab,
    hot_logits,
    regular_logits,
)

EXTRA_ROWS = 40  # output rows beyond the tokenizer, as in Qwen's checkpoints


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))


@pytest.fixture(scope="module")
def tiny(tokenizer) -> HFGenerator:
    """A 2-layer Llama with fixed random weights and the real SmolLM2 tokenizer; its output matrix has
    EXTRA_ROWS rows past the vocabulary whose logits are made huge, so an unguarded sampler would
    pick them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer) + EXTRA_ROWS,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)  # sharp distributions: temperature and top-k matter
        model.lm_head.weight[len(tokenizer):] = model.lm_head.weight[:EXTRA_ROWS].abs().sum(0) * 5
    return HFGenerator(model, tokenizer)


PROMPT = [Message(role="user", content="What is 3 + 4? Please reason step by step.")]


def _next_logits(gen: HFGenerator, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return guard_vocab(gen.model(torch.tensor([ids])).logits[0, -1].float(), gen.vocab_size)


def _expected(probs: torch.Tensor, support: list[int], total: float) -> np.ndarray:
    p = probs[support].double().numpy()
    return p / p.sum() * total


def _counts(tokens: list[int], support: list[int]) -> np.ndarray:
    index = {t: i for i, t in enumerate(support)}
    assert set(tokens) <= set(support), f"drew tokens outside the support: {set(tokens) - set(support)}"
    counts = np.zeros(len(support))
    for t in tokens:
        counts[index[t]] += 1
    return counts


def test_fire_first_token_follows_hot_softmax_over_top_k(tiny):
    ids = tiny.encode(PROMPT, "Step 1:")
    logits = _next_logits(tiny, ids)
    fire = FireConfig(temperature=2.0, top_k=8)  # T=2 keeps the 8 probabilities clearly unequal
    expected = hot_logits(logits, fire).softmax(-1)
    support = expected.nonzero()[:, 0].tolist()
    assert len(support) == 8 and max(support) < len(tiny.tokenizer)

    n = 4000
    branches = tiny.branch_ids(ids, n, SamplingConfig(method="fire", fire=fire, max_new_tokens=1, seed=1))
    counts = _counts([b.first_token_id for b in branches], support)
    assert chisquare(counts, _expected(expected, support, n)).pvalue > 1e-3
    # The test has power: the same draws reject the untempered top-k distribution.
    assert chisquare(counts, _expected(logits.softmax(-1), support, n)).pvalue < 1e-6
    # Recorded log-probs: raw model log-prob and the hot one it was drawn with.
    b = branches[0]
    assert b.first_token_logprob == pytest.approx(logits.log_softmax(-1)[b.first_token_id].item(), abs=1e-5)
    assert b.first_token_sampled_logprob == pytest.approx(expected[b.first_token_id].log().item(), abs=1e-5)


def test_tokens_after_the_first_follow_regular_settings(tiny):
    ids = tiny.encode(PROMPT, "Step 1:")
    # top_k=1 makes the hot token the argmax, so every branch shares it and the second token has
    # one known distribution: the regular transforms of the logits after it.
    cfg = SamplingConfig(method="fire", fire=FireConfig(top_k=1), temperature=0.8, top_k=30, top_p=0.9,
                         max_new_tokens=2, seed=3)
    first = int(_next_logits(tiny, ids).argmax())
    expected = regular_logits(_next_logits(tiny, ids + [first]), cfg).softmax(-1)
    support = expected.nonzero()[:, 0].tolist()
    assert 1 < len(support) <= 30

    n = 3000
    branches = tiny.branch_ids(ids, n, cfg)
    assert {b.first_token_id for b in branches} == {first}
    seconds = [b.token_ids[1] for b in branches if len(b.token_ids) == 2]
    assert len(seconds) > 0.95 * n
    counts = _counts(seconds, support)
    assert chisquare(counts, _expected(expected, support, counts.sum())).pvalue > 1e-3


def _reference(gen: HFGenerator, ids: list[int], n: int, cfg: SamplingConfig) -> list[list[int]]:
    """Per-branch decoding with no cache: every step recomputes the whole sequence."""
    rows = []
    for i in range(n):
        g = torch.Generator().manual_seed(branch_seed(cfg.seed, i))
        seq, out = list(ids), []
        for step in range(cfg.max_new_tokens):
            logits = _next_logits(gen, seq)[None]
            if step == 0 and cfg.fire is not None:
                token = draw(hot_logits(logits, cfg.fire), [g])
            elif cfg.temperature == 0:
                token = logits.argmax(-1)
            else:
                token = draw(regular_logits(logits, cfg), [g])
            t = int(token)
            if t in gen.eos:
                break
            out.append(t)
            seq.append(t)
        rows.append(out)
    return rows


@pytest.mark.parametrize(
    "cfg",
    [
        SamplingConfig(method="fire", temperature=1.0, top_p=0.95, max_new_tokens=12, seed=5),
        SamplingConfig(method="regular", temperature=0.7, top_k=50, max_new_tokens=12, seed=6),
        SamplingConfig(method="regular", temperature=0, max_new_tokens=12),
    ],
    ids=["fire", "regular", "greedy"],
)
def test_shared_prefix_path_matches_per_branch_reference(tiny, cfg):
    ids = tiny.encode(PROMPT, "Step 1: add.\n")
    branches = tiny.branch_ids(ids, 5, cfg)
    assert [b.token_ids for b in branches] == _reference(tiny, ids, 5, cfg)
    # A branch depends on (seed, index) only, not on how many siblings it has.
    assert tiny.branch_ids(ids, 2, cfg)[1].token_ids == branches[1].token_ids


def test_vocab_guard_never_samples_rows_past_the_tokenizer(tiny):
    ids = tiny.encode(PROMPT, "")
    assert int(tiny.model(torch.tensor([ids])).logits[0, -1].argmax()) >= len(tiny.tokenizer)  # the trap is set
    for method in ("fire", "regular"):
        branches = tiny.branch_ids(ids, 16, SamplingConfig(method=method, temperature=1.5, max_new_tokens=8))
        assert all(t < len(tiny.tokenizer) for b in branches for t in [b.first_token_id, *b.token_ids])


def test_bad_arguments_are_named(tiny):
    with pytest.raises(ValueError, match="n must be at least 1"):
        tiny.branch_ids([1, 2], 0, SamplingConfig())
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        tiny.branch_ids([], 2, SamplingConfig())


@pytest.fixture(scope="module")
def smollm() -> HFGenerator:
    return make_generator("hf", "smollm2-135m")


def test_real_model_greedy_equals_hf_generate(smollm):
    ids = smollm.encode(PROMPT, "")
    ours = smollm.branch_ids(ids, 2, SamplingConfig(method="regular", temperature=0, max_new_tokens=40))
    ref = smollm.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=40)[0, len(ids):].tolist()
    ref = [t for t in ref if t not in smollm.eos]
    assert ours[0].token_ids == ours[1].token_ids == ref[: len(ours[0].token_ids)]
    assert ours[0].finish_reason == ("stop" if len(ref) < 40 else "length")


def test_real_model_fire_gives_more_distinct_first_tokens(smollm):
    ids = smollm.encode(PROMPT, "")
    fire = smollm.branch_ids(ids, 32, SamplingConfig(method="fire", max_new_tokens=1, seed=0))
    regular = smollm.branch_ids(ids, 32, SamplingConfig(method="regular", max_new_tokens=1, seed=0))
    top16 = set(_next_logits(smollm, ids).topk(16).indices.tolist())
    assert {b.first_token_id for b in fire} <= top16
    assert len({b.first_token_id for b in fire}) > len({b.first_token_id for b in regular})


# ----------------------------------------------------------------------------- many requests in one call
def test_many_requests_in_one_call_equal_each_alone(smollm, gsm8k_cuts, many_requests, check_batch_shape):
    """2 prefixes x FIRE/regular with their own seeds and budgets, plus early-EOS rows, in one batch of
    prompts of different lengths: every request gets exactly the records it gets alone."""
    requests = many_requests(smollm, gsm8k_cuts[:2], n=2, budget=8)
    assert len({len(r.prompt_ids) for r in requests}) > 2  # padding is exercised
    many = smollm.branch_many(requests)
    check_batch_shape(requests, many)
    assert many == [smollm.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]


@pytest.mark.slow
def test_many_requests_on_qwen_equal_each_alone(gsm8k_cuts, many_requests, check_batch_shape):
    """4 GSM8K prefixes x FIRE/regular, n=4, 28 to 41 tokens, plus early-EOS rows: exact as alone."""
    qwen = make_generator("hf", "qwen2.5-coder-0.5b")
    requests = many_requests(qwen, gsm8k_cuts, n=4, budget=32)
    many = qwen.branch_many(requests)
    check_batch_shape(requests, many)
    assert many == [qwen.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]


def test_decoding_raises_no_deprecation_warning(smollm):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        branches = smollm.branch_ids(smollm.encode(PROMPT, ""), 2, SamplingConfig(max_new_tokens=3))
    deprecations = [f"{w.category.__name__}: {w.message}" for w in caught
                    if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))]
    assert deprecations == []
    assert len(branches) == 2 and all(1 <= len(b.token_ids) <= 3 for b in branches)


def test_requests_beyond_the_context_or_memory_are_refused_before_decoding(smollm):
    from prm_fire.limits import LimitError
    from prm_fire.records import BranchRequest

    ids = smollm.encode(PROMPT, "")
    context = smollm.shape.context_length
    with pytest.raises(LimitError, match=rf"request 0 of 1: {len(ids)} prompt tokens \+ {context} new tokens"):
        smollm.branch_ids(ids, 1, SamplingConfig(max_new_tokens=context))
    with pytest.raises(LimitError, match="2 requests of 200001 branches: 200001 sequences of .* need about"):
        smollm.branch_many([BranchRequest(prompt_ids=ids, n=200000, sampling=SamplingConfig(max_new_tokens=64)),
                            BranchRequest(prompt_ids=ids, n=1, sampling=SamplingConfig(max_new_tokens=64))])
