"""What every generator backend takes and returns: requests (prompt + prefix, n, sampling) in, branch records out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prm_fire.limits import ModelShape, check_context, check_memory
from prm_fire.records import Branch, BranchRequest, FinishReason, Message
from prm_fire.sampling import Method, SamplingConfig

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

@runtime_checkable
class Generator(Protocol):
    """A backend that continues prefixes into branches: one branch set, or many in one engine call.

    ``messages`` are rendered with the model's chat template and a generation prompt; ``prefix`` (the
    kept start of an assistant answer, possibly empty) is appended verbatim. The first generated token
    follows ``sampling``'s FIRE rule, later ones its regular rule (see :mod:`prm_fire.sampling`).
    """

    model_name: str

    def encode(self, messages: list[Message], prefix: str) -> list[int]:
        """Token ids of the chat prompt with a generation prompt, then ``prefix`` verbatim."""
        ...

    def branch(self, messages: list[Message], prefix: str, n: int, sampling: SamplingConfig) -> list[Branch]:
        """Return ``n`` branches continuing ``prefix``, ordered by index."""
        ...

    def branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Serve many requests together; request r's branches are those it gets when sent alone."""
        ...


def chat_prompt(tokenizer: Any, messages: list[Message]) -> str:
    """The chat-templated ``messages`` with a generation prompt, as text: where a response starts."""
    return tokenizer.apply_chat_template([m.model_dump() for m in messages], tokenize=False,
                                         add_generation_prompt=True)


class DecodeState:
    """Bookkeeping of branches decoded in one batch: their tokens, why each ended, which still run.

    Batch row r holds branch ``alive[r]``; a branch that draws an end-of-sequence id ends (``"stop"``,
    the id is not kept) and leaves the batch; one that reaches its token budget (``budgets[i]``,
    the first token included) ends with ``"length"`` and leaves too.

    >>> state = DecodeState(3, budgets=[2, 5, 5])
    >>> state.take([5, 0, 6], eos={0})
    ([0, 2], [1])
    >>> state.take([7, 8], eos={0}), state.alive, state.rows, state.finish
    (([1], [0]), [2], [[5, 7], [], [6, 8]], ['length', 'stop', 'length'])
    """

    def __init__(self, n: int, budgets: list[int] | None = None):
        self.rows: list[list[int]] = [[] for _ in range(n)]
        self.finish: list[str] = ["length"] * n
        self.alive: list[int] = list(range(n))
        self.budgets = budgets

    def take(self, tokens: list[int], eos: set[int]) -> tuple[list[int], list[int]]:
        """Record one token per live branch (in batch order); return (batch rows kept, branches ended)."""
        keep, ended = [], []
        for row, (i, t) in enumerate(zip(self.alive, tokens, strict=True)):
            if t in eos:
                self.finish[i] = "stop"
                ended.append(i)
                continue
            self.rows[i].append(t)
            if self.budgets is not None and len(self.rows[i]) >= self.budgets[i]:
                ended.append(i)
            else:
                keep.append(row)
        self.alive = [self.alive[r] for r in keep]
        return keep, ended


class Rows:
    """The branches of many requests laid out as one flat batch: row j is branch ``index[j]`` of
    request ``owner[j]``; request r owns rows ``start[r] .. start[r] + n_r - 1``.

    >>> from prm_fire.sampling import SamplingConfig
    >>> cfg = SamplingConfig(method="regular", max_new_tokens=4)
    >>> rows = Rows([BranchRequest(prompt_ids=[1], n=2, sampling=cfg), BranchRequest(prompt_ids=[2], n=1, sampling=cfg)])
    >>> rows.owner, rows.index, rows.start, rows.split(["a", "b", "c"])
    ([0, 0, 1], [0, 1, 0], [0, 2], [['a', 'b'], ['c']])
    """

    def __init__(self, requests: list[BranchRequest]):
        self.requests = requests
        self.owner = [r for r, req in enumerate(requests) for _ in range(req.n)]
        self.index = [i for req in requests for i in range(req.n)]
        self.start = [sum(req.n for req in requests[:r]) for r in range(len(requests))]

    def __len__(self) -> int:
        return len(self.owner)

    def sampling(self, row: int) -> SamplingConfig:
        return self.requests[self.owner[row]].sampling

    def budgets(self) -> list[int]:
        """Each row's token budget: its request's ``max_new_tokens``."""
        return [self.sampling(j).max_new_tokens for j in range(len(self))]

    def generators(self) -> list[Any]:
        """One ``torch.Generator`` per row, seeded by (its request's seed, its branch index)."""
        import torch

        from prm_fire.sampling import branch_seed

        return [torch.Generator().manual_seed(branch_seed(self.sampling(j).seed, self.index[j])) for j in range(len(self))]

    def split(self, per_row: list[Any]) -> list[list[Any]]:
        """A per-row list cut into one list per request."""
        return [per_row[s : s + req.n] for s, req in zip(self.start, self.requests)]


