"""llama.cpp backend: the GGUF file runs natively; the n branches of a prefix decode as one batch.

Same records and FIRE semantics as the HF backend (:mod:`prm_fire.generators.hf`):

* **token ids**: the chat prompt + prefix are encoded with the model's HF tokenizer (read from the
  GGUF); the GGUF tokenizer of llama.cpp gives the same ids (tested on MATH prompts), so trees from
  both backends are comparable. llama.cpp is fed these ids.
* **shared prefix, batched branches**: prompt + prefix are evaluated once, as sequence 0; branch *i*
  is sequence *i + 1*, whose KV cache starts as a copy of sequence 0's (``llama_memory_seq_cp``). Each
  decode step puts one token per live branch in one ``llama_batch``, with its own sequence id and
  position, and asks logits for each; a branch that drew EOS leaves the batch.
* **branch i does not depend on n**: by default every sequence has its own KV stream
  (``kv_unified=False``), so a branch's attention only spans its own cells and its arithmetic is the
  same whatever its siblings do. With ``unified_kv=True`` the branches share the prefix cells of one
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

from prm_fire.generators import GENERATORS
from prm_fire.generators.base import Branch, ChatBackend, DecodeState
from prm_fire.generators.hf import real_vocab_size
from prm_fire.limits import ModelShape
from prm_fire.sampling import SamplingConfig, branch_seed, draw, first_tokens, guard_vocab, regular_logits

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


@GENERATORS.register("llamacpp")
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

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing the token ids ``prompt_ids`` (prompt + prefix, already encoded)."""
        import torch

        self.check_request(prompt_ids, n)
        with torch.inference_mode():
            first, first_raw, first_sampled, rows, finish = self._decode(prompt_ids, n, sampling)
        return self.records(sampling.method, first, first_raw, first_sampled, rows, finish)

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
        return torch.from_numpy(np.stack(rows))

    def _prefill(self, prompt_ids: list[int]) -> torch.Tensor:
        """Evaluate ``prompt_ids`` as sequence 0 (in chunks of the batch size); logits after the last."""
        for start in range(0, len(prompt_ids), 512):
            chunk = prompt_ids[start : start + 512]
            last = start + len(chunk) == len(prompt_ids)
            logits = self._run(chunk, list(range(start, start + len(chunk))), [0] * len(chunk), int(last))
        return logits

    def _decode(self, prompt_ids: list[int], n: int, cfg: SamplingConfig) -> tuple[Any, ...]:
        import torch

        lc = self._lc
        generators = [torch.Generator().manual_seed(branch_seed(cfg.seed, i)) for i in range(n)]
        greedy = cfg.temperature == 0
        size = len(prompt_ids)
        n_seq = 1 + (n if cfg.max_new_tokens > 1 else 0)
        if n_seq > lc.llama_max_parallel_sequences():
            raise ValueError(
                f"llamacpp backend: n={n} branches exceed llama.cpp's {lc.llama_max_parallel_sequences() - 1} "
                "parallel sequences (max_new_tokens=1 has no limit)"
            )
        self._context(size + cfg.max_new_tokens, n_seq)

        # Prefill the shared prefix once, as sequence 0.
        logits = guard_vocab(self._prefill(prompt_ids), self.vocab_size).expand(n, -1)

        # First token: hot (FIRE) or regular.
        token, raw_lp, sampled_lp = first_tokens(logits, cfg, generators)
        first = token.tolist()

        # Branch i is sequence i + 1, starting from the prefix KV of sequence 0.
        memory = lc.llama_get_memory(self._ctx)
        if n_seq > 1:
            for i in range(n):
                lc.llama_memory_seq_cp(memory, 0, i + 1, -1, -1)
        state = DecodeState(n)
        bar = tqdm(total=cfg.max_new_tokens, desc=f"{cfg.method} x{n}", unit="step", disable=not self.progress)
        for step in range(cfg.max_new_tokens):
            bar.update()
            if step > 0:
                # One batch: the last token of every live branch, at its position, in its own sequence.
                live = state.alive
                logits = self._run(token.tolist(), [size + step - 1] * len(live), [i + 1 for i in live], len(live))
                logits = guard_vocab(logits, self.vocab_size)
                if not greedy:
                    logits = regular_logits(logits, cfg)
                token = draw(logits, [generators[i] for i in live], greedy=greedy)
            keep, ended = state.take(token.tolist(), self.eos)
            if ended:
                if n_seq > 1:  # free the ended branches' sequence memory
                    for i in ended:
                        lc.llama_memory_seq_rm(memory, i + 1, -1, -1)
                if not state.alive:
                    break
                token = token[torch.tensor(keep)]
        bar.close()
        return first, raw_lp, sampled_lp, state.rows, state.finish
