"""Generator backends, chosen by name: ``GENERATORS.get("hf")``.

Each backend module registers itself on import; heavy libraries (torch, vllm) are imported inside
the backend, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

from prm_fire.registry import Registry

GENERATORS: Registry[type] = Registry("generator backend")

from prm_fire.generators.base import Generator  # noqa: E402
from prm_fire.records import Branch, BranchRequest, Message  # noqa: E402
from prm_fire.generators import hf  # noqa: E402,F401  (registers "hf")
from prm_fire.generators import vllm  # noqa: E402,F401  (registers "vllm"; imports vllm lazily)
from prm_fire.generators import llamacpp  # noqa: E402,F401  (registers "llamacpp")


def make_generator(backend: str, model: str, **options: Any) -> Generator:
    """Build the backend registered as ``backend`` for ``model`` (see :mod:`prm_fire.models`)."""
    return GENERATORS.get(backend)(model, **options)


__all__ = ["GENERATORS", "Branch", "BranchRequest", "Generator", "Message", "make_generator"]
