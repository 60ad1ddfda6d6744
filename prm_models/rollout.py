"""Monte-Carlo rollout PRM: a step is as good as the completions that still reach the gold answer.

Math-Shepherd estimation (Wang et al. 2024). For each step *i* of a solution, the *prefix ending at
step i* is the response up to the end of step *i* plus the separator that follows it, so the policy
continues at the start of step *i+1*. From it, ``m`` completions are rolled out with the policy (one
generator ``branch`` call: one prefill of the shared prefix, ``m`` regular-sampled branches) and
graded against the gold answer with :func:`prm_fire.grader.grade` (prefix + completion is graded).

- ``estimate="hard"``: 1 if any rollout is correct, else 0. ``"soft"``: the fraction correct.
- The last step's prefix is the whole response: when it has a final answer, that answer is graded
  directly (estimate 1 or 0, no rollouts: nothing is left to complete). A response that states no
  final answer (no ``\\boxed{}``/``####``, common in ProcessBench) is rolled out from the response +
  :data:`ANSWER_CUE` (``"The final answer is $\\boxed{"``) for at most :data:`ANSWER_TOKENS` tokens:
  the rollouts write down the answer the response reached rather than start a new solution.
- ``mode="linear"`` evaluates every step (S prefix evaluations).
- ``mode="binary"`` (OmegaPRM, Luo et al. 2024) assumes estimates are monotone (once no completion
  reaches the answer, none from later prefixes does) and binary-searches the first step whose
  estimate is 0: the last step first, then O(log S) prefixes. Scores then are: **evaluated steps keep
  their estimate**; unevaluated steps *before* the located step are inferred correct and score
  **1.0** (a correct completion exists through them); the located step scores 0; unevaluated steps
  *after* it score **0.0**: they are unknown, and 0 encodes the monotonicity assumption (an error is
  not repaired later) -- ProcessBench's protocol only reads the first step under the threshold, so
  these never change a prediction. ``estimates[i] is None`` marks every step that was not evaluated.
- ``screen_step`` (binary mode) evaluates that step's prefix right after the last step. If no rollout
  from it reaches the answer, the search stops: ``screened`` is set, the first error is somewhere at
  or before it, and the unevaluated steps before it score 0 and are marked ``abstained``. A data set
  filter that only keeps errors after that step (Table 5: after line 3) then pays one evaluation per
  rejected response instead of a whole search.

Many responses are scored together with :meth:`RolloutPRM.score_many` / ``score_responses``: the
searches advance in rounds, and one :func:`prm_fire.branching.branch_many` call carries every prefix
evaluation of a round (a wave of responses keeps the engine busy instead of m sequences at a time).

Prefix *i* of a problem is rolled out with its own stream ``stream_seed(seed, problem id, "rollout/i")``
(never a base response's or a branch set's), so a step's rollouts are the same in both modes: binary
mode's estimates equal linear mode's at the steps it evaluates.

A problem without a gold answer raises :class:`~prm_models.gold.MissingGoldAnswerError` naming it,
unless ``gold_data`` names a data folder: then ProcessBench-style problems (GSM8K/MATH test texts)
get their gold answer from its test files (:mod:`prm_models.gold`).
"""

from __future__ import annotations

import time
from collections.abc import Generator as Generator_
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.branching import BranchJob, BranchSet, branch_many
from prm_fire.grader import extract_answer, grade
from prm_fire.problems import Problem
from prm_fire.sampling import SamplingConfig, stream_seed
from prm_fire.steps import Step, StepMode, split_steps
from prm_models import StepScores
from prm_models.backed import GeneratorBacked
from prm_models.gold import MissingGoldAnswerError, fill_gold_answer

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

    from prm_fire.grader import Grade

#: Appended to a whole response that states no final answer, so that the rollouts write the answer it
#: reached (at most ANSWER_TOKENS tokens) instead of a new solution.
ANSWER_CUE = "\n\nThe final answer is $\\boxed{"
ANSWER_TOKENS = 24

Estimate = Literal["hard", "soft"]
SearchMode = Literal["linear", "binary"]


