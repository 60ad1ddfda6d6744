"""Trained PRMs through HF transformers: the Qwen2.5-Math-PRM and Math-Shepherd input conventions.

Both read one forward pass over "problem + solution with a tag after every step" and take a
probability at each tag position; they differ in how the text is built and what the head returns.

**Qwen2.5-Math-PRM** (``qwen-prm``; hub ``Qwen/Qwen2.5-Math-PRM-7B`` / ``Qwen/Qwen2.5-Math-PRM-72B``,
as in their model cards): chat-formatted with the tokenizer's template, system = "Please reason
step by step, and put your final answer within \\boxed{}.", user = the problem, assistant = the steps
each followed by ``<extra_0>`` (``"<extra_0>".join(steps) + "<extra_0>"``), no generation prompt.
The checkpoint is loaded with ``AutoModel.from_pretrained(..., trust_remote_code=True)``; its remote
code (``Qwen2ForProcessRewardModel``, ``modeling_qwen2_rm.py``) is the Qwen2 decoder with a token
score head ``Linear(hidden, hidden) -> ReLU -> Linear(hidden, 2)``; ``outputs[0]`` is the logits
``[batch, seq, 2]``. The step score is ``softmax(logits)[..., 1]`` (positive class) at the
``<extra_0>`` positions (the model card's ``make_step_rewards``).

**Math-Shepherd** (``math-shepherd``; hub ``peiyi9979/math-shepherd-mistral-7b-prm``, as in its
model card): plain text ``f"{problem} {solution}"`` where the solution is the steps each followed by
``" ки"``, steps separated by ``"\\n"`` (``" ки\\n".join(steps) + " ки"``). The model is a causal LM
(``AutoModelForCausalLM``); the tag id is the last id of ``encode("ки")``, the candidate ids are
``encode("+ -")`` without BOS; the step score is the softmax over the ``[+, -]`` logits at the tag
position, probability of ``+``. (The card's example solutions start each step with "Step k: " because
its policy writes them; we pass steps as given.)

Several solutions are scored in one padded batch (right padding with an attention mask: positions
and causal attention of the real tokens are unchanged, so a batch equals one-by-one scoring).

A solution longer than the context (``max_length``, default the model's ``max_position_embeddings``):
``overflow="error"`` (default) raises an error naming the problem and the lengths;
``overflow="truncate"`` cuts the input at ``max_length`` tokens, scores the steps whose tag fits and
gives the others score 1.0 (no evidence), marked by ``truncated=True`` and ``scored_steps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.problems import Problem
from prm_models import StepScores

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

QWEN_PRM_7B = "Qwen/Qwen2.5-Math-PRM-7B"
QWEN_PRM_72B = "Qwen/Qwen2.5-Math-PRM-72B"
MATH_SHEPHERD_PRM = "peiyi9979/math-shepherd-mistral-7b-prm"
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

Overflow = Literal["error", "truncate"]


class HFPRMConfig(BaseModel):
    """Settings shared by the HF PRM conventions. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = Field(default=None, description="Hub id or folder; None = the convention's default.")
    batch_size: int = Field(default=4, ge=1, description="Solutions per forward pass.")
    max_length: int | None = Field(default=None, ge=1, description="Context in tokens; None = the model's.")
    overflow: Overflow = Field(default="error", description="Longer input: 'error' or 'truncate' (marked).")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")
    device: str = Field(default="cpu")
    dtype: str = Field(default="bfloat16", description="torch dtype name for loading the checkpoint.")


class HFScores(StepScores):
    """Step scores of an HF PRM, with truncation marked."""

    scored_steps: int = Field(ge=0, description="Steps whose tag was inside the context (the rest score 1.0).")
    truncated: bool = Field(description="The input was cut at max_length.")
    n_tokens: int = Field(ge=1, description="Input length before truncation.")


