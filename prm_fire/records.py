"""The records a branching run produces, below every module that makes or stores them.

A generator backend returns :class:`Branch` records, :func:`prm_fire.branching.branch` grades them
into a :class:`BranchSet`, and the tree stores them. Loading or viewing a tree needs these records
only, not the generators. :class:`BranchRequest` is what one branch set asks of a backend.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.grader import Grade, answers_equivalent
from prm_fire.metrics import effective_answers, pass_at_k
from prm_fire.prefixes import Prefix
from prm_fire.sampling import Method, SamplingConfig

FinishReason = Literal["stop", "length"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class BranchRequest(BaseModel):
    """One branch set asked of a backend: continue ``prompt_ids`` into ``n`` branches with ``sampling``.

    ``prompt_ids`` are the chat-templated prompt and the kept prefix, already encoded. Branch *i* of a
    request draws from a generator seeded by ``(sampling.seed, i)``, so its records are the same
    whether the request is sent alone or with others.

    >>> BranchRequest(prompt_ids=[1, 2], n=0, sampling=SamplingConfig())
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for BranchRequest
    n
      Input should be greater than or equal to 1 ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_ids: list[int] = Field(min_length=1, description="Prompt + prefix token ids; never empty.")
    n: int = Field(ge=1, description="Branches to draw.")
    sampling: SamplingConfig


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


class GradedBranch(Branch):
    """A branch with its final answer and, where the problem has a gold answer, its grade."""

    answer: str | None = Field(description="Final answer extracted from prefix + branch text.")
    grade: Grade | None = Field(default=None, description="None when the problem has no gold answer.")

    @property
    def correct(self) -> bool:
        """True iff graded correct."""
        return self.grade is not None and self.grade.correct


class BranchSet(BaseModel):
    """n graded branches of one prefix with one method: what :func:`prm_fire.branching.branch` returns."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    model: str
    prefix: Prefix
    sampling: SamplingConfig
    branches: list[GradedBranch]

    @property
    def n(self) -> int:
        return len(self.branches)

    @property
    def n_correct(self) -> int:
        return sum(b.correct for b in self.branches)

    def pass_at(self, k: int) -> float:
        """Unbiased pass@k of this set (Chen et al. 2021)."""
        return pass_at_k(self.n, self.n_correct, k)

    @property
    def effective_answers(self) -> int:
        """#EA: distinct final answers among the branches (math-equivalent answers count once)."""
        return effective_answers([b.answer for b in self.branches], answers_equivalent)

    @property
    def distinct_first_tokens(self) -> int:
        return len({b.first_token_id for b in self.branches})
