"""Process reward models: score each step of a solution and locate the first incorrect one.

Every scorer follows :class:`PRMScorer` and is listed in :data:`PRMS` under the name the command line
uses (``--prm NAME``) as ``"module:class"``: importing this package imports no scorer, the first
:meth:`~prm_fire.registry.Registry.get` of a name imports its module and checks its class (a
``score`` method, a pydantic ``Config``); :func:`make_prm` builds one by name. Scorers: ``rollout``
(Monte-Carlo rollouts), ``symbolic`` (arithmetic claims), ``reference`` (reference-guided: uses the
problem's worked solution, a data-construction tool rather than a PRM), ``critic`` (a prompted
instruct model), ``combined`` (cheap checks first, an expensive scorer where they abstain),
``qwen-prm`` / ``math-shepherd`` (hub PRMs), ``label`` (dataset labels, the oracle).

Layering (one direction only, ``tests/test_layering.py`` checks it):

* core, ``prm_fire`` (problems, steps, grader, sandbox, sampling, generators, branching, tree, search
  engine, metrics) <- ``prm_models`` (these scorers) <- app, ``prm_app`` (command line, experiments,
  ProcessBench evaluation, data export, preflight checks, and the one place that builds engines and
  scorers). The core imports neither; ``prm_models`` imports no app module.
* The app uses ``prm_models`` through its public API only: :data:`PRMS`, :func:`make_prm`,
  :class:`StepScores`, :class:`PRMScorer` and the names each scorer module lists in ``__all__``. No
  module imports another module's private (``_``) names.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.problems import Problem
from prm_fire.registry import Registry, implements


class StepScores(BaseModel):
    """Per-step probabilities that a step is correct, and the first step judged incorrect.

    >>> StepScores(prm="label", scores=[0.9, 0.2, 0.8], threshold=0.5).first_error_index
    1
    >>> StepScores(prm="label", scores=[0.9, 0.7], threshold=0.5).first_error_index is None
    True
    """

    model_config = ConfigDict(frozen=True)

    prm: str = Field(description="Name of the scorer in the PRMS registry.")
    scores: list[float] = Field(description="One score in [0, 1] per step.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")
    abstained: list[bool] | None = Field(
        default=None, description="Per step: True where the scorer found no evidence and gave its default score."
    )
    reasons: list[list[str]] | None = Field(
        default=None,
        description="Per step: why it was flagged (the rules that fired; empty if none). None: the scorer gives none.",
    )
    decided: bool | None = Field(
        default=None,
        description="Item level: True when the scorer has evidence for its prediction (a combination keeps it), "
                    "False when it has none (a combination escalates). None: a flagged step counts as evidence.",
    )

    @property
    def has_evidence(self) -> bool:
        """Whether the prediction rests on evidence: ``decided`` if the scorer says, else "a step is flagged"."""
        return self.decided if self.decided is not None else self.first_error_index is not None

    @property
    def first_error_index(self) -> int | None:
        """Index of the first step scored below the threshold, or None if every step passes."""
        return next((i for i, s in enumerate(self.scores) if s < self.threshold), None)


@runtime_checkable
class PRMScorer(Protocol):
    """Scores the steps of one solution to one problem."""

    name: str

    def score(self, problem: Problem, steps: list[str]) -> StepScores:
        """One score per step, in order."""
        ...


def make_prm(name: str, options: dict[str, Any] | None = None, **resources: Any) -> PRMScorer:
    """Build the scorer registered as ``name``.

    Convention: a scorer class has a pydantic ``Config`` class attribute; ``options`` (from a config
    file or the command line) are validated by it. ``resources`` are already loaded objects a scorer
    may share (a ``generator``); each goes to the constructor only if it takes a parameter of that name,
    and a ``generator`` only if the options name no other model (``model=`` set to another key: the
    scorer then builds its own engine on first use).
    """
    cls = PRMS.get(name)
    config = cls.Config.model_validate(options or {})
    accepted = inspect.signature(cls).parameters
    shared = {key: value for key, value in resources.items() if key in accepted}
    if "generator" in shared and not shares_engine(config, shared["generator"]):
        del shared["generator"]
    return cls(config, **shared)


def shares_engine(config: BaseModel, generator: Any) -> bool:
    """Whether a scorer with ``config`` runs on ``generator``: yes unless its options set ``model`` to
    another model than the generator's (a default model it was not given does not count).

    >>> from pydantic import BaseModel
    >>> class C(BaseModel):
    ...     model: str = "qwen2.5-coder-0.5b"
    >>> class G:
    ...     model_name = "smollm2-135m"
    >>> shares_engine(C(), G()), shares_engine(C(model="smollm2-135m"), G()), shares_engine(C(model="x"), G())
    (True, True, False)
    """
    return "model" not in config.model_fields_set or getattr(config, "model") == generator.model_name


# Each scorer's module is imported when the scorer is first asked for; heavy libraries (torch,
# transformers) load inside the scorers.
PRMS: Registry[type] = Registry("PRM scorer", check=implements(PRMScorer, attributes=("Config",)), lazy={
    "combined": "prm_models.combined:CombinedPRM",
    "critic": "prm_models.critic:CriticPRM",
    "label": "prm_models.label:LabelPRM",
    "math-shepherd": "prm_models.hf_prm:MathShepherdPRM",
    "qwen-prm": "prm_models.hf_prm:QwenMathPRM",
    "reference": "prm_models.reference:ReferencePRM",
    "rollout": "prm_models.rollout:RolloutPRM",
    "symbolic": "prm_models.symbolic:SymbolicPRM",
})

__all__ = ["PRMS", "PRMScorer", "StepScores", "make_prm", "shares_engine"]