class RolloutConfig(BaseModel):
    """Settings of the rollout PRM. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: str = Field(default="hf", description="Generator backend in GENERATORS (hf, vllm, llamacpp, ...).")
    model: str = Field(default="qwen2.5-coder-0.5b", description="Policy model name for the backend.")
    generator_options: dict[str, Any] = Field(default_factory=dict, description="Extra backend options.")
    m: int = Field(default=4, ge=1, description="Rollouts per evaluated prefix.")
    temperature: float = Field(default=0.8, gt=0, description="Rollout temperature (regular sampling).")
    top_p: float = Field(default=1.0, gt=0, le=1, description="Rollout nucleus mass.")
    max_new_tokens: int = Field(default=256, ge=1, description="Tokens per rollout.")
    estimate: Estimate = Field(default="hard", description="'hard': any rollout correct; 'soft': fraction.")
    mode: SearchMode = Field(default="linear", description="'linear': every step; 'binary': OmegaPRM search.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")
    screen_step: int | None = Field(
        default=None, ge=0,
        description="Binary mode: after the last step, evaluate the prefix through this step; if its estimate is 0, "
                    "stop (screened: the first error is at or before it) instead of locating the error.",
    )
    seed: int = Field(default=0, ge=0,
                      description="Prefix i of a problem rolls out with stream_seed(seed, problem id, 'rollout/i').")
    step_separator: str = Field(
        default="\n\n", description="How score() joins a step list into one response (ProcessBench: blank line)."
    )
    gold_data: str | None = Field(
        default=None, description="Data folder with gsm8k/test.jsonl, math/test.jsonl to look gold answers up."
    )
    grade_timeout: float = Field(default=5.0, gt=0, description="Seconds math-verify may take per grade.")

    def sampling(self, step_index: int, item_id: str) -> SamplingConfig:
        """Regular sampling for the rollouts of prefix ``step_index`` of problem ``item_id``."""
        return SamplingConfig(
            method="regular",
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=stream_seed(self.seed, item_id, f"rollout/{step_index}"),
        )


class RolloutScores(StepScores):
    """Step scores of the rollout PRM with what produced them (for debugging and cost accounting)."""

    estimates: list[float | None] = Field(description="Measured estimate per step; None = not evaluated.")
    answers: list[list[str | None]] = Field(
        description="Final answers per evaluated step: the rollouts' (or the response's own, last step)."
    )
    first_zero_index: int | None = Field(description="First step whose estimate is 0 (binary: as located).")
    prefix_evaluations: int = Field(ge=0, description="Prefixes rolled out (generator calls).")
    graded_final: bool = Field(description="The last step was scored by grading the response's own answer.")
    screened: bool = Field(default=False, description="Stopped at screen_step: the first error is at or before it.")
    tokens_generated: int = Field(ge=0, description="Tokens generated over all rollouts.")
    seconds: float = Field(ge=0, description="Wall time of the scoring.")
    mode: SearchMode
    estimate: Estimate
    m: int
    model: str
    seed: int


def _spans_of(steps: list[str], separator: str) -> tuple[str, list[tuple[int, int]]]:
    """Join ``steps`` with ``separator``; the (start, end) of each step in the joined text."""
    spans, pos = [], 0
    for i, text in enumerate(steps):
        if i:
            pos += len(separator)
        spans.append((pos, pos + len(text)))
        pos += len(text)
    return separator.join(steps), spans


class RolloutPRM(GeneratorBacked):
    """Math-Shepherd / OmegaPRM rollout estimation with any generator backend (see the module docstring).

    ``RolloutPRM(m=2, mode="binary")`` builds a :class:`RolloutConfig` from keyword fields;
    ``generator`` reuses an already built backend (its model then overrides ``config.model``).
    The generator is built on first use.
    """

    name = "rollout"
    Config = RolloutConfig

    def with_gold(self, problem: Problem) -> Problem:
        """``problem`` with a gold answer, looked up in ``config.gold_data`` if it has none."""
        if problem.answer is not None:
            return problem
        if self.config.gold_data is None:
            raise MissingGoldAnswerError(
                f"problem {problem.id!r} has no gold answer: the rollout PRM grades rollouts against it "
                "(for ProcessBench items set gold_data to the folder holding gsm8k/test.jsonl and math/test.jsonl)"
            )
        return fill_gold_answer(problem, self.config.gold_data)

    def score(self, problem: Problem, steps: list[str]) -> RolloutScores:
        """Score a step list; the response is the steps joined with ``config.step_separator``."""
        return self.score_many([(problem, steps)])[0]

    def score_many(self, items: list[tuple[Problem, list[str]]]) -> list[RolloutScores]:
        """Score many step lists together: each search round's rollouts go to the generator in one call."""
        searches = []
        for problem, steps in items:
            if not steps:
                raise ValueError(f"problem {problem.id!r}: no steps to score")
            blank = [i for i, s in enumerate(steps) if not s.strip()]
            if blank:
                raise ValueError(f"problem {problem.id!r}: step {blank[0]} is empty")
            response, spans = _spans_of(steps, self.config.step_separator)
            searches.append(_Search(self.config, self.with_gold(problem), response, spans))
        return self._run(searches)

    def score_response(self, problem: Problem, response: str, step_mode: StepMode = "line") -> RolloutScores:
        """Score a whole response split with :func:`prm_fire.steps.split_steps` (as the tree stores it)."""
        return self.score_responses([(problem, response)], step_mode)[0]

    def score_responses(self, items: list[tuple[Problem, str]], step_mode: StepMode = "line") -> list[RolloutScores]:
        """:meth:`score_response` for many responses, their rollouts batched round by round."""
        searches = []
        for problem, response in items:
            steps: list[Step] = split_steps(response, step_mode)
            if not steps:
                raise ValueError(f"problem {problem.id!r}: the response has no non-blank step")
            searches.append(_Search(self.config, self.with_gold(problem), response, [(s.start, s.end) for s in steps]))
        return self._run(searches)

    # --- the estimation ----------------------------------------------------------------------------

    def _run(self, searches: list[_Search]) -> list[RolloutScores]:
        """Advance every search in rounds; one generator call carries every rollout a round asks for.

        A search's rollouts depend only on its own prefixes and seeds, so each response gets the scores
        it gets when scored alone, whatever else shares its rounds.
        """
        started = time.perf_counter()
        waiting = [s.next_evaluation() for s in searches]
        while any(i is not None for i in waiting):
            asked = [(s, i) for s, i in zip(searches, waiting) if i is not None]
            results = branch_many([s.job(i) for s, i in asked], generator=self.generator)
            for (search, i), result in zip(asked, results):
                search.record(i, result)
            waiting = [s.next_evaluation() if i is not None else None for s, i in zip(searches, waiting)]
        share = (time.perf_counter() - started) / max(len(searches), 1)
        return [s.scores(self.name, self.model_name, share) for s in searches]

    @staticmethod
    def _binary_search(n: int, evaluate: Any, screen: int | None = None) -> tuple[int | None, bool]:
        """(first index whose estimate is 0, screened), assuming estimates are monotone; None if the last is not 0.

        With ``screen``, that index is evaluated right after the last one: a 0 there ends the search
        (``screened``: the first zero is at or before it), otherwise the search continues after it.
        (:func:`_binary_plan` is the same search as a coroutine, which the batched rounds drive.)

        >>> values = [1, 1, 0.5, 0, 0, 0, 0]
        >>> seen = []
        >>> RolloutPRM._binary_search(len(values), lambda i: seen.append(i) or values[i]), seen
        ((3, False), [6, 3, 1, 2])
        >>> seen = []
        >>> RolloutPRM._binary_search(len(values), lambda i: seen.append(i) or values[i], screen=2), seen
        ((3, False), [6, 2, 4, 3])
        >>> RolloutPRM._binary_search(len(values), lambda i: values[i], screen=4)
        (4, True)
        >>> RolloutPRM._binary_search(3, lambda i: 1.0)
        (None, False)
        """
        plan = _binary_plan(n, screen)
        try:
            i = next(plan)
            while True:
                i = plan.send(evaluate(i))
        except StopIteration as done:
            return done.value


