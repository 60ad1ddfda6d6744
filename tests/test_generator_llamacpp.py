"""The llama.cpp backend on the real embedded GGUF models: FIRE's first-token distribution from
llama.cpp's own logits, greedy decoding against HF on the same weights, seeding and resume, token ids
against the HF tokenizer on MATH prompts, and the vocabulary guard.

Run with ``python -m pytest -m llamacpp``; skipped when llama-cpp-python is not installed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed: pip install 'prm-fire[llamacpp]' (compiles, ~5 min)"
)

import torch  # noqa: E402
from scipy.stats import chisquare  # noqa: E402

from prm_fire.generators import Message, make_generator  # noqa: E402
from prm_fire.generators.hf import HFGenerator  # noqa: E402
from prm_fire.generators.llamacpp import LlamaCppGenerator  # noqa: E402
from prm_fire.models import ModelError  # noqa: E402
from prm_fire.problems import load_problems  # noqa: E402
from prm_fire.prompts import build_messages  # noqa: E402
from prm_fire.records import BranchRequest  # noqa: E402
from prm_fire.sampling import FireConfig, SamplingConfig, hot_logits  # noqa: E402

pytestmark = pytest.mark.llamacpp

PROMPT = [Message(role="user", content="What is 3 + 4? Please reason step by step.")]
GREEDY_TOKENS = 48
# HF computes in float32 on the dequantized weights, llama.cpp with quantized kernels (activations
# rounded to 8 bits): their logits differ by up to ~1.3 here, so greedy paths may part where the top two
# logits are closer than that. A divergence at a wider margin would be a real bug.
NEAR_TIE = 1.0
# One thread: on a shared 2-core machine two spinning OpenMP threads are slower than one.
THREADS = 1


@pytest.fixture(scope="module")
def smol() -> LlamaCppGenerator:
    return make_generator("llamacpp", "smollm2-135m", n_threads=THREADS)


@pytest.fixture(scope="module")
def qwen() -> LlamaCppGenerator:
    return make_generator("llamacpp", "qwen2.5-coder-0.5b", n_threads=THREADS)


@pytest.fixture(scope="module")
def hf():
    """HF generators on the converted folder of the same GGUF, loaded once per key."""
    loaded: dict[str, HFGenerator] = {}

    def get(key: str) -> HFGenerator:
        if key not in loaded:
            loaded[key] = HFGenerator(key)
        return loaded[key]

    return get


@pytest.fixture(scope="module")
def math_problems(shared_data):
    """MATH test problems whose reference solution has at least 3 lines (a prefix is a real cut)."""
    problems = load_problems(shared_data / "math" / "test.jsonl", limit=200)
    return [p for p in problems if len(p.solution.splitlines()) >= 3][:20]


def _prompt_and_prefix(problem) -> tuple[list[Message], str]:
    """A real MATH prompt and the first line of the reference solution as the kept prefix."""
    return build_messages(problem), problem.solution.splitlines(keepends=True)[0]


def _counts(tokens: list[int], support: list[int]) -> np.ndarray:
    assert set(tokens) <= set(support), f"drew tokens outside the support: {set(tokens) - set(support)}"
    return np.array([tokens.count(t) for t in support], dtype=float)


def test_fire_first_token_follows_hot_softmax_of_llamacpp_logits(smol, math_problems):
    ids = smol.encode(*_prompt_and_prefix(math_problems[0]))
    logits = smol.next_logits(ids)
    fire = FireConfig(temperature=2.0, top_k=8)
    expected = hot_logits(logits, fire).softmax(-1)
    support = expected.nonzero()[:, 0].tolist()
    assert len(support) == 8

    # 4 x 1000 draws: branches of seeds 1..4 are independent streams (and keep the noise tensor small).
    draws = []
    for seed in range(1, 5):
        cfg = SamplingConfig(method="fire", fire=fire, max_new_tokens=1, seed=seed)
        draws += [b.first_token_id for b in smol.branch_ids(ids, 1000, cfg)]
    counts = _counts(draws, support)
    p = expected[support].double().numpy()
    assert (p * len(draws)).min() >= 5, "the chi-square test needs every expected count >= 5"
    assert chisquare(counts, p / p.sum() * len(draws)).pvalue > 1e-3
    # The test has power: the same draws reject the untempered top-k distribution.
    raw = logits.softmax(-1)[support].double().numpy()
    assert chisquare(counts, raw / raw.sum() * len(draws)).pvalue < 1e-6

    branches = smol.branch_ids(ids, 4, SamplingConfig(method="fire", fire=fire, max_new_tokens=1, seed=1))
    b = branches[0]
    assert b.first_token_logprob == pytest.approx(logits.log_softmax(-1)[b.first_token_id].item(), abs=1e-4)
    assert b.first_token_sampled_logprob == pytest.approx(expected[b.first_token_id].log().item(), abs=1e-4)


@pytest.mark.parametrize("key", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_greedy_equals_hf_greedy_on_the_same_gguf_up_to_near_ties(key, smol, qwen, hf, math_problems):
    gen = smol if key == "smollm2-135m" else qwen
    hf = hf(key)
    greedy = SamplingConfig(method="regular", temperature=0, max_new_tokens=GREEDY_TOKENS)
    for problem in math_problems[:2]:
        ids = gen.encode(*_prompt_and_prefix(problem))
        ours = gen.branch_ids(ids, 2, greedy)
        ref = hf.branch_ids(ids, 1, greedy)[0]
        assert ours[0].token_ids == ours[1].token_ids
        a, b = ours[0].token_ids, ref.token_ids
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        if k is None:  # same ids as far as both went; both stop at the same place
            assert a == b and ours[0].text == ref.text and ours[0].finish_reason == ref.finish_reason
            continue
        # Parted at step k: both models rank the two candidates within NEAR_TIE of each other there.
        with torch.inference_mode():
            hf_logits = hf.model(torch.tensor([ids + b[:k]])).logits[0, -1].float()
        ll_logits = gen.next_logits(ids + a[:k])
        hf_margin = (hf_logits[b[k]] - hf_logits[a[k]]).item()
        ll_margin = (ll_logits[a[k]] - ll_logits[b[k]]).item()
        assert hf_margin < NEAR_TIE and ll_margin < NEAR_TIE, (
            f"{key} {problem.id}: greedy parts at step {k} ({a[k]} vs HF {b[k]}) with logit margins "
            f"{ll_margin:.3f} (llama.cpp) / {hf_margin:.3f} (HF): not a near tie"
        )


def test_same_seed_draws_what_hf_draws_when_logits_agree(smol, hf, math_problems):
    """FIRE's hot first token: the logits differ by < NEAR_TIE, T=30 flattens that to < 4% in
    probability, so with the same per-branch generators nearly every draw is the same token."""
    hf = hf("smollm2-135m")
    ids = smol.encode(*_prompt_and_prefix(math_problems[0]))
    cfg = SamplingConfig(method="fire", max_new_tokens=1, seed=7)
    ours = [b.first_token_id for b in smol.branch_ids(ids, 200, cfg)]
    ref = [b.first_token_id for b in hf.branch_ids(ids, 200, cfg)]
    assert sum(x == y for x, y in zip(ours, ref)) >= 0.9 * len(ref)
    assert len(set(ours)) > 8


@pytest.mark.parametrize("key", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_gguf_tokenizer_gives_the_hf_ids_on_math_prompts(key, smol, qwen, math_problems):
    gen = smol if key == "smollm2-135m" else qwen
    for problem in math_problems:
        messages, prefix = _prompt_and_prefix(problem)
        chat = [m.model_dump() for m in messages]
        text = gen.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + prefix
        assert gen.tokenize_gguf(text) == gen.encode(messages, prefix), f"{key}: ids differ on {problem.id}"


def test_same_seed_gives_the_same_branches(qwen, math_problems):
    ids = qwen.encode(*_prompt_and_prefix(math_problems[1]))
    cfg = SamplingConfig(method="fire", temperature=0.7, max_new_tokens=24, seed=11)
    first = qwen.branch_ids(ids, 4, cfg)
    assert qwen.branch_ids(ids, 4, cfg) == first  # a resumed run reproduces the records exactly
    other = qwen.branch_ids(ids, 4, cfg.model_copy(update={"seed": 12}))
    assert [b.token_ids for b in other] != [b.token_ids for b in first]
    assert len({b.first_token_id for b in first + other}) > 1


@pytest.mark.parametrize("method", ["fire", "regular"])
def test_branch_i_does_not_depend_on_n(qwen, math_problems, method):
    ids = qwen.encode(*_prompt_and_prefix(math_problems[2]))
    cfg = SamplingConfig(method=method, temperature=0.7, max_new_tokens=24, seed=3)
    many = qwen.branch_ids(ids, 6, cfg)
    few = qwen.branch_ids(ids, 2, cfg)
    assert [b.token_ids for b in few] == [b.token_ids for b in many[:2]]


def test_vocab_guard_masks_qwen_rows_past_the_tokenizer(qwen):
    ids = qwen.encode(PROMPT, "")
    assert qwen.n_vocab > qwen.vocab_size  # 151,936 output rows, 151,665 real tokens
    assert qwen.tokenizer.convert_ids_to_tokens(qwen.vocab_size) == f"[PAD{qwen.vocab_size}]"
    raw = qwen.next_logits(ids, guard=False)
    assert torch.isfinite(raw[qwen.vocab_size:]).all()  # llama.cpp does compute these rows
    assert torch.isneginf(qwen.next_logits(ids)[qwen.vocab_size:]).all()
    # A near-uniform first token over the whole output matrix still never leaves the vocabulary.
    fire = FireConfig(temperature=1e6, top_k=qwen.n_vocab)
    drawn = []
    for seed in range(4):
        cfg = SamplingConfig(method="fire", fire=fire, max_new_tokens=1, seed=seed)
        drawn += [b.first_token_id for b in qwen.branch_ids(ids, 500, cfg)]
    assert max(drawn) < qwen.vocab_size and len(set(drawn)) > 1900


def test_bad_arguments_are_named(smol):
    with pytest.raises(ValueError, match="n must be at least 1"):
        smol.branch_ids([1, 2], 0, SamplingConfig())
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        smol.branch_ids([], 2, SamplingConfig())
    with pytest.raises(ModelError, match="neither an embedded key"):
        LlamaCppGenerator("no-such-model")


# ----------------------------------------------------------------------------- many requests in one call
# llama.cpp picks its CPU kernels by batch size, so a batched row's logits may differ from the same row
# decoded alone in the last bits; a draw on a near-tie then flips (1 and 5 of 36 branches in two CI runs
# on qwen, none of 80 in our runs: the rate depends on the CPU). The records are "as alone" up to such
# flips: identical_share asserts what no flip can change, and the tests bound the share of flipped
# branches at a quarter, far above the rates seen and far below the whole requests a sequence bug spoils.
def test_many_requests_in_one_call_equal_each_alone(smol, gsm8k_cuts, many_requests, check_batch_shape,
                                                    identical_share):
    """2 GSM8K prefixes x FIRE/regular with their own seeds and budgets, plus early-EOS rows, as
    sequences of one batch: every request gets the records it gets alone (up to float-tie flips)."""
    requests = many_requests(smol, gsm8k_cuts[:2], n=2, budget=8)
    many = smol.branch_many(requests)
    check_batch_shape(requests, many)
    assert identical_share(many, [smol.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]) >= 0.75


@pytest.mark.slow
def test_many_requests_on_qwen_equal_each_alone(qwen, gsm8k_cuts, many_requests, check_batch_shape,
                                                identical_share):
    """4 GSM8K prefixes x FIRE/regular, n=4, 28 to 41 tokens, plus early-EOS rows: as alone."""
    requests = many_requests(qwen, gsm8k_cuts, n=4, budget=32)
    many = qwen.branch_many(requests)
    check_batch_shape(requests, many)
    assert identical_share(many, [qwen.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]) >= 0.75


def test_requests_beyond_the_parallel_sequences_are_served_in_groups(smol, gsm8k_cuts, identical_share):
    """More branches than llama.cpp has sequences: whole requests per group, the fewest groups that fit,
    and every request's records still those it gets alone (up to float-tie flips)."""
    import llama_cpp

    limit = llama_cpp.llama_max_parallel_sequences()
    ids = [smol.encode(*cut) for cut in gsm8k_cuts[:3]]
    n = limit // 3 + 5  # 3 requests of n branches + 3 prompts need more than one group, 2 suffice
    requests = [BranchRequest(prompt_ids=p, n=n, sampling=SamplingConfig(method="regular", max_new_tokens=2, seed=k))
                for k, p in enumerate(ids)]
    groups = smol._groups(requests)
    assert sorted(r for g in groups for r in g) == [0, 1, 2] and len(groups) == 2
    # A request that shares a group's prompt costs that group no extra sequence.
    short = BranchRequest(prompt_ids=ids[0], n=limit - n - 1, sampling=SamplingConfig(max_new_tokens=2))
    assert len(smol._groups([requests[0], short])) == 1
    many = smol.branch_many(requests)
    assert identical_share(many, [smol.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]) >= 0.75
    with pytest.raises(ValueError, match="exceed llama.cpp's"):
        smol.branch_ids(ids[0], limit, SamplingConfig(max_new_tokens=2))


