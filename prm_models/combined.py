"""Combination: cheap checks first, an expensive scorer only where they have no evidence.

The ``cheap`` scorers (default: the reference-guided checker, then none) run in order; the first whose
:attr:`~prm_models.StepScores.has_evidence` is true gives the item's scores (a flagged step with a
reason, or the reference checker's "the final answer equals the reference answer"). Where none has
evidence, the ``expensive`` scorer (default: the prompted critic; the rollout PRM works the same way)
scores the item, and its scores are used if it has evidence; otherwise the first cheap scorer's
guess stands. With ``expensive`` unset, that guess always stands. ``stages`` records every scorer
run on the item, its seconds and whether it had evidence: the cost per item, and how often the
expensive scorer was paid for.

A combination that includes the reference-guided checker inherits its status: it uses the reference
solution, so it is a data-construction tool, not a PRM.

Options of each scorer go under its name: ``options={"reference": {"reference_data": "../shared/data"},
"critic": {"backend": "llamacpp", "k": 5}}``. Resources given to :func:`prm_models.make_prm`
(``generator``, ``items``) reach every scorer that takes them.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prm_fire.problems import Problem
from prm_models import PRMS, PRMScorer, StepScores, make_prm


class CombinedConfig(BaseModel):
    """Which scorers, in which order, with which options. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cheap: list[str] = Field(default_factory=lambda: ["reference"], min_length=1,
                             description="Scorers tried first, in order.")
    expensive: str | None = Field(default="critic", description="Scorer run only where no cheap one has evidence.")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Scorer name -> its options.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")

    @model_validator(mode="after")
    def _known_names(self) -> CombinedConfig:
        names = [*self.cheap, *([self.expensive] if self.expensive else [])]
        for name in names:
            try:
                PRMS.get(name)
            except KeyError as err:  # as a validation error naming the field
                raise ValueError(str(err)) from None
        stray = sorted(set(self.options) - set(names))
        if stray:
            raise ValueError(f"options given for scorers not in the combination: {stray}")
        if "combined" in names:
            raise ValueError("a combination cannot contain 'combined'")
        return self


class Stage(BaseModel):
    """One scorer run on one item."""

    model_config = ConfigDict(frozen=True)

    prm: str
    seconds: float = Field(ge=0)
    has_evidence: bool
    first_error_index: int | None


class CombinedScores(StepScores):
    """The used scorer's step scores, which scorer that was, and every stage's cost."""

    used: str = Field(description="The scorer whose scores these are.")
    escalated: bool = Field(description="The expensive scorer ran on this item.")
    stages: list[Stage]
    details: dict[str, dict[str, Any]] = Field(description="Each stage's full record, by scorer name.")


class CombinedPRM:
    """Cheap scorers first, the expensive one where they have no evidence (see the module docstring)."""

    name = "combined"
    Config = CombinedConfig

    def __init__(self, config: CombinedConfig | None = None, *, generator: Any = None, items: Any = None,
                 **fields: Any) -> None:
        if config is not None and fields:
            raise ValueError(f"CombinedPRM: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or CombinedConfig(**fields)
        resources = {k: v for k, v in (("generator", generator), ("items", items)) if v is not None}
        self.cheap: list[PRMScorer] = [make_prm(n, self.config.options.get(n), **resources) for n in self.config.cheap]
        self._expensive: PRMScorer | None = None
        self._resources = resources

    @property
    def expensive(self) -> PRMScorer | None:
        """The expensive scorer, built on first use (a model loads only when an item needs it)."""
        name = self.config.expensive
        if self._expensive is None and name is not None:
            self._expensive = make_prm(name, self.config.options.get(name), **self._resources)
        return self._expensive

    def score(self, problem: Problem, steps: list[str]) -> CombinedScores:
        """The first cheap scorer with evidence, else the expensive one (if it has evidence), else the first guess."""
        stages: list[Stage] = []
        details: dict[str, dict[str, Any]] = {}
        results: list[tuple[str, StepScores]] = []

        def run(name: str, scorer: PRMScorer) -> StepScores:
            started = time.perf_counter()
            scored = scorer.score(problem, steps)
            stages.append(Stage(prm=name, seconds=time.perf_counter() - started, has_evidence=scored.has_evidence,
                                first_error_index=scored.first_error_index))
            details[name] = scored.model_dump(mode="json")
            results.append((name, scored))
            return scored

        chosen = None
        for name, scorer in zip(self.config.cheap, self.cheap):
            if run(name, scorer).has_evidence:
                chosen = results[-1]
                break
        escalated = chosen is None and self.expensive is not None
        if escalated:
            assert self.config.expensive is not None and self.expensive is not None
            if run(self.config.expensive, self.expensive).has_evidence:
                chosen = results[-1]
        used, scored = chosen or results[0]
        return CombinedScores(
            prm=self.name, scores=list(scored.scores), threshold=self.config.threshold, abstained=scored.abstained,
            reasons=scored.reasons, decided=chosen is not None, used=used, escalated=escalated, stages=stages,
            details=details,
        )


PRMS.register("combined")(CombinedPRM)

__all__ = ["CombinedConfig", "CombinedPRM", "CombinedScores", "Stage"]