def _binary_plan(n: int, screen: int | None) -> Generator_[int, float, tuple[int | None, bool]]:
    """The OmegaPRM binary search as a coroutine: yields a step index, receives its estimate, returns
    (first index whose estimate is 0, screened)."""
    if (yield n - 1) != 0:
        return None, False
    lo, hi = 0, n - 1  # invariant: estimate(hi) == 0; no zero before lo
    if screen is not None and screen < hi:
        if (yield screen) == 0:
            return screen, True
        lo = screen + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (yield mid) == 0:
            hi = mid
        else:
            lo = mid + 1
    return hi, False


def _linear_plan(n: int) -> Generator_[int, float, tuple[int | None, bool]]:
    """Every step in order; returns (first index whose estimate is 0, False)."""
    values = []
    for i in range(n):
        values.append((yield i))
    return next((i for i, e in enumerate(values) if e == 0), None), False


class _Search:
    """The estimation of one response: its prefixes, the estimates so far, and the search's plan.

    :meth:`next_evaluation` runs the plan until it asks for a prefix that needs rollouts (a final
    answer the response states is graded on the spot) and returns that step index, or None when the
    search is over; :meth:`job` is that prefix's branch set, :meth:`record` takes its result.
    """

    def __init__(self, cfg: RolloutConfig, problem: Problem, response: str, spans: list[tuple[int, int]]):
        assert problem.answer is not None
        self.cfg, self.problem, self.response = cfg, problem, response
        n = self.n = len(spans)
        # Prefix i ends where step i+1 starts (separator kept); the last prefix is the whole response.
        self.prefixes = [response[: spans[i + 1][0]] for i in range(n - 1)] + [response]
        self.estimates: list[float | None] = [None] * n
        self.answers: list[list[str | None]] = [[] for _ in range(n)]
        self.calls = self.tokens = 0
        self.graded_final = False
        self.plan = _linear_plan(n) if cfg.mode == "linear" else _binary_plan(n, cfg.screen_step)
        self.result: tuple[int | None, bool] | None = None
        self._asked: int | None = None

    def next_evaluation(self) -> int | None:
        """Advance the plan to the next step that needs rollouts; None when the search is done."""
        try:
            i = next(self.plan) if self._asked is None else self.plan.send(self.estimates[self._asked])
            while self.estimates[i] is not None or self._grade_final(i):
                i = self.plan.send(self.estimates[i])
        except StopIteration as done:
            self.result, self._asked = done.value, None
            return None
        self._asked = i
        return i

    def _grade_final(self, i: int) -> bool:
        """Score the last step by grading the response's own final answer, if it states one."""
        if i != self.n - 1 or extract_answer(self.response) is None:
            return False
        verdict: Grade = grade(self.response, self.problem.answer, timeout=self.cfg.grade_timeout)
        self.estimates[i], self.answers[i], self.graded_final = float(verdict.correct), [verdict.predicted], True
        return True

    def job(self, i: int) -> BranchJob:
        """The rollouts of prefix ``i``: m regular branches with that prefix's own seed."""
        prefix, sampling = self.prefixes[i], self.cfg.sampling(i, self.problem.id)
        if i == self.n - 1:  # a finished response without a final answer: ask for the answer it reached
            prefix = self.response + ANSWER_CUE
            sampling = sampling.model_copy(update={"max_new_tokens": min(self.cfg.max_new_tokens, ANSWER_TOKENS)})
        return BranchJob(problem=self.problem, prefix=prefix, n=self.cfg.m, sampling=sampling)

    def record(self, i: int, result: BranchSet) -> None:
        self.calls += 1
        self.tokens += sum(len(b.token_ids) for b in result.branches)
        correct = result.n_correct
        self.estimates[i] = float(correct > 0) if self.cfg.estimate == "hard" else correct / self.cfg.m
        self.answers[i] = [b.answer for b in result.branches]

    def scores(self, name: str, model: str, seconds: float) -> RolloutScores:
        assert self.result is not None, "the search has not finished"
        first_zero, screened = self.result
        cfg, estimates = self.cfg, self.estimates
        if cfg.mode == "linear":
            scores = [float(e) for e in estimates]  # type: ignore[arg-type]
        else:
            scores = [
                e if e is not None else (1.0 if first_zero is None or (i < first_zero and not screened) else 0.0)
                for i, e in enumerate(estimates)
            ]
        return RolloutScores(
            prm=name,
            scores=scores,
            threshold=cfg.threshold,
            estimates=estimates,
            answers=self.answers,
            first_zero_index=first_zero,
            prefix_evaluations=self.calls,
            graded_final=self.graded_final,
            screened=screened,
            # Screened: the steps before the screen step were not evaluated; they score 0 for want of evidence.
            abstained=[e is None and i < first_zero for i, e in enumerate(estimates)] if screened else None,
            tokens_generated=self.tokens,
            seconds=seconds,
            mode=cfg.mode,
            estimate=cfg.estimate,
            m=cfg.m,
            model=model,
            seed=cfg.seed,
        )


def add_scored_response(
    tree: nx.DiGraph,
    text: str,
    scores: StepScores,
    *,
    origin: str,
    step_mode: StepMode = "line",
    grade: Grade | None = None,
) -> str:
    """Add ``text`` under the tree's problem with its per-step scores and first-error index.

    ``scores`` must have one score per step of ``split_steps(text, step_mode)`` (what
    :meth:`RolloutPRM.score_response` returns for the same ``step_mode``).
    """
    from prm_fire.tree import add_response

    n_steps = len(split_steps(text, step_mode))
    if len(scores.scores) != n_steps:
        raise ValueError(
            f"{scores.prm} scores have {len(scores.scores)} entries but the response has {n_steps} "
            f"{step_mode} steps"
        )
    return add_response(
        tree,
        text,
        origin=origin,
        step_mode=step_mode,
        grade=grade,
        prm=scores.prm,
        step_scores=list(scores.scores),
        first_error_index=scores.first_error_index,
        step_reasons=scores.reasons,
    )


__all__ = ["RolloutConfig", "RolloutPRM", "RolloutScores", "add_scored_response"]
