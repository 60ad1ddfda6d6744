"""The settings of one search (or best-of-N run), validated when built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prm_fire.sampling import SamplingConfig
from prm_fire.steps import StepMode

Strategy = Literal["search", "best-of-n"]


class SearchConfig(BaseModel):
    """How one problem is searched.

    >>> SearchConfig(budget=2000).n, SearchConfig(budget=2000).cut
    (4, 'prm')
    >>> SearchConfig(budget=2000, cut="middle")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SearchConfig
    cut
      Value error, unknown cut 'middle'; known: entropy-line, prm, line<k> ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: Strategy = Field(default="search", description="'search': re-branch at cuts; 'best-of-n': "
                               "every round samples from scratch (the baseline).")
    budget: int = Field(ge=1, description="Tokens: no round starts once this many are spent (the last may pass it).")
    n: int = Field(default=4, ge=1, description="Branches per expansion.")
    width: int = Field(default=2, ge=1, description="Expansions per round, sent to the engine in one call.")
    cut: str = Field(default="prm",
                     description="Cut rule (prm_fire.search.cuts): 'prm', 'entropy-line' or 'line<k>'.")
    select: str = Field(default="deepest", description="Selection rule (prm_fire.search.select): "
                        "'deepest' or 'score'.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(method="fire", max_new_tokens=512),
        description="Branch sampling; expansion k of a problem draws from its own stream, "
                    "stream_seed(sampling.seed, problem id, 'search/k').")
    step_mode: StepMode = "line"
    max_rounds: int = Field(default=1000, ge=1, description="Safety stop.")

    @field_validator("cut")
    @classmethod
    def _known_cut(cls, value: str) -> str:
        from prm_fire.search.cuts import make_cut

        make_cut(value)  # raises ValueError naming the known cuts
        return value

    @field_validator("select")
    @classmethod
    def _known_selection(cls, value: str) -> str:
        from prm_fire.search.select import SELECTIONS

        try:
            SELECTIONS.get(value)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        return value