class ChatBackend:
    """What the backends share: the prompt encoding with an HF tokenizer, argument checks, and the
    branch records. A backend sets ``tokenizer`` and implements :meth:`_branch_many` (many requests,
    already validated, in one engine call)."""

    tokenizer: PreTrainedTokenizerBase
    shape: ModelShape | None = None
    """The model's sizes (context window, KV cache per token); None: the backend does not check limits."""
    kv_bytes_per_value: int | None = None
    """Bytes per KV-cache value where the backend allocates a batch's memory itself (HF); None: the
    engine manages its own memory (vLLM, llama.cpp) and only the context window is checked."""

    def encode(self, messages: list[Message], prefix: str) -> list[int]:
        """Token ids of the chat-templated messages with a generation prompt, then ``prefix`` verbatim."""
        return self.tokenizer(chat_prompt(self.tokenizer, messages) + prefix, add_special_tokens=False)["input_ids"]

    def branch(self, messages: list[Message], prefix: str, n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing ``prefix`` after the chat prompt."""
        return self.branch_ids(self.encode(messages, prefix), n, sampling)

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing the token ids ``prompt_ids`` (prompt + prefix, already encoded)."""
        self.check_request(prompt_ids, n)
        return self.branch_many([BranchRequest(prompt_ids=prompt_ids, n=n, sampling=sampling)])[0]

    def branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Every request's branches, served together (one engine call where the backend allows).

        Request r's records are the ones it gets when sent alone: each branch's seed derives from its
        request's seed and its own index, never from its place in the batch.
        """
        if not requests:
            return []
        self.check_limits(requests)
        return self._branch_many(requests)

    def check_limits(self, requests: list[BranchRequest]) -> None:
        """Refuse, before any token is generated, a request whose prompt + ``max_new_tokens`` exceeds the
        model's context, or a batch whose KV cache would not fit in the memory available now."""
        if self.shape is None:
            return
        for r, req in enumerate(requests):
            check_context(self.shape, len(req.prompt_ids), req.sampling.max_new_tokens,
                          what=f"request {r} of {len(requests)}")
        if self.kv_bytes_per_value:
            longest = max(len(req.prompt_ids) + req.sampling.max_new_tokens for req in requests)
            check_memory(self.shape, sum(req.n for req in requests), longest, bytes_per_value=self.kv_bytes_per_value,
                         what=f"{len(requests)} requests of {sum(req.n for req in requests)} branches")

    def _branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """One request after another; a backend that can batch requests overrides this."""
        return [self.branch_ids(r.prompt_ids, r.n, r.sampling) for r in requests]

    @staticmethod
    def check_request(prompt_ids: list[int], n: int) -> None:
        """Reject a request no backend can serve, naming what is wrong."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if not prompt_ids:
            raise ValueError("prompt_ids is empty: there is nothing to continue")

    def records(
        self,
        method: Method,
        first: list[int],
        raw_logprobs: list[float],
        sampled_logprobs: list[float],
        rows: list[list[int]],
        finish: list[Any],
    ) -> list[Branch]:
        """One :class:`Branch` per row, texts decoded with the tokenizer."""
        decode = self.tokenizer.decode
        return [
            Branch(
                index=i,
                method=method,
                token_ids=rows[i],
                text=decode(rows[i], skip_special_tokens=False),
                first_token_id=first[i],
                first_token=decode([first[i]], skip_special_tokens=False),
                first_token_logprob=raw_logprobs[i],
                first_token_sampled_logprob=sampled_logprobs[i],
                finish_reason=finish[i],
            )
            for i in range(len(rows))
        ]

    def records_many(
        self,
        rows: Rows,
        first: list[int],
        raw_logprobs: list[float],
        sampled_logprobs: list[float],
        tokens: list[list[int]],
        finish: list[Any],
    ) -> list[list[Branch]]:
        """Per-row results of a flat batch (:class:`Rows`) as one list of records per request."""
        parts = [rows.split(x) for x in (first, raw_logprobs, sampled_logprobs, tokens, finish)]
        return [self.records(req.sampling.method, *(p[r] for p in parts)) for r, req in enumerate(rows.requests)]
