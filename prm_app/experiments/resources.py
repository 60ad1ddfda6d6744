"""The one place engines and scorers are built: :func:`build_generator`, :func:`build_scorer`, :class:`Resources`.

Every entry point of the app goes through here: ``prm-fire branch``, ``search`` and ``processbench``,
the search experiment (``experiments/search.py``), and every stage of the Table 5 chain (pass rate,
data set, insertion; on one machine or in Ray actors) through a :class:`Resources`, whose objects are
built on first use and shared, so a run that finds nothing left to do loads no model, and one that
does loads each model once. A scorer runs on the policy's engine unless its options name another
model (:func:`prm_models.shares_engine`); then it builds its own on first use
(:class:`prm_models.backed.GeneratorBacked`, the rollout PRM and the critic).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from prm_app.experiments.config import ExperimentConfig

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


def build_generator(backend: str, model: str, *, progress: bool = False, **options: Any) -> Generator:
    """The engine of ``backend`` for ``model`` with the backend's keyword ``options``; ``progress`` shows
    a bar inside every generator call."""
    from prm_fire.generators import make_generator

    return make_generator(backend, model, **({"progress": True} if progress else {}) | options)


def build_scorer(name: str, options: dict[str, Any] | None = None, *, policy: Generator | None = None,
                 items: Any | None = None) -> Any:
    """PRM ``name`` with ``options``, on the ``policy`` engine unless the options name another model;
    ``items`` (ProcessBench items with their labels) reach only a scorer that takes them (``label``)."""
    from prm_models import make_prm

    resources = {"generator": policy, "items": items}
    return make_prm(name, options, **{k: v for k, v in resources.items() if v is not None})


class Resources:
    """A run's generator and scorer, each built from ``config`` on first use (or given ready-made).

    A scorer on the policy's own model shares the policy's generator (one engine, not two).
    """

    def __init__(self, config: ExperimentConfig, *, generator: Generator | None = None, scorer: Any | None = None,
                 progress: bool = False):
        self.config = config
        self.progress = progress  # a bar per generator call: base responses, each PRM rollout round, each branching
        if generator is not None:
            self.__dict__["generator"] = generator
        if scorer is not None:
            self.__dict__["scorer"] = scorer

    @cached_property
    def generator(self) -> Generator:
        """The policy backend of ``config.backend`` for ``config.model``."""
        config = self.config
        return build_generator(config.backend, config.model, progress=self.progress, **config.backend_options)

    @cached_property
    def scorer(self) -> Any:
        """The config's PRM (``prm.name`` with ``prm.options``)."""
        prm = self.config.prm
        if prm.options.get("model", self.config.model) != self.config.model:
            return build_scorer(prm.name, prm.options)  # its own engine: do not load the policy for it
        return build_scorer(prm.name, prm.options, policy=self.generator)

    @cached_property
    def entropy(self) -> Any:
        """The entropy-line scorer (:class:`~prm_fire.entropy.EntropyScorer`) on the policy's weights: an HF
        policy's own model if it is loaded already, else the policy loaded with transformers."""
        from prm_fire.entropy import EntropyScorer

        generator = self.generator if self.config.backend == "hf" else self.__dict__.get("generator")
        return EntropyScorer.for_generator(generator, self.config.model)

    def close(self) -> None:
        """Stop the generator's engine if it has one running (vLLM's worker processes)."""
        generator = self.__dict__.get("generator")
        if generator is not None and hasattr(generator, "close"):
            generator.close()
