"""What a search records: each round's cost and outcome, and the result of the whole search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.search.config import SearchConfig

#: "exhausted": no candidate left whose cut fits the context with a full continuation
StopReason = Literal["solved", "budget", "max-rounds", "root-correct", "exhausted"]


class RoundRecord(BaseModel):
    """One round: the expansions sent in one engine call, and the tokens counted before and after it."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    expanded: list[str] = Field(description="Nodes cut and branched (the root response for best-of-N).")
    prefixes: list[str] = Field(description="Prefix nodes made, one per expansion.")
    sequences: int = Field(ge=0, description="Branches generated.")
    generated_tokens: int = Field(ge=0, description="Tokens the policy generated in this round.")
    scorer_tokens: int = Field(ge=0, description="Tokens a model-backed scorer generated scoring its branches.")
    tokens_before: int = Field(ge=0, description="Tokens spent before the round.")
    tokens_after: int = Field(ge=0, description="Tokens spent after its branches (and their scores).")
    correct: int = Field(ge=0, description="Correct branches in the round.")


class FirstCorrect(BaseModel):
    """The first correct branch: its node and the tokens counted when its round ended."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    round: int = Field(ge=0)
    tokens_before_round: int = Field(ge=0)
    tokens: int = Field(ge=0, description="Tokens spent at the end of the generation of its round.")


class SearchResult(BaseModel):
    """One problem's search: whether and when it found a correct branch, and what it spent."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    config: SearchConfig
    scorer: str | None = Field(description="The scorer's name (None: the cut needs no scores).")
    model: str
    solved: bool
    stop: StopReason
    tokens_spent: int = Field(ge=0, description="Policy and scorer tokens generated (the root response excluded).")
    root_scorer_tokens: int = Field(ge=0, description="Scorer tokens spent on the root response (in tokens_spent).")
    first_correct: FirstCorrect | None = None
    rounds: list[RoundRecord]
    too_long: int = Field(default=0, ge=0, description="Candidates dropped unexpanded: their prompt + cut + "
                          "max_new_tokens exceed the model's context.")
    depth: int = Field(ge=0, description="Most prefix levels on one path of the tree.")
    nodes: int = Field(ge=1)

    def solved_within(self, budget: int) -> bool:
        """Whether a run with ``budget`` finds the first correct branch: its round started below the budget
        and ended within it. Runs with a smaller budget follow the same rounds, so one run at the largest
        budget answers for every smaller one."""
        fc = self.first_correct
        if self.stop == "root-correct":
            return True
        return fc is not None and fc.tokens_before_round < budget and fc.tokens <= budget

    def spent_within(self, budget: int) -> int:
        """Tokens a run with ``budget`` spends: to its first correct branch, or to the end of the round that
        reached the budget (or everything, when the search ended below it)."""
        if self.stop == "root-correct":
            return 0
        if self.solved_within(budget):
            return self.first_correct.tokens
        if self.root_scorer_tokens >= budget:
            return self.root_scorer_tokens
        return next((r.tokens_after for r in self.rounds if r.tokens_after >= budget), self.tokens_spent)
