"""Sampling configuration and the logit transforms of regular and FIRE sampling.

Order of logit transforms (the one place this is written down; every backend follows it):

1. **vocabulary guard**: logits of ids the tokenizer does not have (Qwen's output matrix has more rows
   than its vocabulary) are set to ``-inf``; every later step and every recorded log-prob sees only
   real tokens.
2. **first token after the prefix, FIRE** (``method="fire"``): keep the ``fire.top_k`` largest logits,
   divide by ``fire.temperature``, softmax, draw. Nothing else (no top-p, no min-p) applies to it.
3. **every other token** (and the first token with ``method="regular"``): divide by ``temperature``,
   keep the ``top_k`` largest (0 = off), keep the smallest set whose probability reaches ``top_p``,
   drop tokens whose probability is below ``min_p`` times the largest, softmax, draw.
   ``temperature=0`` is greedy (argmax after step 1).

Draws use the Gumbel-max trick with one ``torch.Generator`` per branch, seeded from
``(seed, branch index)``, so branch *i* depends only on the seed and *i*: not on ``n``, on batch
order, or on which other branches have already stopped.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # pragma: no cover
    import torch

Method = Literal["fire", "regular"]


class FireConfig(BaseModel):
    """The hot first token of FIRE (Flaming-hot Initiation with Regular Execution, arXiv 2410.21236).

    Defaults are those of the public reference implementation: temperature 30 over the 16 most likely
    tokens. At T=30 the top-16 are close to uniform, which is the point: the start is diversified,
    while the top-k cut keeps it among plausible tokens.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=30.0, gt=0, description="Temperature of the first token.")
    top_k: int = Field(default=16, ge=1, description="The first token is drawn among this many most likely.")


