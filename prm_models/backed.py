"""Scorers that run a language model through a generator backend (the critic; the rollout PRM's pattern).

A :class:`GeneratorBacked` scorer takes an already loaded ``generator`` (shared with the policy, say)
or builds one on first use from its config's ``backend``, ``model`` and ``generator_options``, so a
scorer that never needs its model (a combination that never escalates) never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


class GeneratorBacked:
    """Mixin: ``self.config`` has ``backend``, ``model``, ``generator_options``; ``self._generator`` may be preset."""

    config: Any
    _generator: Generator | None = None

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
