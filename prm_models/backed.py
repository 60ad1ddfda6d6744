"""Scorers that run a language model through a generator backend: the critic and the rollout PRM.

A :class:`GeneratorBacked` scorer takes an already loaded ``generator`` (the policy's, shared by
:func:`prm_models.make_prm` when the options name no other model) or builds one on first use from its
config's ``backend``, ``model`` and ``generator_options``, so a scorer that never needs its model (a
combination that never escalates) never loads it. This is the only place a scorer builds an engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


class GeneratorBacked:
    """Base of a scorer whose ``Config`` has ``backend``, ``model`` and ``generator_options``.

    ``Scorer(config)`` or ``Scorer(**fields)`` (a config built from keyword fields, not both);
    ``generator`` reuses an already built backend (its model then overrides ``config.model``).
    """

    Config: ClassVar[Any]
    config: Any
    _generator: Generator | None = None

    def __init__(self, config: Any | None = None, *, generator: Generator | None = None, **fields: Any):
        if config is not None and fields:
            raise ValueError(f"{type(self).__name__}: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or self.Config(**fields)
        self._generator = generator

    @property
    def generator(self) -> Generator:
        """The backend (built from the config on first use)."""
        if self._generator is None:
            from prm_fire.generators import make_generator

            self._generator = make_generator(self.config.backend, self.config.model, **self.config.generator_options)
        return self._generator

    @property
    def model_name(self) -> str:
        """The model's name: the shared generator's if one was given, else the config's."""
        return getattr(self._generator, "model_name", None) or self.config.model


__all__ = ["GeneratorBacked"]
