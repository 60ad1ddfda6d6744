"""llama.cpp backend: the GGUF file runs natively; the branches of many prefixes decode as one batch.

Same records and FIRE semantics as the HF backend (:mod:`prm_fire.generators.hf`):

* **token ids**: the chat prompt + prefix are encoded with the model's HF tokenizer (read from the
  GGUF); the GGUF tokenizer of llama.cpp gives the same ids (tested on MATH prompts), so trees from
  both backends are comparable. llama.cpp is fed these ids.
* **shared prefixes, batched branches, many requests**: each distinct prompt + prefix is evaluated
  once, as its own sequence (requests on the same prefix, e.g. FIRE and regular, share it); every
  branch that runs past its first token is a further sequence whose KV cache starts as a copy of its
  prompt's (``llama_memory_seq_cp``). Each decode step puts one token per live branch of every request
  in one ``llama_batch``, with its own sequence id and position, and asks logits for each; a branch
  that drew EOS or reached its request's ``max_new_tokens`` leaves the batch and frees its cells.
  Requests that need more than ``llama_max_parallel_sequences()`` sequences are served in groups of
  whole requests (:meth:`LlamaCppGenerator._branch_many`).
* **branch i depends neither on n nor on the other requests**: by default every sequence has its
  own KV stream (``kv_unified=False``), so a branch's attention only spans its own cells and its
  arithmetic is the same whatever its siblings or other requests' branches do: a request's records
  in a batch equal its records alone (tested; 4 GSM8K prefixes x FIRE/regular x n=10, 64 tokens,
  smollm2-135m: 80 of 80 branches identical). With ``unified_kv=True`` the branches share the prefix cells of one
  pool (less memory), but the masked attention rows then grow with n, float rounding changes, and
  on MATH prompts some branches were seen to draw other tokens at n=10 than at n=1.
* **sampling is ours**, from the logits llama.cpp returns: the transforms and per-branch generators of
  :mod:`prm_fire.sampling`, so with equal logits both backends draw the same tokens. llama.cpp's own
  sampler chain is not used: llama-cpp-python's chain is top-k, typical, top-p, min-p, *then*
  temperature (our order divides by the temperature first, which changes top-p and min-p), and it
  draws from one seeded stream per context, not one per branch.

``llama_cpp`` is imported when a generator is built, so this module imports without it.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from prm_fire.generators.base import ChatBackend, DecodeState, Rows
from prm_fire.generators.hf import real_vocab_size
from prm_fire.limits import ModelShape
from prm_fire.records import Branch, BranchRequest
from prm_fire.sampling import first_tokens, guard_vocab, regular_draw

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedTokenizerBase

THREADS_ENV = "PRM_FIRE_LLAMACPP_THREADS"
INSTALL = "pip install 'prm-fire[llamacpp]'  (builds llama-cpp-python from source: ~5 min)"


def gguf_file(model: str) -> Path:
    """The GGUF file for ``model``: an embedded key (:func:`prm_fire.models.gguf_path`) or a path."""
    from prm_fire.models import EMBEDDED, ModelError, gguf_path

    if model in EMBEDDED:
        return gguf_path(model)
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise ModelError(
        f"llamacpp backend: model {model!r} is neither an embedded key ({', '.join(EMBEDDED)}) "
        "nor an existing .gguf file"
    )


def load_tokenizer(model: str, path: Path) -> PreTrainedTokenizerBase:
    """The HF tokenizer of the GGUF ``path`` (for an embedded ``model`` key, cached as a folder).

    transformers reads a tokenizer from a GGUF file in tens of seconds; an embedded model's converted
    HF folder (:func:`prm_fire.models.resolve_model`) or a saved copy of its tokenizer loads in seconds.
    """
    import shutil
    import tempfile

    from transformers import AutoTokenizer

    from prm_fire.models import EMBEDDED, cache_dir

    if model not in EMBEDDED:
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    converted, saved = cache_dir() / "hf" / model, cache_dir() / "tokenizer" / model
    if (converted / "prm_fire_source.json").is_file():
        return AutoTokenizer.from_pretrained(converted)
    if (saved / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    saved.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model}-", dir=saved.parent))
    try:
        tokenizer.save_pretrained(tmp)
        tmp.rename(saved)
    except OSError:  # another process saved it first
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer


def _release(lc: Any, handles: list[Any]) -> None:
    """Free [model, context, batch] (as far as present) in reverse order."""
    frees = [lc.llama_model_free, lc.llama_free, lc.llama_batch_free]
    for free, handle in reversed(list(zip(frees, handles))):
        free(handle)
    handles.clear()


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise ImportError(f"the llamacpp backend needs llama-cpp-python: {INSTALL}") from e
    # llama-cpp-python prints every llama.cpp log line unless its logger is raised above INFO.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()
    return llama_cpp


class LlamaCppGenerator(ChatBackend):
    """Shared-prefix FIRE branching with llama.cpp on the CPU.

    ``model`` is an embedded key or a ``.gguf`` path; ``tokenizer`` (optional) an HF tokenizer of the
    same model, by default :func:`load_tokenizer`. ``n_threads`` threads decode (default:
    ``$PRM_FIRE_LLAMACPP_THREADS``, else 2). On a machine whose cores are busy with other work, 1 can
    be many times faster than 2: llama.cpp's threads spin at barriers.
    ``unified_kv``: see the module docstring.
    """

    def __init__(
        self,
        model: str,
        tokenizer: PreTrainedTokenizerBase | None = None,
        *,
        n_threads: int | None = None,
        progress: bool = False,
        unified_kv: bool = False,
    ) -> None:
        lc = _import_llama_cpp()
        self._lc = lc
        self.model_name = model
        self.path = gguf_file(model)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model, self.path)
        self.n_threads = n_threads or int(os.environ.get(THREADS_ENV) or 2)
        self.progress = progress
        self.unified_kv = unified_kv

        params = lc.llama_model_default_params()
        # The AMX kernels of a build made on an AMX CPU segfault on multi-token batches in this VM
        # (ggml_backend_amx_mul_mat); extra buffer types (AMX, weight repacking) are off on such builds.
        params.use_extra_bufts = b"AMX_INT8 = 1" not in lc.llama_print_system_info()
        self._model = lc.llama_model_load_from_file(str(self.path).encode(), params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load the GGUF file {self.path}")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self.vocab_size = real_vocab_size(self.tokenizer)
        # The stop set of the HF backend: the tokenizer's EOS and the model's (GGUF metadata).
        self.eos = {i for i in (self.tokenizer.eos_token_id, lc.llama_vocab_eos(self._vocab)) if i is not None and i >= 0}
        # llama.cpp sizes its own context per call; requests are checked against the trained context.
        self.shape = ModelShape(
            name=model, context_length=lc.llama_model_n_ctx_train(self._model), layers=lc.llama_model_n_layer(self._model),
            kv_heads=max(lc.llama_model_n_head_kv(self._model), 1),
            head_dim=max(lc.llama_model_n_embd(self._model) // max(lc.llama_model_n_head(self._model), 1), 1),
            vocab_size=self.n_vocab)
        self._ctx: Any = None
        self._ctx_shape = (0, 0)  # (KV cells per sequence, n_seq_max) of the cached context
        self._batch: Any = None
        self._handles = [self._model]  # freed, last first, when the generator is collected or at exit
        weakref.finalize(self, _release, lc, self._handles)

    def _free_context(self) -> None:
        if self._ctx:
            self._lc.llama_batch_free(self._batch)
            self._lc.llama_free(self._ctx)
            del self._handles[1:]
            self._ctx = self._batch = None

    # -- tokens -------------------------------------------------------------------------------------

    def tokenize_gguf(self, text: str) -> list[int]:
        """``text`` tokenized by llama.cpp's GGUF tokenizer (special tokens parsed, none added)."""
        data = text.encode()
        size = len(data) + 8
        buf = (self._lc.llama_token * size)()
        count = self._lc.llama_tokenize(self._vocab, data, len(data), buf, size, False, True)
        if count < 0:
            raise RuntimeError(f"llama.cpp tokenize failed on {len(data)} bytes (needs {-count} slots)")
        return list(buf[:count])

    # -- branching ----------------------------------------------------------------------------------

    def _branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Every request's branches, decoded together in as few groups as llama.cpp's sequences allow.

        A group needs one sequence per distinct prompt and one per branch that runs past its first
        token; at most ``llama_max_parallel_sequences()`` fit in one context. Requests are packed
        whole, largest first, into the first group with room (first-fit decreasing: one group whenever
        everything fits, close to the fewest otherwise); each group is one batched decode.
        """
        import torch

        out: list[list[Branch]] = [[] for _ in requests]
        with torch.inference_mode():
            for group in self._groups(requests):
                rows = Rows([requests[r] for r in group])
                for r, branches in zip(group, self.records_many(rows, *self._decode(rows)), strict=True):
                    out[r] = branches
        return out

    def _groups(self, requests: list[BranchRequest]) -> list[list[int]]:
        """Request indices cut into groups that each fit llama.cpp's parallel sequences."""
        limit = self._lc.llama_max_parallel_sequences()
        branch_seqs = [req.n if req.sampling.max_new_tokens > 1 else 0 for req in requests]
        for req, need in zip(requests, branch_seqs):
            if 1 + need > limit:
                raise ValueError(
                    f"llamacpp backend: n={req.n} branches exceed llama.cpp's {limit - 1} parallel sequences "
                    "(max_new_tokens=1 has no limit)"
                )
        groups: list[tuple[list[int], set[tuple[int, ...]]]] = []
        used: list[int] = []
        for r in sorted(range(len(requests)), key=lambda r: -branch_seqs[r]):
            prompt = tuple(requests[r].prompt_ids)
            for g, (members, prompts) in enumerate(groups):
                cost = branch_seqs[r] + (prompt not in prompts)
                if used[g] + cost <= limit:
                    members.append(r)
                    prompts.add(prompt)
                    used[g] += cost
                    break
            else:
                groups.append(([r], {prompt}))
                used.append(1 + branch_seqs[r])
        return [sorted(members) for members, _ in groups]

    def next_logits(self, prompt_ids: list[int], *, guard: bool = True) -> torch.Tensor:
        """llama.cpp's logits for the token after ``prompt_ids``, [n_vocab] (``guard``: step 1 applied)."""
        self._context(len(prompt_ids), 1)
        logits = self._prefill(prompt_ids)[0]
        return guard_vocab(logits, self.vocab_size) if guard else logits

    # -- llama.cpp calls ----------------------------------------------------------------------------

    def _context(self, length: int, n_seq: int) -> Any:
        """An empty context for ``n_seq`` sequences of up to ``length`` tokens (reused if it fits)."""
        lc = self._lc
        cells = length * n_seq if self.unified_kv else length
        if self._ctx and n_seq <= self._ctx_shape[1] and cells <= self._ctx_shape[0]:
            lc.llama_memory_clear(lc.llama_get_memory(self._ctx), True)
            return self._ctx
        self._free_context()
        params = lc.llama_context_default_params()
        params.n_ctx = -(-length // 256) * 256 * n_seq
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = n_seq
        params.kv_unified = self.unified_kv
        params.n_threads = params.n_threads_batch = self.n_threads
        params.no_perf = True
        ctx = lc.llama_init_from_model(self._model, params)
        if not ctx:
            raise RuntimeError(f"llama.cpp could not create a context (n_ctx={params.n_ctx}, n_seq_max={n_seq})")
        per_seq = lc.llama_n_ctx(ctx) // (1 if self.unified_kv else n_seq)
        self._ctx, self._ctx_shape = ctx, (per_seq, n_seq)
        self._batch = lc.llama_batch_init(max(512, n_seq), 0, 1)
        self._handles += [ctx, self._batch]
        return ctx

    def _run(self, tokens: list[int], positions: list[int], seqs: list[int], outputs: int) -> torch.Tensor:
        """Decode one batch; return the raw logits of its last ``outputs`` tokens, [outputs, n_vocab]."""
        import torch

        lc, batch = self._lc, self._batch
        batch.n_tokens = len(tokens)
        for j, (t, p, s) in enumerate(zip(tokens, positions, seqs)):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = t, p, 1, int(j >= len(tokens) - outputs)
            batch.seq_id[j][0] = s
        code = lc.llama_decode(self._ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} for a batch of {len(tokens)} tokens")
        first = len(tokens) - outputs
        rows = [np.ctypeslib.as_array(lc.llama_get_logits_ith(self._ctx, first + j), shape=(self.n_vocab,))
                for j in range(outputs)]
        # A prefill chunk before the last asks for no logits (prompts over one batch of 512 tokens).
        return torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, self.n_vocab)

    def _prefill(self, prompt_ids: list[int] | tuple[int, ...], seq: int = 0) -> torch.Tensor:
        """Evaluate ``prompt_ids`` as sequence ``seq`` (in chunks of the batch size); logits after the last."""
        for start in range(0, len(prompt_ids), 512):
            chunk = list(prompt_ids[start : start + 512])
            last = start + len(chunk) == len(prompt_ids)
            logits = self._run(chunk, list(range(start, start + len(chunk))), [seq] * len(chunk), int(last))
        return logits

    def _decode(self, rows: Rows) -> tuple[Any, ...]:
        """The FIRE step for every row of ``rows`` (one group): prefill, first tokens, regular decoding."""
        import torch

        lc, requests, generators = self._lc, rows.requests, rows.generators()
        # Sequences: one per distinct prompt, then one per branch that runs past its first token.
        distinct = dict.fromkeys(tuple(req.prompt_ids) for req in requests)
        prompts = {p: s for s, p in enumerate(distinct)}
        prompt_of = [tuple(requests[rows.owner[j]].prompt_ids) for j in range(len(rows))]
        budgets = rows.budgets()
        seq = {j: len(prompts) + k for k, j in enumerate(j for j in range(len(rows)) if budgets[j] > 1)}
        self._context(max(len(p) + b for p, b in zip(prompt_of, budgets)), len(prompts) + len(seq))

        # Prefill each distinct prompt once, as its own sequence.
        logits = {p: guard_vocab(self._prefill(p, s), self.vocab_size)[0] for p, s in prompts.items()}

        # First tokens: hot (FIRE) or regular, from each request's prefill logits.
        first, raw_lp, sampled_lp = [0] * len(rows), [0.0] * len(rows), [0.0] * len(rows)
        for r, req in enumerate(requests):
            s, n = rows.start[r], req.n
            token, raw, sampled = first_tokens(logits[tuple(req.prompt_ids)].expand(n, -1), req.sampling,
                                               generators[s : s + n])
            first[s : s + n], raw_lp[s : s + n], sampled_lp[s : s + n] = token.tolist(), raw, sampled

        # A branch still running starts from a copy of its prompt's KV, then all decode together.
        state = DecodeState(len(rows), budgets=budgets)
        state.take(first, self.eos)
        memory = lc.llama_get_memory(self._ctx)
        for j in state.alive:
            lc.llama_memory_seq_cp(memory, prompts[prompt_of[j]], seq[j], -1, -1)
        position = [len(p) for p in prompt_of]
        token = [first[j] for j in state.alive]
        cfgs = [rows.sampling(j) for j in range(len(rows))]
        bar = tqdm(total=max(budgets), desc=f"{len(requests)} requests x{len(rows)}", unit="step",
                   disable=not self.progress)
        while state.alive:
            bar.update()
            # One batch: the last token of every live branch, at its position, in its own sequence.
            live = state.alive
            out = self._run(token, [position[j] for j in live], [seq[j] for j in live], len(live))
            for j in live:
                position[j] += 1
            drawn = regular_draw(guard_vocab(out, self.vocab_size), [cfgs[j] for j in live],
                                 [generators[j] for j in live]).tolist()
            keep, ended = state.take(drawn, self.eos)
            for j in ended:  # free the ended branches' sequence memory
                lc.llama_memory_seq_rm(memory, seq[j], -1, -1)
            token = [drawn[k] for k in keep]
        bar.close()
        return first, raw_lp, sampled_lp, state.rows, state.finish