class _TaggedPRM:
    """Shared mechanics: render with a tag after every step, batch, find the tags, read a probability."""

    Config = HFPRMConfig
    name: str
    default_model: str
    tag: str
    auto_class: str

    def __init__(
        self,
        config: HFPRMConfig | None = None,
        *,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        **fields: Any,
    ) -> None:
        if config is not None and fields:
            raise ValueError(f"{type(self).__name__}: pass a config or fields, not both (got {sorted(fields)})")
        if (model is None) != (tokenizer is None):
            raise ValueError(f"{type(self).__name__}: a loaded model needs its tokenizer (give both or neither)")
        self.config = config or HFPRMConfig(**fields)
        self._model, self._tokenizer = model, tokenizer

    # --- loading ---------------------------------------------------------------------------------

    def _load(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self._model is None:
            import torch
            import transformers

            name = self.config.model or self.default_model
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(name, trust_remote_code=True)
            loader = getattr(transformers, self.auto_class)
            self._model = loader.from_pretrained(
                name, trust_remote_code=True, dtype=getattr(torch, self.config.dtype)
            ).to(self.config.device)
        self._model.eval()
        return self._model, self._tokenizer  # type: ignore[return-value]

    @property
    def max_length(self) -> int:
        """The context the input must fit in."""
        model, _ = self._load()
        return self.config.max_length or int(getattr(model.config, "max_position_embeddings"))

    # --- the convention (subclasses) -------------------------------------------------------------

    def render(self, problem: Problem, steps: list[str]) -> str:
        """The model's input text for one solution."""
        raise NotImplementedError

    def tag_id(self) -> int:
        """The token id whose positions carry the step scores."""
        raise NotImplementedError

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Probability that a step is correct from the model's output rows at the tag positions."""
        raise NotImplementedError

    # --- scoring ---------------------------------------------------------------------------------

    def encode(self, problem: Problem, steps: list[str]) -> list[int]:
        """Token ids of one solution, checked to hold exactly one tag per step."""
        if not steps:
            raise ValueError(f"problem {problem.id!r}: no steps to score")
        for i, step in enumerate(steps):
            if not step.strip():
                raise ValueError(f"problem {problem.id!r}: step {i} is empty")
            if self.tag in step:
                raise ValueError(f"problem {problem.id!r}: step {i} contains the step tag {self.tag!r}")
        _, tokenizer = self._load()
        ids = tokenizer(self.render(problem, steps), add_special_tokens=True)["input_ids"]
        found = sum(1 for t in ids if t == self.tag_id())
        if found != len(steps):
            raise ValueError(
                f"problem {problem.id!r}: {found} {self.tag!r} tags (id {self.tag_id()}) in the tokenized input "
                f"for {len(steps)} steps: the tokenizer does not keep the tag as one token"
            )
        return ids

    def score(self, problem: Problem, steps: list[str]) -> HFScores:
        """One probability per step (see the module docstring)."""
        return self.score_many([(problem, steps)])[0]

    def score_many(self, solutions: list[tuple[Problem, list[str]]]) -> list[HFScores]:
        """Score several solutions, ``config.batch_size`` per padded forward pass."""
        import torch

        model, _ = self._load()
        limit = self.max_length
        encoded = []
        for problem, steps in solutions:
            ids = self.encode(problem, steps)
            if len(ids) > limit and self.config.overflow == "error":
                raise ValueError(
                    f"problem {problem.id!r}: {len(ids)} tokens for {len(steps)} steps exceed the context of "
                    f"{limit} tokens (overflow='truncate' scores the steps that fit)"
                )
            encoded.append((problem, steps, ids))
        results: list[HFScores] = []
        tag = self.tag_id()
        for start in range(0, len(encoded), self.config.batch_size):
            chunk = encoded[start : start + self.config.batch_size]
            rows = [ids[:limit] for _, _, ids in chunk]
            width = max(len(r) for r in rows)
            input_ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, row in enumerate(rows):
                input_ids[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            with torch.inference_mode():
                logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device))[0]
            for r, (problem, steps, ids) in enumerate(chunk):
                positions = [p for p, t in enumerate(rows[r]) if t == tag]
                if not positions:
                    raise ValueError(
                        f"problem {problem.id!r}: no step tag within the first {limit} tokens (the problem alone "
                        "fills the context)"
                    )
                probs = self.step_probs(logits[r, positions].float()).tolist()
                scores = probs + [1.0] * (len(steps) - len(probs))
                results.append(
                    HFScores(
                        prm=self.name,
                        scores=scores,
                        threshold=self.config.threshold,
                        scored_steps=len(probs),
                        truncated=len(ids) > limit,
                        n_tokens=len(ids),
                    )
                )
        return results


class QwenMathPRM(_TaggedPRM):
    """Qwen2.5-Math-PRM convention (``Qwen/Qwen2.5-Math-PRM-7B`` by default; ``-72B`` via ``model=``)."""

    name = "qwen-prm"
    default_model = QWEN_PRM_7B
    tag = "<extra_0>"
    auto_class = "AutoModel"

    def render(self, problem: Problem, steps: list[str]) -> str:
        _, tokenizer = self._load()
        messages = [
            {"role": "system", "content": QWEN_SYSTEM},
            {"role": "user", "content": problem.question},
            {"role": "assistant", "content": self.tag.join(steps) + self.tag},
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def tag_id(self) -> int:
        _, tokenizer = self._load()
        ids = tokenizer.encode(self.tag, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"{self.name}: the tokenizer does not keep the tag {self.tag!r} as one token (it encodes to {ids}); "
                "the Qwen2.5-Math-PRM tokenizer has it"
            )
        return ids[0]

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] != 2:
            raise ValueError(f"{self.name}: expected a 2-class head, the model returned {logits.shape[-1]} outputs")
        return logits.softmax(-1)[:, 1]


class MathShepherdPRM(_TaggedPRM):
    """Math-Shepherd convention (``peiyi9979/math-shepherd-mistral-7b-prm`` by default)."""

    name = "math-shepherd"
    default_model = MATH_SHEPHERD_PRM
    tag = "ки"
    auto_class = "AutoModelForCausalLM"
    good, bad = "+", "-"

    def render(self, problem: Problem, steps: list[str]) -> str:
        return f"{problem.question} " + f" {self.tag}\n".join(steps) + f" {self.tag}"

    def tag_id(self) -> int:
        _, tokenizer = self._load()
        return tokenizer.encode(self.tag, add_special_tokens=False)[-1]

    def candidate_ids(self) -> tuple[int, int]:
        """Ids of ``+`` and ``-`` as the model card takes them: ``encode("+ -")`` without BOS."""
        _, tokenizer = self._load()
        ids = tokenizer.encode(f"{self.good} {self.bad}", add_special_tokens=False)
        if len(ids) != 2:
            raise ValueError(f"{self.name}: '+ -' should encode to 2 ids, got {ids}")
        return ids[0], ids[1]

    def step_probs(self, logits: torch.Tensor) -> torch.Tensor:
        good, bad = self.candidate_ids()
        return logits[:, [good, bad]].softmax(-1)[:, 0]


__all__ = [
    "HFPRMConfig",
    "HFScores",
    "MATH_SHEPHERD_PRM",
    "MathShepherdPRM",
    "QWEN_PRM_72B",
    "QWEN_PRM_7B",
    "QwenMathPRM",
]
