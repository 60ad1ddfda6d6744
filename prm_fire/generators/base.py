"""What every generator backend takes and returns: a prompt + prefix in, n branch records out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.sampling import Method, SamplingConfig

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

FinishReason = Literal["stop", "length"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Branch(BaseModel):
    """One continuation of a prefix, as the generator produced it (before grading)."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0, description="Branch number within its set; its seed derives from it.")
    method: Method
    token_ids: list[int] = Field(description="Generated ids, the first (hot) one included, EOS excluded.")
    text: str = Field(description="Decoded continuation; the full response is prefix + text.")
    first_token_id: int
    first_token: str = Field(description="The first token decoded on its own.")
    first_token_logprob: float = Field(description="Raw model log-prob of the first token (T=1, no filter).")
    first_token_sampled_logprob: float = Field(
        description="Log-prob under the distribution it was drawn from (hot for FIRE; 0 if greedy)."
    )
    finish_reason: FinishReason = Field(description="'stop': EOS was drawn; 'length': max_new_tokens reached.")


@runtime_checkable
class Generator(Protocol):
    """A backend that continues one shared prefix into n branches.

    ``messages`` are rendered with the model's chat template and a generation prompt; ``prefix`` (the
    kept start of an assistant answer, possibly empty) is appended verbatim. The first generated token
    follows ``sampling``'s FIRE rule, later ones its regular rule (see :mod:`prm_fire.sampling`).
    """

    model_name: str

    def branch(self, messages: list[Message], prefix: str, n: int, sampling: SamplingConfig) -> list[Branch]:
        """Return ``n`` branches continuing ``prefix``, ordered by index."""
        ...


class DecodeState:
    """Bookkeeping of n branches decoded in one batch: their tokens, why each ended, which still run.

    Batch row r holds branch ``alive[r]``; a branch that draws an end-of-sequence id ends (``"stop"``,
    the id is not kept) and leaves the batch; one that reaches the token budget keeps ``"length"``.

    >>> state = DecodeState(3)
    >>> state.take([5, 0, 6], eos={0})
    ([0, 2], [1])
    >>> state.take([7, 0], eos={0}), state.alive, state.rows, state.finish
    (([0], [2]), [0], [[5, 7], [], [6]], ['length', 'stop', 'stop'])
    """

    def __init__(self, n: int):
        self.rows: list[list[int]] = [[] for _ in range(n)]
        self.finish: list[str] = ["length"] * n
        self.alive: list[int] = list(range(n))

    def take(self, tokens: list[int], eos: set[int]) -> tuple[list[int], list[int]]:
        """Record one token per live branch (in batch order); return (batch rows kept, branches ended)."""
        keep, ended = [], []
        for row, (i, t) in enumerate(zip(self.alive, tokens, strict=True)):
            if t in eos:
                self.finish[i] = "stop"
                ended.append(i)
            else:
                self.rows[i].append(t)
                keep.append(row)
        self.alive = [self.alive[r] for r in keep]
        return keep, ended


class ChatBackend:
    """What the backends share: the prompt encoding with an HF tokenizer, argument checks, and the
    branch records. A backend sets ``tokenizer`` and implements :meth:`branch_ids`."""

    tokenizer: PreTrainedTokenizerBase

    def encode(self, messages: list[Message], prefix: str) -> list[int]:
        """Token ids of the chat-templated messages with a generation prompt, then ``prefix`` verbatim."""
        chat = [m.model_dump() for m in messages]
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text + prefix, add_special_tokens=False)["input_ids"]

    def branch(self, messages: list[Message], prefix: str, n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing ``prefix`` after the chat prompt."""
        return self.branch_ids(self.encode(messages, prefix), n, sampling)

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing the token ids ``prompt_ids`` (prompt + prefix, already encoded)."""
        raise NotImplementedError

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
