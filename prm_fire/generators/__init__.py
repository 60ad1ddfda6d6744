"""Generator backends, chosen by name: ``GENERATORS.get("hf")``.

The registry names each backend's class as ``"module:class"``; a backend's module is imported the
first time it is asked for (and its class checked against :class:`Generator` then), and heavy
libraries (torch, vllm, llama.cpp) are imported inside the backend, so importing this package stays
cheap and imports no backend.
"""

from __future__ import annotations

from typing import Any

from prm_fire.generators.base import Generator
from prm_fire.records import Branch, BranchRequest, Message
from prm_fire.registry import Registry, implements

GENERATORS: Registry[type] = Registry("generator backend", check=implements(Generator), lazy={
    "hf": "prm_fire.generators.hf:HFGenerator",
    "vllm": "prm_fire.generators.vllm:VLLMGenerator",
    "llamacpp": "prm_fire.generators.llamacpp:LlamaCppGenerator",
})


def make_generator(backend: str, model: str, **options: Any) -> Generator:
    """Build the backend registered as ``backend`` for ``model`` (see :mod:`prm_fire.models`)."""
    return GENERATORS.get(backend)(model, **options)


__all__ = ["GENERATORS", "Branch", "BranchRequest", "Generator", "Message", "make_generator"]
