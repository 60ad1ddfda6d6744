"""The one place a run's heavy objects are built: the policy generator, the PRM scorer, the entropy scorer.

Every stage (pass rate, data set, insertion, the chain) and the ``table5`` command take a
:class:`Resources`; each object is built on first use and shared, so a run that finds nothing left
to do loads no model, and one that does loads each model once.

The policy generator's calls are journaled in ``<run>/calls.jsonl``
(:class:`~prm_fire.generators.journaled.JournaledGenerator`), so a kill loses at most the engine call in
flight; a stage calls :meth:`Resources.settle` once its own journals hold a wave, which empties that file.
A PRM on another model than the policy builds its own generator, whose calls are not journaled.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from prm_fire.experiments.config import ExperimentConfig

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


CALLS = "calls.jsonl"
"""The run folder's journal of the policy generator's finished calls (one wave at most)."""


class Resources:
    """A run's generator and scorer, each built from ``config`` on first use (or given ready-made).

    A rollout PRM on the policy's own model shares the policy's generator (one engine, not two).
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
        from prm_fire.generators import make_generator

        config = self.config
        shown = {"progress": True} if self.progress else {}
        return self._journaled(make_generator(config.backend, config.model, **(shown | config.backend_options)))

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
        from prm_models import make_prm

        prm = self.config.prm
        same_model = prm.options.get("model", self.config.model) == self.config.model
        return make_prm(prm.name, prm.options, **({"generator": self.generator} if same_model else {}))

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
