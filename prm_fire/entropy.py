"""Entropy-line: a PRM-free insertion point from the policy's own uncertainty over its response.

The policy reads its chat prompt and the response in one forward pass; at every response token we
take the entropy of the policy's next-token distribution there (natural log, over the tokenizer's real
vocabulary). The entropy-line is the start of the line that holds the response's highest-entropy
token among lines 2 and after (line 1 is the 1st-line point already): the place where the policy was
least sure of what to write, in the spirit of entropy-guided branching (FR3E, ARPO), with no reward
model and no reference solution.

Token-to-line rule: the response is tokenized together with the prompt (the way :meth:`encode` gives
it to a backend), and a token belongs to the last step that starts at or before the token's first
character. A newline token that ends line k (the policy deciding the line is over) therefore belongs
to line k. The re-tokenized response may differ from the token ids the policy sampled where a string
has several tokenizations; the entropies are those of the re-tokenized text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.steps import StepMode, split_steps

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Message


class EntropyLine(BaseModel):
    """Where one response's entropy-line is, and the per-line maxima it was chosen from."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    step_index: int = Field(ge=1, description="0-based step whose start is the cut (>= 1: line 2 or later).")
    token: str = Field(description="The highest-entropy token of lines 2.., as text.")
    entropy: float = Field(ge=0, description="Its next-token entropy (nats).")
    line_max: list[float] = Field(description="Per step, the highest token entropy in it (nats).")
    tokens: int = Field(ge=0, description="Response tokens the forward pass scored.")


def entropy_line_index(line_max: list[float]) -> int:
    """The 0-based step of lines 2.. with the highest maximum entropy (the first such on ties).

    >>> entropy_line_index([3.0, 0.5, 1.2, 1.2])
    2
    >>> entropy_line_index([0.1])
    Traceback (most recent call last):
    ...
    ValueError: entropy-line needs a response with at least 2 steps, got 1
    """
    if len(line_max) < 2:
        raise ValueError(f"entropy-line needs a response with at least 2 steps, got {len(line_max)}")
    return max(range(1, len(line_max)), key=lambda i: (line_max[i], -i))


def token_steps(token_starts: list[int], step_starts: list[int]) -> list[int]:
    """For each token start offset (in the response), the index of the step it belongs to: the last
    step starting at or before it (0 for text before the first step).

    >>> token_steps([0, 3, 9, 10, 15], [0, 10])
    [0, 0, 0, 1, 1]
    """
    from bisect import bisect_right

    return [max(bisect_right(step_starts, t) - 1, 0) for t in token_starts]


class EntropyScorer:
    """Computes entropy-lines with an HF causal LM (the policy's weights): one forward pass a response.

    ``model`` and ``tokenizer`` are the loaded policy (say an :class:`~prm_fire.generators.hf.HFGenerator`'s,
    so no second copy is loaded); :meth:`from_name` loads them from an embedded key, folder or hub id.
    """

    def __init__(self, model: Any, tokenizer: Any, *, vocab_size: int | None = None):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.vocab_size = vocab_size or len(tokenizer)

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> EntropyScorer:
        """Load the policy ``name`` with transformers (CPU, float32 unless ``dtype`` is given)."""
        from prm_fire.generators.hf import real_vocab_size
        from prm_fire.models import load_model

        model, tokenizer = load_model(name, **kwargs)
        return cls(model, tokenizer, vocab_size=real_vocab_size(tokenizer))

    @classmethod
    def for_generator(cls, generator: Any, model: str) -> EntropyScorer:
        """On the policy's weights: an HF generator's own loaded model (no second copy), else ``model``
        loaded with transformers (a vLLM or llama.cpp engine does not expose its logits)."""
        if hasattr(generator, "model") and hasattr(generator, "tokenizer") and hasattr(generator, "vocab_size"):
            return cls(generator.model, generator.tokenizer, vocab_size=generator.vocab_size)
        return cls.from_name(model)

    def token_entropies(self, messages: list[Message], response: str) -> tuple[list[int], list[float], list[str]]:
        """Per response token: its start offset in ``response``, the policy's entropy (nats) before it,
        and its text."""
        import torch

        from prm_fire.generators.base import chat_prompt

        prompt = chat_prompt(self.tokenizer, messages)  # as the backends encode it
        enc = self.tokenizer(prompt + response, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        first = next((j for j, (a, b) in enumerate(offsets) if b > len(prompt)), len(ids))
        if first == 0 or first == len(ids):
            return [], [], []
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0, first - 1 : len(ids) - 1, : self.vocab_size]
        logp = logits.float().log_softmax(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        starts = [max(a - len(prompt), 0) for a, _ in offsets[first:]]
        texts = [response[s:max(b - len(prompt), s)] for s, (_, b) in zip(starts, offsets[first:])]
        return starts, entropy.tolist(), texts

    def entropy_line(self, item_id: str, messages: list[Message], response: str,
                     step_mode: StepMode = "line") -> EntropyLine:
        """The entropy-line of ``response`` (needs >= 2 steps)."""
        steps = split_steps(response, step_mode)
        if len(steps) < 2:
            raise ValueError(f"problem {item_id!r}: entropy-line needs a response with at least 2 "
                             f"{step_mode}s, got {len(steps)}")
        starts, entropies, texts = self.token_entropies(messages, response)
        line_max, best = [0.0] * len(steps), [None] * len(steps)  # per step: top entropy, its token
        for j, step in enumerate(token_steps(starts, [s.start for s in steps])):
            if best[step] is None or entropies[j] > line_max[step]:
                line_max[step], best[step] = max(entropies[j], 0.0), j
        index = entropy_line_index(line_max)
        j = best[index]
        return EntropyLine(item_id=item_id, step_index=index, token="" if j is None else texts[j],
                           entropy=line_max[index], line_max=[round(x, 4) for x in line_max], tokens=len(starts))
