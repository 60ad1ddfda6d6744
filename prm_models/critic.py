"""Prompted critic: an instruct model reads the problem and the numbered steps and names the first wrong one.

ProcessBench's critic set-up (Zheng et al. 2024), in our own words: the problem and the solution's
steps, each wrapped in ``<paragraph_i>`` tags numbered from 0, and the request to put the index of the
earliest wrong paragraph in ``\\boxed{}``, or ``\\boxed{-1}`` when every paragraph is right. ``k``
replies are sampled with the generator API (``generator.branch(messages, prefix, k, SamplingConfig(
method="regular", ...))``), so any backend works (hf, llamacpp, vllm), and the verdict is the
**majority vote** of the replies that parse (:func:`parse_verdict`); a tie goes to the earliest step
(-1 counts as after the last step). No parsable reply: the critic abstains (``decided = False``,
no step flagged).

``mode="reason"`` lets the model review the steps before it answers (``max_new_tokens`` bounds the
reply); ``mode="direct"`` starts the reply with :data:`DIRECT_PREFIX` (``... \\boxed{``) so the model
writes the index at once: a few tokens per sample, for small models on a CPU. That prefix presupposes
an error ("The earliest paragraph with an error is"), and on ProcessBench both embedded models then
never answered -1; ``mode="boxed"`` (design 2) asks the same question and starts the reply with a bare
``\\boxed{``, so "no error" is as easy to write as an index.

Scores: 1.0 before the voted step, 0.0 at it and after (all 1.0 for -1); ``votes`` keeps every
sample's parsed index and ``replies`` its text.

>>> parse_verdict("Paragraph 2 adds wrongly. So the answer is \\\\boxed{2}.", 5)
2
>>> parse_verdict("All steps are right: \\\\boxed{-1}", 5), parse_verdict("\\\\boxed{7}", 5), parse_verdict("no idea", 5)
(-1, None, None)
>>> majority([2, 3, 2, None, -1]), majority([3, 1]), majority([-1, 4]), majority([None])
(2, 1, 4, None)
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.generators.base import Message
from prm_fire.problems import Problem
from prm_fire.records import Branch, BranchRequest
from prm_fire.sampling import SamplingConfig
from prm_models import StepScores
from prm_models.backed import GeneratorBacked

CriticMode = Literal["reason", "direct", "boxed"]

#: The start of the reply in ``direct`` mode: the model continues with the index.
DIRECT_PREFIX = "The earliest paragraph with an error is \\boxed{"
#: The start of the reply in each mode (``reason``: none, the model writes the whole reply).
PREFIXES: dict[str, str] = {"reason": "", "direct": DIRECT_PREFIX, "boxed": "\\boxed{"}

_INTRO = ("Below is a math problem and a solution to it. The solution is split into paragraphs, each "
          "wrapped in tags that carry its index, starting from 0.")
_TASK = {
    "reason": ("Check the paragraphs in order. Find the first paragraph that contains a mistake: a wrong "
               "calculation, a wrong fact, or a reasoning step that does not follow. Explain briefly, then "
               "give that paragraph's index inside \\boxed{}, for example \\boxed{3}. If every paragraph is "
               "correct, give \\boxed{-1}."),
    "direct": ("Find the first paragraph that contains a mistake: a wrong calculation, a wrong fact, or a "
               "reasoning step that does not follow. Answer with that paragraph's index inside \\boxed{}, for "
               "example \\boxed{3}; if every paragraph is correct, answer \\boxed{-1}."),
}
_TASK["boxed"] = _TASK["direct"]  # the same question: only the start of the reply differs


class CriticConfig(BaseModel):
    """Settings of the prompted critic. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = Field(default="hf", description="Generator backend in GENERATORS (hf, llamacpp, vllm, ...).")
    model: str = Field(default="qwen2.5-coder-0.5b", description="Instruct model for the backend.")
    generator_options: dict[str, Any] = Field(default_factory=dict, description="Extra backend options.")
    k: int = Field(default=5, ge=1, description="Replies sampled per solution (majority vote).")
    mode: CriticMode = Field(default="direct", description="'reason': review then answer; 'direct': answer at once "
                             "after a prefix that names an error; 'boxed': answer at once after a bare \\boxed{.")
    temperature: float = Field(default=0.7, ge=0, description="Sampling temperature (0: greedy; use k=1).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus mass.")
    max_new_tokens: int = Field(default=8, ge=1, description="Tokens per reply (direct mode needs few).")
    seed: int = Field(default=0, ge=0, description="Reply i draws from a generator seeded by (seed, i).")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")


