"""The vocabulary guard inside the vLLM engine: a logits processor that sets ``-inf`` on output rows
the tokenizer does not have, for the requests that ask (``SamplingParams.extra_args[GUARD_KEY]``).

Qwen's output matrix is 271 rows larger than its vocabulary. vLLM's own ``allowed_token_ids`` would do
the same with a list of every *allowed* id (151,665 of them) per request: validated in Python,
shipped to the engine process and scattered into a mask row with every request, then a mask over the
whole batch x vocabulary at every step. This processor gets one integer per request and fills one
slice per step (``logits[rows, limit:]``).

The engine loads it by name in its own process (``vllm.LLM(logits_processors=[PROCESSOR])``). The class
subclasses vLLM's ``LogitsProcessor``, so it is built on first access (module ``__getattr__``): this
module imports without vLLM (the doctest collection of the default test run imports it). It runs before temperature and the top-k/top-p filters, after the raw log-probs are
taken (vLLM's ``raw_logprobs`` mode), as step 1 of :mod:`prm_fire.sampling` demands.
"""

from __future__ import annotations

from typing import Any

from prm_fire.generators.vllm import GUARD_KEY


def __getattr__(name: str) -> Any:
    """``VocabGuard``, built on first access (it needs vLLM, which only the engine's processes have)."""
    if name != "VocabGuard":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _vocab_guard_class()
    globals()["VocabGuard"] = cls
    return cls


def _vocab_guard_class() -> type:
    import torch
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
    from vllm.v1.sample.logits_processor.builtin import process_dict_updates

    def limit_of(params: SamplingParams, _prompt: list[int] | None, _output: list[int]) -> int | None:
        return (params.extra_args or {}).get(GUARD_KEY)

    class VocabGuard(LogitsProcessor):
        """``-inf`` for ids ``>= extra_args[GUARD_KEY]`` in the rows of requests that carry the key."""

        def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
            self.limits: dict[int, int] = {}  # batch row -> vocabulary size
            self.groups: list[tuple[torch.Tensor, int]] = []  # (rows, limit), rebuilt when the rows change

        @classmethod
        def validate_params(cls, sampling_params: SamplingParams) -> None:
            limit = (sampling_params.extra_args or {}).get(GUARD_KEY)
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"extra_args[{GUARD_KEY!r}] must be a positive int, got {limit!r}")

        def is_argmax_invariant(self) -> bool:
            """Masking can remove the argmax, so greedy requests need it too."""
            return False

        def update_state(self, batch_update: BatchUpdate | None) -> None:
            if process_dict_updates(self.limits, batch_update, limit_of):
                by_limit: dict[int, list[int]] = {}
                for row, limit in self.limits.items():
                    by_limit.setdefault(limit, []).append(row)
                self.groups = [(torch.tensor(rows), limit) for limit, rows in by_limit.items()]

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            if len(self.groups) == 1 and len(self.limits) == logits.shape[0]:  # every row, one limit: a slice
                logits[:, self.groups[0][1]:] = float("-inf")
            else:
                for rows, limit in self.groups:
                    logits[rows, limit:] = float("-inf")
            return logits

    VocabGuard.__module__, VocabGuard.__qualname__ = __name__, "VocabGuard"
    return VocabGuard