def test_a_prompt_longer_than_one_prefill_batch_is_continued(smol, hf):
    """Prompts over 512 tokens are prefilled in chunks; the earlier chunks ask for no logits (they used to
    crash), and the last one's logits are those of the whole prompt: llama.cpp's greedy token is one the
    HF model on the same weights ranks at the top, and both give it about the same log-probability. Not
    the same argmax: here "This" and "There" are a near-tie (llama.cpp -1.743 vs -1.745 picks "This", HF
    -1.838 vs -1.745 picks "There"), and a llama.cpp build flipped it. Logits from an earlier chunk would
    predict the next list entry, which HF ranks far below."""
    import torch

    words = " ".join(f"{i} apples" for i in range(300))
    prompt = [Message(role="user", content=f"Count these: {words}. How many are there?")]
    ids = smol.encode(prompt, "")
    assert len(ids) > 512
    cfg = SamplingConfig(method="regular", temperature=0, max_new_tokens=2)
    [ours] = smol.branch_ids(ids, 1, cfg)
    model = hf("smollm2-135m").model
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    assert len(ours.token_ids) >= 1
    assert logprobs[ours.first_token_id] >= logprobs.max() - 0.25
    assert abs(logprobs[ours.first_token_id] - ours.first_token_logprob) < 0.25
