"""HF transformers backend: prefill the shared prefix once, then decode n branches as one batch.

The FIRE step is :meth:`HFGenerator._decode`: one forward pass over prompt + prefix, n first tokens
drawn from its last logits (:func:`prm_fire.sampling.first_tokens`, hot for FIRE), the prefix KV
cache repeated n times (a copy, no second prefill), then regular decoding of the n rows together;
rows that drew EOS leave the batch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from prm_fire.generators import GENERATORS
from prm_fire.generators.base import Branch, ChatBackend, DecodeState
from prm_fire.sampling import SamplingConfig, branch_seed, draw, first_tokens, guard_vocab, regular_logits

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# GGUF vocabularies are padded to the output matrix with placeholder tokens named like this.
_GGUF_PAD = re.compile(r"\[PAD\d+\]")


def real_vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Number of ids the tokenizer really has: ``len(tokenizer)`` less trailing GGUF pad placeholders.

    Hub Qwen tokenizers have 151,665 ids for 151,936 output rows; their GGUF conversions list the
    missing ids as ``[PAD151665]`` ... which decode to junk. Either way, ids from here up are masked.
    """
    size = len(tokenizer)
    while size > 0 and _GGUF_PAD.fullmatch(tokenizer.convert_ids_to_tokens(size - 1) or ""):
        size -= 1
    return size


def eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every id that ends a response: the tokenizer's EOS and the generation config's."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}


@GENERATORS.register("hf")
class HFGenerator(ChatBackend):
    """Shared-prefix FIRE branching with HF transformers (CPU or one GPU).

    ``model`` is a name for :func:`prm_fire.models.load_model` (embedded key, folder, hub id) or an
    already loaded model, in which case ``tokenizer`` must be given too.
    """

    def __init__(
        self,
        model: str | PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        progress: bool = False,
    ) -> None:
        if isinstance(model, str):
            from prm_fire.models import load_model

            self.model_name = model
            self.model, self.tokenizer = load_model(model, dtype=dtype, device=device)
        else:
            if tokenizer is None:
                raise ValueError("HFGenerator: a loaded model needs its tokenizer")
            self.model_name = getattr(model.config, "_name_or_path", "") or type(model).__name__
            self.model, self.tokenizer = model.eval(), tokenizer
        self.progress = progress
        self.vocab_size = real_vocab_size(self.tokenizer)
        self.eos = eos_ids(self.model, self.tokenizer)

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing the token ids ``prompt_ids`` (prompt + prefix, already encoded)."""
        import torch

        self.check_request(prompt_ids, n)
        with torch.inference_mode():
            first, first_raw, first_sampled, rows, finish = self._decode(prompt_ids, n, sampling)
        return self.records(sampling.method, first, first_raw, first_sampled, rows, finish)

    def _forward(self, ids: torch.Tensor, cache: Any | None) -> tuple[torch.Tensor, Any]:
        out = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return guard_vocab(out.logits[:, -1].float(), self.vocab_size), out.past_key_values

    def _decode(self, prompt_ids: list[int], n: int, cfg: SamplingConfig) -> tuple[Any, ...]:
        import torch

        generators = [torch.Generator().manual_seed(branch_seed(cfg.seed, i)) for i in range(n)]
        greedy = cfg.temperature == 0

        # Prefill the shared prefix once.
        logits, cache = self._forward(torch.tensor([prompt_ids]), None)
        logits = logits.expand(n, -1)

        # First token: hot (FIRE) or regular.
        token, raw_lp, sampled_lp = first_tokens(logits, cfg, generators)
        first = token.tolist()

        # The n branches share one copy of the prefix cache each; then regular decoding in one batch.
        cache.batch_repeat_interleave(n)
        state = DecodeState(n)
        bar = tqdm(total=cfg.max_new_tokens, desc=f"{cfg.method} x{n}", unit="step", disable=not self.progress)
        for step in range(cfg.max_new_tokens):
            bar.update()
            if step > 0:
                logits, cache = self._forward(token[:, None], cache)
                if not greedy:
                    logits = regular_logits(logits, cfg)
                token = draw(logits, [generators[i] for i in state.alive], greedy=greedy)
            keep, ended = state.take(token.tolist(), self.eos)
            if ended:
                if not state.alive:
                    break
                index = torch.tensor(keep)
                token = token[index]
                cache.batch_select_indices(index)
        bar.close()
        return first, raw_lp, sampled_lp, state.rows, state.finish
