"""The one place engines and scorers are built: :func:`build_generator`, :func:`build_scorer`, :class:`Resources`.

Every entry point of the app goes through here: ``prm-fire branch``, ``search`` and ``processbench``,
the search experiment (``experiments/search.py``), and every stage of the Table 5 chain (pass rate,
data set, insertion; on one machine or in Ray actors) through a :class:`Resources`, whose objects are
built on first use and shared, so a run that finds nothing left to do loads no model, and one that
does loads each model once. A scorer runs on the policy's engine unless its options name another
model (:func:`prm_models.shares_engine`); then it builds its own on first use
(:class:`prm_models.backed.GeneratorBacked`, the rollout PRM and the critic).

The policy generator's calls are journaled in ``<run>/calls.jsonl``
(:class:`~prm_fire.generators.journaled.JournaledGenerator`), so a kill loses at most the engine call in
flight; a stage calls :meth:`Resources.settle` once its own journals hold a wave, which empties that file.
A PRM on another model than the policy builds its own generator, whose calls are not journaled.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from prm_app.experiments.config import ExperimentConfig

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


CALLS = "calls.jsonl"
"""The run folder's journal of the policy generator's finished calls (one wave at most)."""


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
                 progress: bool = False, journal_calls: bool = True):
        self.config = config
        self.progress = progress  # a bar per generator call: base responses, each PRM rollout round, each branching
        self.journal_calls = journal_calls
        if generator is not None:
            self.__dict__["generator"] = self._journaled(generator)
        if scorer is not None:
            self.__dict__["scorer"] = scorer

    @cached_property
    def generator(self) -> Generator:
        """The policy backend of ``config.backend`` for ``config.model``."""
        config = self.config
        return self._journaled(build_generator(config.backend, config.model, progress=self.progress,
                                               **config.backend_options))

    def _journaled(self, generator: Generator) -> Generator:
        from prm_fire.generators.journaled import JournaledGenerator

        if isinstance(generator, JournaledGenerator):  # another run's: journal into this run's folder instead
            generator = generator.inner
        return JournaledGenerator(generator, self.config.run_dir / CALLS) if self.journal_calls else generator

    def settle(self) -> None:
        """The stage's journals hold what the generator's calls made so far: empty the call journal."""
        generator = self.__dict__.get("generator")
        if hasattr(generator, "settle"):
            generator.settle()
        elif self.journal_calls:
            (self.config.run_dir / CALLS).unlink(missing_ok=True)

    def clock(self) -> float:
        """Seconds for a stage's timing: ``time.perf_counter()`` plus the recorded engine time of the calls
        replayed from the call journal (the time a killed run spent on them)."""
        return time.perf_counter() + getattr(self.__dict__.get("generator"), "replayed_seconds", 0.0)

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