class SamplingConfig(BaseModel):
    """Everything that shapes sampling of one branch set. Validated when built.

    >>> SamplingConfig(method="regular", temperature=0.7).fire is None
    True
    >>> SamplingConfig().fire
    FireConfig(temperature=30.0, top_k=16)
    >>> SamplingConfig(top_p=1.5)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for SamplingConfig
    top_p
      Input should be less than or equal to 1 ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = Field(default="fire", description="'fire': hot first token; 'regular': none.")
    temperature: float = Field(default=0.7, ge=0, description="Regular temperature; 0 means greedy.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Nucleus mass kept; 1 = off.")
    top_k: int = Field(default=0, ge=0, description="Keep this many most likely tokens; 0 = off.")
    min_p: float = Field(default=0.0, ge=0, lt=1, description="Drop tokens below min_p x the top probability.")
    max_new_tokens: int = Field(default=512, ge=1, description="Tokens per branch, the first one included.")
    seed: int = Field(default=0, ge=0, description="Branch i draws from a generator seeded by (seed, i).")
    fire: FireConfig | None = Field(default=None, description="Hot first token; set iff method='fire'.")

    def model_post_init(self, _context: object) -> None:
        if self.method == "fire" and self.fire is None:
            object.__setattr__(self, "fire", FireConfig())
        if self.method == "regular" and self.fire is not None:
            raise ValueError("SamplingConfig: method='regular' takes no fire settings (fire must be None)")

    def with_method(self, method: Method) -> SamplingConfig:
        """The same regular settings with ``method`` changed (FIRE defaults added or dropped)."""
        fire = (self.fire or FireConfig()) if method == "fire" else None
        return self.model_copy(update={"method": method, "fire": fire})


def branch_seed(seed: int, index: int) -> int:
    """A 63-bit seed for branch ``index`` of a set seeded with ``seed`` (independent streams).

    >>> branch_seed(0, 0) == branch_seed(0, 0) != branch_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def stream_seed(seed: int, item_id: str, purpose: str) -> int:
    """The seed of one random stream, derived from (config seed, item id, purpose).

    Every stream of an experiment has one purpose: an item's base response (``"base"``), its branch
    sets at one insertion point (``"insertion/line1"``; FIRE and regular at that point share it on
    purpose, so the two methods are paired), the rollouts of one prefix (``"rollout/3"``), one round
    of a search (``"search/2"``). Different purposes give unrelated seeds, so no branch set replays a
    base response by accident. Feed the result to a set's ``SamplingConfig.seed``; branch *i* then
    draws from :func:`branch_seed` of it.

    >>> stream_seed(0, "gsm8k/7", "base") == stream_seed(0, "gsm8k/7", "base")
    True
    >>> len({stream_seed(0, "gsm8k/7", "base"), stream_seed(0, "gsm8k/7", "insertion/line1"),
    ...      stream_seed(0, "gsm8k/8", "base"), stream_seed(1, "gsm8k/7", "base")})
    4
    """
    key = int.from_bytes(hashlib.sha256(f"{item_id}\0{purpose}".encode()).digest()[:16], "little")
    return int(np.random.SeedSequence([seed, key]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def guard_vocab(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Step 1: ``-inf`` for ids at or beyond ``vocab_size`` (rows the tokenizer cannot decode)."""
    if logits.shape[-1] > vocab_size:
        logits = logits.clone()
        logits[..., vocab_size:] = float("-inf")
    return logits


def hot_logits(logits: torch.Tensor, fire: FireConfig) -> torch.Tensor:
    """Step 2: top-k of the raw logits, then divided by the hot temperature."""
    return _top_k(logits, fire.top_k) / fire.temperature


def regular_logits(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """Step 3: temperature, top-k, top-p, min-p (for ``temperature > 0``)."""
    import torch

    out = logits / cfg.temperature
    if cfg.top_k:
        out = _top_k(out, cfg.top_k)
    if cfg.top_p < 1.0:
        sorted_logits, order = out.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= cfg.top_p  # the first token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    if cfg.min_p > 0:
        probs = out.softmax(dim=-1)
        out = out.masked_fill(probs < cfg.min_p * probs.max(dim=-1, keepdim=True).values, float("-inf"))
    return out


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, logits.shape[-1])
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def draw(logits: torch.Tensor, generators: list[torch.Generator], greedy: bool = False) -> torch.Tensor:
    """One token per row of ``logits`` ([rows, vocab]) with row i's own generator (Gumbel-max).

    Gumbel-max gives exactly a draw from ``softmax(logits)``; ``greedy`` takes the argmax instead.
    """
    import torch

    if greedy:
        return logits.argmax(dim=-1)
    noise = torch.stack([torch.rand(logits.shape[-1], generator=g) for g in generators])
    gumbel = -torch.log(-torch.log(noise.clamp_min(torch.finfo(noise.dtype).tiny)))
    return (logits.float() + gumbel).argmax(dim=-1)


def regular_draw(logits: torch.Tensor, cfgs: list[SamplingConfig], generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row of ``logits`` by the regular rule (step 3) of row j's own ``cfgs[j]``.

    Rows of many requests decode in one batch; rows that share settings are transformed together.
    Every transform works row by row, so a row draws what it draws in a batch of its request alone.
    """
    import torch

    groups: dict[tuple, list[int]] = {}
    for j, cfg in enumerate(cfgs):
        groups.setdefault((cfg.temperature, cfg.top_k, cfg.top_p, cfg.min_p), []).append(j)
    if len(groups) == 1:
        cfg = cfgs[0]
        greedy = cfg.temperature == 0
        return draw(logits if greedy else regular_logits(logits, cfg), generators, greedy=greedy)
    out = torch.empty(logits.shape[0], dtype=torch.long)
    for rows in groups.values():
        cfg, index = cfgs[rows[0]], torch.tensor(rows)
        greedy = cfg.temperature == 0
        sub = logits[index] if greedy else regular_logits(logits[index], cfg)
        out[index] = draw(sub, [generators[j] for j in rows], greedy=greedy)
    return out


def first_tokens(
    logits: torch.Tensor, cfg: SamplingConfig, generators: list[torch.Generator]
) -> tuple[torch.Tensor, list[float], list[float]]:
    """The first token of each branch from the prefix's guarded next-token ``logits`` ([n, vocab]).

    FIRE draws from the hot distribution (step 2), regular from the regular one (step 3, greedy at
    temperature 0). Returns the tokens, their raw log-probs (T=1, no filter) and the log-probs under
    the distribution they were drawn from (0 for greedy).
    """
    if cfg.fire is not None:
        chosen, greedy = hot_logits(logits, cfg.fire), False
    else:
        greedy = cfg.temperature == 0
        chosen = logits if greedy else regular_logits(logits, cfg)
    token = draw(chosen, generators, greedy=greedy)
    raw = logits.log_softmax(-1).gather(1, token[:, None])[:, 0].tolist()
    sampled = [0.0] * len(raw) if greedy else chosen.log_softmax(-1).gather(1, token[:, None])[:, 0].tolist()
    return token, raw, sampled
