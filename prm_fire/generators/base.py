"""What every generator backend takes and returns: a prompt + prefix in, n branch records out."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.sampling import Method, SamplingConfig

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
