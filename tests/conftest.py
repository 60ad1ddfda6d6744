"""Shared test fixtures: the real data in ../shared/data beside the repository, and the many-request
workload every generator backend is tested on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from prm_fire.generators.base import Message
from prm_fire.records import Branch, BranchRequest
from prm_fire.sampling import SamplingConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real benchmark files (MATH, MATH-500, GSM8K, ProcessBench)."""
    assert SHARED_DATA.is_dir(), f"expected the shared data folder at {SHARED_DATA}"
    return SHARED_DATA


EOS_PROMPT = ([Message(role="user", content="What is 3 + 4? Reply with the number only.")], "7")


@pytest.fixture(scope="module")
def gsm8k_cuts(shared_data) -> list[tuple[list[Message], str]]:
    """4 GSM8K test prompts with the first 2 lines of their reference solution as the kept prefix."""
    from prm_fire.prefixes import build_prefix
    from prm_fire.problems import load_problems
    from prm_fire.prompts import build_messages

    problems = [p for p in load_problems(shared_data / "gsm8k" / "test.jsonl", limit=40)
                if len(p.solution.splitlines()) >= 3][:4]
    return [(build_messages(p), build_prefix(p.solution, "line3", problem_id=p.id).text) for p in problems]


def _many_requests(gen: Any, cuts: list[tuple[list[Message], str]], n: int, budget: int) -> list[BranchRequest]:
    """Each cut with FIRE and regular (own seeds and budgets), then a request whose rows draw EOS early."""
    requests = []
    for k, cut in enumerate(cuts):
        ids = gen.encode(*cut)
        for m, method in enumerate(("fire", "regular")):
            cfg = SamplingConfig(method=method, seed=10 * k + m, max_new_tokens=budget + 3 * k - 4 * m)
            requests.append(BranchRequest(prompt_ids=ids, n=n, sampling=cfg))
    eos = SamplingConfig(method="regular", seed=1, max_new_tokens=budget)
    return [*requests, BranchRequest(prompt_ids=gen.encode(*EOS_PROMPT), n=4, sampling=eos)]


def _check_batch_shape(requests: list[BranchRequest], many: list[list[Branch]]) -> None:
    """Per-row budgets are honoured, and rows of the EOS request left while others ran on."""
    for req, branches in zip(requests, many, strict=True):
        assert [b.index for b in branches] == list(range(req.n))
        assert [b.method for b in branches] == [req.sampling.method] * req.n
        for b in branches:
            assert len(b.token_ids) <= req.sampling.max_new_tokens
            assert (b.finish_reason == "length") == (len(b.token_ids) == req.sampling.max_new_tokens)
    stopped = [len(b.token_ids) for b in many[-1] if b.finish_reason == "stop"]
    assert stopped and min(stopped) < 3, "the EOS request should have rows that stop at once"
    assert max(len(b.token_ids) for branches in many[:-1] for b in branches) > max(stopped)


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _identical_share(many: list[list[Branch]], alone: list[list[Branch]]) -> float:
    """Share of branches whose records are identical in the batched call and alone.

    Engines whose kernels change with the batch size (llama.cpp, vLLM) may round a logit differently
    in a larger batch; a draw that sits on a near-tie can then flip, and that branch runs on differently
    from a random later token. What batching must never change is asserted here exactly: the shapes,
    every first token (drawn from its prompt's own prefill), and, per request, most of its tokens: a
    request decoded on another's KV or seeds parts from alone at its second token, not at a random one.
    """
    assert [len(b) for b in many] == [len(b) for b in alone]
    for r, (xs, ys) in enumerate(zip(many, alone)):
        assert [x.first_token_id for x in xs] == [y.first_token_id for y in ys], f"request {r}: first tokens"
        kept = sum(_common_prefix(x.token_ids, y.token_ids) for x, y in zip(xs, ys))
        assert kept >= 0.5 * sum(len(y.token_ids) for y in ys), f"request {r}: {kept} tokens as alone"
    pairs = [(x, y) for xs, ys in zip(many, alone) for x, y in zip(xs, ys)]
    return sum(x == y for x, y in pairs) / len(pairs)


@pytest.fixture(scope="session")
def identical_share():
    """``identical_share(many, alone)``: the share of branches a batched call returns exactly as alone."""
    return _identical_share


@pytest.fixture(scope="session")
def many_requests():
    """``many_requests(gen, cuts, n, budget)``: the requests a backend's batched call is tested on."""
    return _many_requests


@pytest.fixture(scope="session")
def check_batch_shape():
    """``check_batch_shape(requests, many)``: budgets honoured, early-EOS rows left while others ran on."""
    return _check_batch_shape


class _Killed(Exception):
    """A fault injected into a run: stands for a kill at that moment."""


@contextmanager
def _killed_after(module: Any, name: str, calls: int) -> Iterator[None]:
    """``with killed_after(module, "fn", k): run(...)``: ``module.fn`` passes ``k`` calls through, then the
    next one kills the run (the block must end that way); ``module.fn`` is restored after."""
    real, seen = getattr(module, name), []

    def dying(*args: Any, **kwargs: Any) -> Any:
        if len(seen) == calls:
            raise _Killed()
        seen.append(args)
        return real(*args, **kwargs)

    setattr(module, name, dying)
    try:
        with pytest.raises(_Killed):
            yield
    finally:
        setattr(module, name, real)


@pytest.fixture(scope="session")
def killed_after():
    """``with killed_after(module, "fn", k): ...``: fault injection (see :func:`_killed_after`)."""
    return _killed_after
