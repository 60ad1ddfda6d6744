"""HF transformers backend: each prefix prefilled once, the branches of many requests decoded as one batch.

The FIRE step is :meth:`HFGenerator._decode`: one forward pass over each distinct prompt + prefix
(alone: batching prompts of different lengths into one padded prefill was no faster here and moves
their logits by ~2e-5), each request's first tokens drawn from its prompt's last logits
(:func:`prm_fire.sampling.first_tokens`, hot for FIRE), then regular decoding of every row of every
request together, each with its own request's settings (:func:`prm_fire.sampling.regular_draw`).

Rows of prompts of different lengths share one KV cache (:class:`_PaddedBatch`): each row starts from
a copy of its prompt's prefill cache, left-padded to the longest prompt; an attention mask hides the
padding and explicit position ids continue each row from its own prompt length. A row that draws EOS
or reaches its request's ``max_new_tokens`` leaves the batch (``batch_select_indices`` on the cache,
the mask and the positions), and leading cache columns that only padding fills are dropped.

Exactness: a request sent alone has no padding and no mask; in a batch its rows attend over masked
padding columns too and the matrix products run over more rows. Masked scores are exact zeros after
the softmax, so only the rounding of the kernels could differ; it did not, where measured: 4 GSM8K
prefixes (prompts of 152-205 tokens) x FIRE/regular x n=10, up to 64 tokens, on smollm2-135m and
qwen2.5-coder-0.5b in float32, gave 160 of 160 branches identical to the same requests sent alone
(tested: ``tests/test_generator_hf.py``). First tokens are exact by construction (prefills run alone).
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from prm_fire.generators.base import ChatBackend, DecodeState, Rows
from prm_fire.limits import shape_from_config
from prm_fire.records import Branch, BranchRequest
from prm_fire.sampling import first_tokens, guard_vocab, regular_draw

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
        self.shape = shape_from_config(self.model.config, self.model_name)
        self.kv_bytes_per_value = next(self.model.parameters()).element_size()
        # transformers >= 5.20 names the cache argument ``cache`` (``past_key_values`` is deprecated).
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def _branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Every request's branches from one batched decode (see the module docstring)."""
        import torch

        rows = Rows(requests)
        with torch.inference_mode():
            first, raw_lp, sampled_lp, tokens, finish = self._decode(rows)
        return self.records_many(rows, first, raw_lp, sampled_lp, tokens, finish)

    def _forward(self, ids: torch.Tensor, cache: Any, mask: torch.Tensor | None = None,
                 positions: torch.Tensor | None = None) -> torch.Tensor:
        """Guarded logits after the last token of each row of ``ids``; ``cache`` grows in place."""
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1, **{self._cache_arg: cache})
        return guard_vocab(out.logits[:, -1].float(), self.vocab_size)

    def _prefill(self, prompt_ids: tuple[int, ...]) -> tuple[torch.Tensor, Any]:
        """One prompt alone: its next-token logits [vocab] and its KV cache."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        return self._forward(torch.tensor([prompt_ids]), cache)[0], cache

    def _decode(self, rows: Rows) -> tuple[Any, ...]:
        """The FIRE step for every row of ``rows``: prefill, first tokens, then regular decoding together."""
        import torch

        requests, generators = rows.requests, rows.generators()
        # Prefill each distinct prompt once, alone (requests on the same prefix share it).
        prompts = {tuple(req.prompt_ids): None for req in requests}
        for ids in prompts:
            prompts[ids] = self._prefill(ids)

        # First tokens: hot (FIRE) or regular, from each request's prefill logits.
        first, raw_lp, sampled_lp = [0] * len(rows), [0.0] * len(rows), [0.0] * len(rows)
        for r, req in enumerate(requests):
            s, n = rows.start[r], req.n
            logits = prompts[tuple(req.prompt_ids)][0].expand(n, -1)
            token, raw, sampled = first_tokens(logits, req.sampling, generators[s : s + n])
            first[s : s + n], raw_lp[s : s + n], sampled_lp[s : s + n] = token.tolist(), raw, sampled

        # Rows still running after their first token decode together, regular rule of their own request.
        state = DecodeState(len(rows), budgets=rows.budgets())
        state.take(first, self.eos)
        if state.alive:
            batch = _PaddedBatch([tuple(requests[rows.owner[j]].prompt_ids) for j in state.alive], prompts,
                                 room=max(rows.budgets()))
            token = torch.tensor([first[j] for j in state.alive])
            cfgs = [rows.sampling(j) for j in range(len(rows))]
            steps = max(rows.budgets())
            bar = tqdm(total=steps, desc=f"{len(requests)} requests x{len(rows)}", unit="step",
                       disable=not self.progress)
            while state.alive:
                bar.update()
                logits = self._forward(token[:, None], batch.cache, *batch.step())
                token = regular_draw(logits, [cfgs[j] for j in state.alive], [generators[j] for j in state.alive])
                keep, ended = state.take(token.tolist(), self.eos)
                if ended and state.alive:
                    index = torch.tensor(keep)
                    token = token[index]
                    batch.select(index)
            bar.close()
        return first, raw_lp, sampled_lp, state.rows, state.finish


class _PaddedBatch:
    """The KV cache, attention mask and positions of rows continuing prompts of different lengths.

    Row j continues ``prompt_of_row[j]``; its cache is a copy of that prompt's prefill cache, left-padded
    to the longest prompt (the mask hides the padding, positions run on from the row's own prompt
    length), in buffers with ``room`` free positions (:class:`~prm_fire.generators.hf_cache.RoomyLayer`). Columns no remaining row
    uses are dropped as rows leave, so when only rows of one prompt remain there is no padding and no mask.
    """

    def __init__(self, prompt_of_row: list[tuple[int, ...]], prefilled: dict[tuple[int, ...], Any], room: int):
        import torch
        from torch.nn.functional import pad
        from transformers.cache_utils import Cache

        from prm_fire.generators.hf_cache import RoomyLayer

        used = list(dict.fromkeys(prompt_of_row))
        width = max(len(p) for p in used)
        index = torch.tensor([used.index(p) for p in prompt_of_row])
        layers = []
        for layer in range(len(prefilled[used[0]][1].layers)):
            kv = []
            for part in ("keys", "values"):
                padded = [pad(getattr(prefilled[p][1].layers[layer], part), (0, 0, width - len(p), 0)) for p in used]
                kv.append(torch.cat(padded)[index])
            layers.append(RoomyLayer(*kv, room=room))
        self.cache = Cache(layers=layers)
        lengths = torch.tensor([len(p) for p in prompt_of_row])
        self.positions = lengths.clone()
        self.mask: torch.Tensor | None = None
        if (lengths < width).any():
            self.mask = torch.arange(width)[None, :] >= (width - lengths)[:, None]

    def step(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(attention mask, position ids) for feeding one more token per row; advances the positions."""
        import torch

        positions = self.positions[:, None]
        self.positions = self.positions + 1
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.mask), 1)], dim=1)
            return self.mask.long(), positions
        return None, positions

    def select(self, index: torch.Tensor) -> None:
        """Keep the rows ``index``; drop leading cache columns that only padding fills."""
        self.cache.batch_select_indices(index)
        self.positions = self.positions[index]
        if self.mask is None:
            return
        self.mask = self.mask[index]
        unused = int(self.mask.any(0).int().argmax())  # leading columns no row attends to
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.drop_leading(unused)
        if self.mask.all():
            self.mask = None