class CriticScores(StepScores):
    """Step scores of the critic with its votes and replies."""

    votes: list[int | None] = Field(description="Each reply's index (-1: no error; None: not parsable or out of range).")
    verdict: int | None = Field(description="The majority vote (None: no reply parsed).")
    replies: list[str] = Field(description="Each reply as generated (the direct prefix included).")
    tokens_generated: int = Field(ge=0)
    seconds: float = Field(ge=0)
    model: str
    mode: CriticMode
    k: int


def critic_messages(problem: Problem, steps: list[str], mode: CriticMode) -> list[Message]:
    """The one user message: problem, tagged paragraphs, the task."""
    paragraphs = "\n\n".join(f"<paragraph_{i}>\n{step}\n</paragraph_{i}>" for i, step in enumerate(steps))
    text = f"{_INTRO}\n\n[Problem]\n\n{problem.question}\n\n[Solution]\n\n{paragraphs}\n\n{_TASK[mode]}"
    return [Message(role="user", content=text)]


_BOXED_INT = re.compile(r"\\boxed\{\s*(?:paragraph[_\s]*)?(-?\d+)\s*\}", re.IGNORECASE)
_BOXED_OPEN = re.compile(r"^\s*(?:paragraph[_\s]*)?(-?\d+)\s*\}", re.IGNORECASE)  # after DIRECT_PREFIX


def parse_verdict(reply: str, n_steps: int, *, opened: bool = False) -> int | None:
    """The step index a reply names: its last ``\\boxed{i}`` (or, ``opened``, the ``i}`` it starts with).

    -1 means "no error"; an index outside ``-1 .. n_steps-1`` or a reply without one gives None.
    """
    found = None
    if opened:
        start = _BOXED_OPEN.match(reply)
        if start:
            found = int(start.group(1))
    if found is None:
        boxed = _BOXED_INT.findall(reply)
        if not boxed:
            return None
        found = int(boxed[-1])
    return found if -1 <= found < n_steps else None


def majority(votes: list[int | None]) -> int | None:
    """The most frequent parsed vote; a tie goes to the earliest step (-1 ranks after every step)."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    top = max(counts.values())
    return min((v for v, c in counts.items() if c == top), key=lambda v: float("inf") if v == -1 else v)


class CriticPRM(GeneratorBacked):
    """The prompted critic (see the module docstring). ``generator`` reuses an already built backend."""

    name = "critic"
    Config = CriticConfig

    def score(self, problem: Problem, steps: list[str]) -> CriticScores:
        """Ask for the first wrong step ``k`` times; score 1 before the majority's step, 0 from it on."""
        return self.score_many([(problem, steps)])[0]

    def score_many(self, solutions: list[tuple[Problem, list[str]]]) -> list[CriticScores]:
        """Score many solutions with one batched engine call (``generator.branch_many``): each solution's
        replies are the ones it gets alone (per-reply seeds); ``seconds`` is the call's share per solution."""
        for problem, steps in solutions:
            if not steps:
                raise ValueError(f"problem {problem.id!r}: no steps to score")
        cfg = self.config
        started = time.perf_counter()
        prefix = PREFIXES[cfg.mode]
        sampling = SamplingConfig(method="regular", temperature=cfg.temperature, top_p=cfg.top_p,
                                  max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        requests = [BranchRequest(prompt_ids=self.generator.encode(critic_messages(problem, steps, cfg.mode), prefix),
                                  n=cfg.k, sampling=sampling) for problem, steps in solutions]
        replies = self.generator.branch_many(requests)
        share = (time.perf_counter() - started) / max(len(solutions), 1)
        return [self._scores(steps, branches, prefix, share) for (_, steps), branches in zip(solutions, replies)]

    def _scores(self, steps: list[str], branches: list[Branch], prefix: str, seconds: float) -> CriticScores:
        """The majority verdict of one solution's replies as step scores."""
        cfg = self.config
        votes = [parse_verdict(b.text, len(steps), opened=bool(prefix)) for b in branches]
        verdict = majority(votes)
        first = len(steps) if verdict is None or verdict == -1 else verdict
        return CriticScores(
            prm=self.name, scores=[1.0 if i < first else 0.0 for i in range(len(steps))], threshold=cfg.threshold,
            reasons=[[f"critic: {votes.count(first)} of {cfg.k} replies name this step"] if i == first else []
                     for i in range(len(steps))],
            decided=verdict is not None, votes=votes, verdict=verdict, replies=[prefix + b.text for b in branches],
            tokens_generated=sum(len(b.token_ids) for b in branches), seconds=seconds,
            model=self.model_name, mode=cfg.mode, k=cfg.k,
        )


__all__ = ["CriticConfig", "CriticMode", "CriticPRM", "CriticScores", "DIRECT_PREFIX", "PREFIXES", "critic_messages",
           "majority", "parse_verdict"]
