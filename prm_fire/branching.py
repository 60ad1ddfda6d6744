"""The Python API's core: branch a problem from a prefix and grade every branch.

>>> from prm_fire import branch, build_prefix, load_builtin, SamplingConfig, make_generator
>>> problem = load_builtin()[0]
>>> prefix = build_prefix(problem.solution, "line2", problem_id=problem.id)
>>> generator = make_generator("hf", "smollm2-135m")
>>> result = branch(problem, prefix, n=4, sampling=SamplingConfig(max_new_tokens=8), generator=generator)
>>> result.n, result.sampling.method, result.prefix.text == problem.solution.splitlines(True)[0]
(4, 'fire', True)
>>> all(b.grade.gold == "8" for b in result.branches), 0.0 <= result.pass_at(4) <= 1.0
(True, True)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.generators.base import Branch, Generator, Message
from prm_fire.grader import Grade, answers_equivalent, extract_answer, grade
from prm_fire.metrics import effective_answers, pass_at_k
from prm_fire.prefixes import Prefix
from prm_fire.problems import Problem
from prm_fire.prompts import build_messages
from prm_fire.sampling import SamplingConfig


class GradedBranch(Branch):
    """A branch with its final answer and, where the problem has a gold answer, its grade."""

    answer: str | None = Field(description="Final answer extracted from prefix + branch text.")
    grade: Grade | None = Field(default=None, description="None when the problem has no gold answer.")

    @property
    def correct(self) -> bool:
        """True iff graded correct."""
        return self.grade is not None and self.grade.correct


class BranchSet(BaseModel):
    """n graded branches of one prefix with one method: what :func:`branch` returns."""

    model_config = ConfigDict(frozen=True)

    problem_id: str
    model: str
    prefix: Prefix
    sampling: SamplingConfig
    branches: list[GradedBranch]

    @property
    def n(self) -> int:
        return len(self.branches)

    @property
    def n_correct(self) -> int:
        return sum(b.correct for b in self.branches)

    def pass_at(self, k: int) -> float:
        """Unbiased pass@k of this set (Chen et al. 2021)."""
        return pass_at_k(self.n, self.n_correct, k)

    @property
    def effective_answers(self) -> int:
        """#EA: distinct final answers among the branches (math-equivalent answers count once)."""
        return effective_answers([b.answer for b in self.branches], answers_equivalent)

    @property
    def distinct_first_tokens(self) -> int:
        return len({b.first_token_id for b in self.branches})


def as_prefix(prefix: Prefix | str) -> Prefix:
    """A :class:`Prefix` from a Prefix or from raw text (recorded as insertion point 'custom')."""
    if isinstance(prefix, Prefix):
        return prefix
    return Prefix(point="custom", text=prefix, kept_steps=0)


def grade_branch(problem: Problem, prefix: Prefix, raw: Branch, *, timeout: float = 5.0) -> GradedBranch:
    """Attach the final answer and grade to one branch; the graded text is prefix + branch."""
    full = prefix.text + raw.text
    verdict = grade(full, problem.answer, timeout=timeout) if problem.answer is not None else None
    answer = verdict.predicted if verdict is not None else extract_answer(full)
    return GradedBranch(**raw.model_dump(), answer=answer, grade=verdict)


def branch(
    problem: Problem,
    prefix: Prefix | str,
    *,
    n: int = 10,
    sampling: SamplingConfig | None = None,
    generator: Generator,
    messages: list[Message] | None = None,
) -> BranchSet:
    """Continue ``problem``'s response from ``prefix`` into ``n`` branches and grade each one.

    ``sampling`` defaults to FIRE with its default settings; ``messages`` default to the
    step-by-step prompt of :func:`prm_fire.prompts.build_messages`.
    """
    sampling = sampling or SamplingConfig()
    prefix = as_prefix(prefix)
    raw = generator.branch(messages or build_messages(problem), prefix.text, n, sampling)
    return BranchSet(
        problem_id=problem.id,
        model=generator.model_name,
        prefix=prefix,
        sampling=sampling,
        branches=[grade_branch(problem, prefix, b) for b in raw],
    )
