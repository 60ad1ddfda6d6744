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
"critic": {"backend": "llamacpp", "k": 5}}``. A ``generator`` given to :func:`prm_models.make_prm`
reaches every scorer that takes one. The dataset's ``items`` do not: they hold ProcessBench's labels,
and the ``label`` scorer (the oracle that reads them) is refused inside a combination, so no scorer in
it can see the labels and pass them off as its own evidence.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prm_fire.problems import Problem
from prm_models import PRMS, PRMScorer, StepScores, make_prm


#: Scorers a combination refuses, and why.
REFUSED = {
    "combined": "combinations do not nest",
    "label": "it reads the dataset's labels (the oracle); run it alone (--prm label)",
}


class CombinedConfig(BaseModel):
    """Which scorers, in which order, with which options. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cheap: list[str] = Field(default_factory=lambda: ["reference"], min_length=1,
                             description="Scorers tried first, in order.")
    expensive: str | None = Field(default="critic", description="Scorer run only where no cheap one has evidence.")
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Scorer name -> its options.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")

    @field_validator("cheap", "expensive")
    @classmethod
    def _known_names(cls, value: list[str] | str | None) -> list[str] | str | None:
        for name in [value] if isinstance(value, str) else value or []:
            try:
                PRMS.get(name)
            except KeyError as err:  # as a validation error naming the field
                raise ValueError(err.args[0]) from None
            if name in REFUSED:
                raise ValueError(f"a combination cannot contain {name!r}: {REFUSED[name]}")
        return value

    @model_validator(mode="after")
    def _options_match(self) -> CombinedConfig:
        stray = sorted(set(self.options) - {*self.cheap, self.expensive})
        if stray:
            raise ValueError(f"options given for scorers not in the combination: {stray}")
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

    def __init__(self, config: CombinedConfig | None = None, *, generator: Any = None, **fields: Any) -> None:
        if config is not None and fields:
            raise ValueError(f"CombinedPRM: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or CombinedConfig(**fields)
        resources = {"generator": generator} if generator is not None else {}  # never the dataset's items
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
        return self.score_many([(problem, steps)])[0]

    def score_many(self, solutions: list[tuple[Problem, list[str]]]) -> list[CombinedScores]:
        """:meth:`score` for many solutions; the expensive scorer gets every escalated one in one batch
        when it has ``score_many`` (the critic, the rollout PRM), its time shared equally among them."""
        runs: list[list[tuple[str, StepScores, float]]] = []  # per solution: (scorer, scores, seconds) in order
        for problem, steps in solutions:
            runs.append([])
            for name, scorer in zip(self.config.cheap, self.cheap):
                started = time.perf_counter()
                runs[-1].append((name, scorer.score(problem, steps), time.perf_counter() - started))
                if runs[-1][-1][1].has_evidence:
                    break
        name = self.config.expensive
        todo = [i for i, run in enumerate(runs) if not run[-1][1].has_evidence] if name is not None else []
        escalate = set(todo)
        if todo and (expensive := self.expensive) is not None:  # built (a model loaded) only when needed
            started = time.perf_counter()
            asked = [solutions[i] for i in todo]
            many = getattr(expensive, "score_many", None)
            scored = many(asked) if many else [expensive.score(p, s) for p, s in asked]
            share = (time.perf_counter() - started) / len(todo)
            for i, one in zip(todo, scored):
                runs[i].append((name, one, share))
        return [self._combine(run, escalated=i in escalate) for i, run in enumerate(runs)]

    def _combine(self, run: list[tuple[str, StepScores, float]], *, escalated: bool) -> CombinedScores:
        """The first stage with evidence gives the scores, else the first cheap scorer's guess."""
        used, scored, _ = next((stage for stage in run if stage[1].has_evidence), run[0])
        return CombinedScores(
            prm=self.name, scores=list(scored.scores), threshold=self.config.threshold, abstained=scored.abstained,
            reasons=scored.reasons, decided=any(stage[1].has_evidence for stage in run), used=used,
            escalated=escalated,
            stages=[Stage(prm=n, seconds=sec, has_evidence=sc.has_evidence, first_error_index=sc.first_error_index)
                    for n, sc, sec in run],
            details={n: sc.model_dump(mode="json") for n, sc, _ in run},
        )


__all__ = ["CombinedConfig", "CombinedPRM", "CombinedScores", "REFUSED", "Stage"]
