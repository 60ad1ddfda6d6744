"""The vLLM backend against the HF backend on the same model folder (smollm2-135m, float32).

Runs in the vLLM virtual environment (``.ci/vllm.sh``); marked ``vllm`` so the default run skips it.
One engine serves the whole module (it takes one to two minutes to start on this CPU).
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm", reason="vllm is not installed here: run .ci/vllm.sh (its own venv)")

import torch  # noqa: E402

from prm_fire.generators import Branch, Message, make_generator  # noqa: E402
from prm_fire.generators.hf import HFGenerator  # noqa: E402
from prm_fire.sampling import FireConfig, SamplingConfig, guard_vocab  # noqa: E402

pytestmark = pytest.mark.vllm

PROMPT = [Message(role="user", content="What is 12 * 13? Please reason step by step.")]
PREFIX = "Step 1: Break 13 into 10 + 3.\n"


@pytest.fixture(scope="module")
def vgen():
    gen = make_generator("vllm", "smollm2-135m", dtype="float32", max_model_len=1024)
    yield gen
    gen.close()


@pytest.fixture(scope="module")
def hgen() -> HFGenerator:
    return make_generator("hf", "smollm2-135m")


@pytest.fixture(scope="module")
def ids(vgen, hgen) -> list[int]:
    ids = vgen.encode(PROMPT, PREFIX)
    assert ids == hgen.encode(PROMPT, PREFIX)
    return ids


def _logits(hgen: HFGenerator, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return guard_vocab(hgen.model(torch.tensor([ids])).logits[0, -1].float(), hgen.vocab_size)


def test_branch_records_have_the_hf_structure(vgen, hgen, ids):
    cfg = SamplingConfig(method="fire", max_new_tokens=8, seed=1)
    ours, ref = vgen.branch(PROMPT, PREFIX, 4, cfg), hgen.branch(PROMPT, PREFIX, 4, cfg)
    assert [type(b) for b in ours] == [Branch] * 4
    assert [b.index for b in ours] == [b.index for b in ref] == [0, 1, 2, 3]
    for b in ours:
        assert b.method == "fire" and 0 < len(b.token_ids) <= 8
        assert b.token_ids[0] == b.first_token_id
        assert b.text == vgen.tokenizer.decode(b.token_ids)
        assert b.finish_reason == ("length" if len(b.token_ids) == 8 else "stop")
    # Phase 1 is the HF backend's draw (same hot distribution, same per-branch Gumbel noise).
    assert [b.first_token_id for b in ours] == [b.first_token_id for b in ref]
    for a, b in zip(ours, ref):
        assert a.first_token_logprob == pytest.approx(b.first_token_logprob, abs=1e-3)
        assert a.first_token_sampled_logprob == pytest.approx(b.first_token_sampled_logprob, abs=1e-3)


def test_hot_first_tokens_lie_in_hf_top_k_at_batch_40(vgen, hgen, ids):
    fire = FireConfig(temperature=30, top_k=16)
    branches = vgen.branch_ids(ids, 40, SamplingConfig(method="fire", fire=fire, max_new_tokens=4, seed=7))
    top = set(_logits(hgen, ids).topk(fire.top_k).indices.tolist())
    firsts = [b.first_token_id for b in branches]
    assert set(firsts) <= top
    assert len(set(firsts)) >= 8  # near-uniform over 16 at T=30: 40 draws cover most of them
    # 40 seeded continuations ran in one batch (phase 2) without the CPU seed crash of MODELS.md.
    assert all(1 <= len(b.token_ids) <= 4 for b in branches if b.finish_reason == "length")


def test_regular_first_token_logprobs(vgen, hgen, ids):
    cfg = SamplingConfig(method="regular", temperature=0.7, top_k=20, max_new_tokens=3, seed=2)
    logits = _logits(hgen, ids)
    for b in vgen.branch_ids(ids, 10, cfg):
        assert b.first_token_logprob == pytest.approx(logits.log_softmax(-1)[b.first_token_id].item(), abs=1e-3)
        hot = (logits / 0.7).masked_fill(logits < logits.topk(20).values[-1], float("-inf"))
        assert b.first_token_sampled_logprob == pytest.approx(hot.log_softmax(-1)[b.first_token_id].item(), abs=1e-3)


def test_greedy_equals_hf_greedy(vgen, hgen, ids):
    cfg = SamplingConfig(method="regular", temperature=0, max_new_tokens=48)
    ours = vgen.branch_ids(ids, 2, cfg)
    ref = hgen.branch_ids(ids, 1, cfg)[0].token_ids
    assert ours[0].token_ids == ours[1].token_ids
    a = ours[0].token_ids
    same = next((j for j, (x, y) in enumerate(zip(a, ref)) if x != y), min(len(a), len(ref)))
    if same < min(len(a), len(ref)):
        # A divergence is only acceptable where HF's two best logits are numerically tied.
        top2 = _logits(hgen, ids + ref[:same]).topk(2).values
        assert float(top2[0] - top2[1]) < 1e-3, f"greedy differs at token {same} with margin {top2.tolist()}"
    else:
        assert a == ref


def test_same_seed_same_branches(vgen, ids):
    cfg = SamplingConfig(method="fire", max_new_tokens=12, seed=11)
    first = vgen.branch_ids(ids, 10, cfg)
    again = vgen.branch_ids(ids, 10, cfg)
    other = vgen.branch_ids(ids, 10, cfg.model_copy(update={"seed": 12}))
    assert [b.token_ids for b in first] == [b.token_ids for b in again]
    assert [b.token_ids for b in first] != [b.token_ids for b in other]
    regular = cfg.with_method("regular")
    assert [b.token_ids for b in vgen.branch_ids(ids, 10, regular)] == [
        b.token_ids for b in vgen.branch_ids(ids, 10, regular)
    ]


def test_vocab_guard_blocks_ids_past_the_tokenizer(vgen, hgen, ids):
    """Pretend the tokenizer ends at the largest id among the 16 most likely next tokens: that token
    (a 1-in-16 hot draw) must never be drawn, nor any id past it later. The engine masks it (the
    guard's logits processor) in batches of guarded rows only, and mixed with unguarded look-ups."""
    from prm_fire.records import BranchRequest

    cut = max(_logits(hgen, ids).topk(16).indices.tolist())
    saved = vgen.vocab_size, vgen.guarded
    vgen.vocab_size, vgen.guarded = cut, True
    try:
        for method in ("fire", "regular"):
            cfg = SamplingConfig(method=method, temperature=1.0, max_new_tokens=6, seed=5)
            branches = vgen.branch_ids(ids, 10, cfg)
            assert all(t < cut for b in branches for t in b.token_ids), method
        both = vgen.branch_many([BranchRequest(prompt_ids=ids, n=10, sampling=SamplingConfig(
            method=method, temperature=1.5, max_new_tokens=6, seed=6)) for method in ("fire", "regular")])
        assert all(t < cut for branches in both for b in branches for t in b.token_ids)
    finally:
        vgen.vocab_size, vgen.guarded = saved
    assert vgen.vocab_size == len(vgen.tokenizer)  # SmolLM: output rows == vocabulary, no guard needed
    assert not vgen.guarded


def test_many_requests_share_two_engine_calls_and_match_each_alone(vgen, monkeypatch):
    """4 prefixes x (FIRE, regular), each with its own seed and budget: one call for every first token
    (a look-up per FIRE prompt, a one-token draw per regular branch), one call for every continuation;
    each request keeps the first tokens it gets alone."""
    from prm_fire.records import BranchRequest

    prefixes = ["", PREFIX, PREFIX + "Step 2: 12 * 10 = 120.\n", "Let me compute"]
    requests = [
        BranchRequest(prompt_ids=vgen.encode(PROMPT, prefix), n=5,
                      sampling=SamplingConfig(method=method, max_new_tokens=6 + p, seed=100 + p))
        for p, prefix in enumerate(prefixes) for method in ("fire", "regular")
    ]
    alone = [vgen.branch_many([r])[0] for r in requests]
    calls = []
    real = vgen.llm.generate
    monkeypatch.setattr(vgen.llm, "generate", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    together = vgen.branch_many(requests)
    assert calls == [len(prefixes) + 20, 40]  # FIRE look-ups + 4 x 5 regular draws, then 4 x (5 + 5) continuations
    for req, a, b in zip(requests, alone, together):
        assert [x.first_token_id for x in b] == [x.first_token_id for x in a]
        assert [x.index for x in b] == list(range(5)) and {x.method for x in b} == {req.sampling.method}
        assert all(len(x.token_ids) <= req.sampling.max_new_tokens for x in b)
    same = sum(x.token_ids == y.token_ids for a, b in zip(alone, together) for x, y in zip(a, b))
    assert same >= 36, f"only {same}/40 branches equal their solo run"


def test_default_engine_serves_a_model_whose_window_exceeds_the_token_budget():
    """smollm2-135m's 8,192-token window with no max_model_len, over the default 4,096-token step budget:
    with chunked prefill off, the budget must grow to the window (vLLM refuses to start otherwise). (The
    engine's start-up profile runs a forward pass of the whole budget: qwen2.5-coder-0.5b's 32,768-token
    window made this test take 20+ minutes on a 2-core CPU.)"""
    gen = make_generator("vllm", "smollm2-135m")
    try:
        window = gen.llm.llm_engine.model_config.max_model_len
        assert window == 8192 == gen.shape.context_length
        assert gen.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens >= window
        branches = gen.branch(PROMPT, PREFIX, 2, SamplingConfig(method="fire", max_new_tokens=4, seed=0))
        assert [len(b.token_ids) for b in branches] == [4, 4]
    finally:
        gen.close()


def test_engine_computes_on_every_core_of_a_small_cpu(vgen):
    """The engine's worker was started with the backend's thread binding (all usable cores, none
    reserved, on a machine of at most SMALL_CPU cores) unless the environment chose one."""
    import os

    import psutil

    from prm_fire.generators.vllm import cpu_threads_env

    expected = cpu_threads_env()
    if not expected:
        pytest.skip("the environment or the machine keeps vLLM's own binding here")
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            workers.append(child.environ().get("OMP_NUM_THREADS"))
        except psutil.Error:
            continue
    assert str(len(expected["VLLM_CPU_OMP_THREADS_BIND"].split(","))) in workers, workers
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ  # the caller's environment is restored
