"""The search loop: rounds of batched expansions over one problem's tree, for many problems at once.

A :class:`Search` is a state machine over one tree: :meth:`Search.next_jobs` says which branch sets
the next round needs, :meth:`Search.absorb` takes them back graded, adds them to the tree, stops at
the first correct branch, else scores the new branches and makes them candidates. :func:`run_searches`
drives many searches together, one :func:`~prm_fire.branching.branch_many` call per round carrying
every active search's expansions, so an engine sees them as one batch; :func:`search` runs one.

Token accounting: a round costs the tokens its branches generated, plus the tokens a model-backed
scorer generated while scoring them (``tokens_generated`` on its scores, e.g. the critic). The root
response is given (in experiments: the policy's greedy answer, paid for once by every arm); only the
scorer's tokens on it count. Prompt and prefix tokens (prefill) are not counted.
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import networkx as nx

from prm_fire.branching import BranchJob, branch_many, job_fits
from prm_fire.grader import grade
from prm_fire.prefixes import Prefix
from prm_fire.problems import Problem
from prm_fire.records import BranchSet
from prm_fire.sampling import stream_seed
from prm_fire.search.config import SearchConfig
from prm_fire.search.cuts import Cut, CutInput, make_cut
from prm_fire.search.records import FirstCorrect, RoundRecord, SearchResult
from prm_fire.search.select import SELECTIONS, Candidate
from prm_fire.steps import split_steps
from prm_fire.tree import add_branch_set, add_response, add_scores, new_tree, node_text, tree_depth

if TYPE_CHECKING:  # pragma: no cover
    from prm_fire.generators.base import Generator


class StepScorer(Protocol):
    """What a search needs of a scorer (every ``prm_models`` scorer has it)."""

    name: str

    def score(self, problem: Problem, steps: list[str]) -> Any:
        """An object with ``scores`` (one per step) and ``first_error_index`` (None: nothing flagged)."""
        ...


class Search:
    """One problem's search over its tree, whose root response ``r0`` is already in place.

    ``cut`` is a built cut rule (one that holds a model, say); by default ``make_cut(config.cut)``.
    ``tag`` is the caller's label (an experiment's arm).
    """

    def __init__(self, problem: Problem, tree: nx.DiGraph, config: SearchConfig, *, model: str,
                 scorer: StepScorer | None = None, tag: str | None = None, cut: Cut | None = None) -> None:
        cut = cut or make_cut(config.cut)
        if config.strategy == "search" and cut.needs_scores and scorer is None:
            raise ValueError(f"cut {config.cut!r} needs a scorer (none given)")
        self.problem, self.tree, self.config, self.model = problem, tree, config, model
        self.tag = tag  # the caller's label (an experiment's arm)
        self.scorer = scorer if config.strategy == "search" else None
        self.cut = cut
        self.spent = 0
        self.root_scorer_tokens = 0
        self.rounds: list[RoundRecord] = []
        self.first_correct: FirstCorrect | None = None
        self.stop: str | None = None
        self.too_long = 0
        self._candidates: dict[str, Candidate] = {}
        self._expanded_texts: dict[str, int] = {}
        self._expansions = 0
        self._pending: list[tuple[str, str]] = []  # (parent node, prefix name) of the jobs handed out
        root = tree.nodes["r0"]["data"]
        if root.grade is not None and root.grade.correct:
            self.stop = "root-correct"
        elif self.config.strategy == "search":
            self.root_scorer_tokens = self._consider("r0")
            self.spent += self.root_scorer_tokens
            self._check_budget()

    @property
    def done(self) -> bool:
        return self.stop is not None

    def _check_budget(self) -> None:
        if self.stop is None and self.spent >= self.config.budget:
            self.stop = "budget"
        elif self.stop is None and len(self.rounds) >= self.config.max_rounds:
            self.stop = "max-rounds"

    def _consider(self, node_id: str) -> int:
        """Score a wrong node (if the search has a scorer), cut it, make it a candidate; returns scorer tokens."""
        text = node_text(self.tree, node_id)
        steps = split_steps(text, self.config.step_mode)
        tokens, first_error, mean = 0, None, 0.0
        if steps and self.scorer is not None:
            scores = self.scorer.score(self.problem, [s.text for s in steps])
            tokens = int(getattr(scores, "tokens_generated", 0) or 0)
            first_error = scores.first_error_index
            mean = sum(scores.scores) / len(scores.scores)
            add_scores(self.tree, node_id, prm=scores.prm if hasattr(scores, "prm") else self.scorer.name,
                       step_scores=list(scores.scores), first_error_index=first_error,
                       step_reasons=getattr(scores, "reasons", None))
        node = CutInput(text=text, steps=steps, first_error_index=first_error, record=self.tree.nodes[node_id]["data"],
                        problem=self.problem, step_mode=self.config.step_mode)
        kept = self.cut.keep(node) if steps else 0
        prefix_text = text[: steps[kept].start] if steps else ""
        self._candidates[node_id] = Candidate(
            node_id=node_id, order=len(self._candidates), kept_steps=kept, prefix_chars=len(prefix_text),
            mean_score=mean, times_expanded=0)
        return tokens

    def _prefix(self, node_id: str, kept: int) -> Prefix:
        text = node_text(self.tree, node_id)
        steps = split_steps(text, self.config.step_mode)
        start = steps[kept].start if steps else 0
        first_error = kept if self.cut.name == "prm" and steps else None
        return Prefix(point=self.cut.name, text=text[:start], kept_steps=kept, step_mode=self.config.step_mode,
                      first_error_index=first_error)

    def _sampling(self):
        k = self._expansions
        self._expansions += 1
        seed = stream_seed(self.config.sampling.seed, self.problem.id, f"search/{k}")
        return self.config.sampling.model_copy(update={"seed": seed})

    def next_jobs(self, fits: Callable[[BranchJob], bool] | None = None) -> list[BranchJob]:
        """The branch sets of the next round (none once the search is done).

        ``fits(job)`` says whether a job fits the engine's context; a candidate whose cut does not is
        dropped unexpanded (counted in ``too_long``; it takes no seed), and the next one is taken. A
        search left with no candidate stops as "exhausted".
        """
        if self.done:
            return []
        cfg = self.config
        jobs, self._pending = [], []
        if cfg.strategy == "best-of-n":
            empty = Prefix(point="line1", text="", kept_steps=0, step_mode=cfg.step_mode)
            for _ in range(cfg.width):
                name = f"scratch{self._expansions}"
                jobs.append(BranchJob(problem=self.problem, prefix=empty, n=cfg.n, sampling=self._sampling()))
                self._pending.append(("r0", name))
            return jobs
        rank = SELECTIONS.get(cfg.select)
        for chosen in sorted(self._refreshed(list(self._candidates.values())), key=rank):
            if len(jobs) == cfg.width:
                break
            prefix = self._prefix(chosen.node_id, chosen.kept_steps)
            self._candidates.pop(chosen.node_id)
            job = BranchJob(problem=self.problem, prefix=prefix, n=cfg.n, sampling=cfg.sampling)
            if fits is not None and not fits(job):
                self.too_long += 1
                continue
            self._expanded_texts[prefix.text] = self._expanded_texts.get(prefix.text, 0) + 1
            jobs.append(job.model_copy(update={"sampling": self._sampling()}))  # the seed only once it is sent
            self._pending.append((chosen.node_id, prefix.point))
        if not jobs:
            self.stop = "exhausted"
        return jobs

    def _refreshed(self, candidates: list[Candidate]) -> list[Candidate]:
        """Candidates with how often their cut's text was already expanded."""
        out = []
        for c in candidates:
            text = node_text(self.tree, c.node_id)[: c.prefix_chars]
            out.append(replace(c, times_expanded=self._expanded_texts.get(text, 0)))
        return out

    def absorb(self, sets: list[BranchSet]) -> None:
        """Take the round's graded branch sets (in :meth:`next_jobs` order) into the tree and go on or stop."""
        if len(sets) != len(self._pending):
            raise ValueError(f"problem {self.problem.id!r}: {len(sets)} branch sets for {len(self._pending)} jobs")
        before = self.spent
        prefixes, new_nodes, generated, correct = [], [], 0, 0
        for (parent, name), bset in zip(self._pending, sets):
            prefix_id = add_branch_set(self.tree, parent, bset, name=name)
            prefixes.append(prefix_id)
            for b in bset.branches:
                node_id = f"{prefix_id}/{b.method}/{b.index}"
                generated += len(b.token_ids)
                correct += b.correct
                if b.correct and self.first_correct is None:
                    self.first_correct = FirstCorrect(node_id=node_id, round=len(self.rounds),
                                                      tokens_before_round=before, tokens=before)
                new_nodes.append((node_id, b.correct))
        self.spent += generated
        scorer_tokens = 0
        if self.first_correct is not None:
            self.first_correct = self.first_correct.model_copy(update={"tokens": self.spent})
            self.stop = "solved"
        elif self.config.strategy == "search":
            for node_id, _ in new_nodes:
                scorer_tokens += self._consider(node_id)
            self.spent += scorer_tokens
        self.rounds.append(RoundRecord(
            index=len(self.rounds), expanded=[p for p, _ in self._pending], prefixes=prefixes,
            sequences=sum(b.n for b in sets), generated_tokens=generated, scorer_tokens=scorer_tokens,
            tokens_before=before, tokens_after=self.spent, correct=correct))
        self._pending = []
        self._check_budget()

    def result(self) -> SearchResult:
        """The search's record (also stored in the tree's graph attributes under ``"search"``)."""
        result = SearchResult(
            problem_id=self.problem.id, config=self.config, scorer=self.scorer.name if self.scorer else None,
            model=self.model, solved=self.stop in ("solved", "root-correct"), stop=self.stop or "budget",
            tokens_spent=self.spent, root_scorer_tokens=self.root_scorer_tokens, first_correct=self.first_correct,
            rounds=self.rounds, too_long=self.too_long, depth=tree_depth(self.tree), nodes=self.tree.number_of_nodes())
        self.tree.graph["search"] = result.model_dump(mode="json")
        return result


def start_search(problem: Problem, response: str, config: SearchConfig, *, model: str,
                 scorer: StepScorer | None = None, origin: str = "given", tag: str | None = None,
                 cut: Cut | None = None) -> Search:
    """A new tree holding ``response`` (graded; scored when the search has a scorer) and its search."""
    tree = new_tree(problem)
    verdict = grade(response, problem.answer) if problem.answer is not None else None
    add_response(tree, response, origin=origin, step_mode=config.step_mode, grade=verdict)
    return Search(problem, tree, config, model=model, scorer=scorer, tag=tag, cut=cut)


def run_searches(searches: Iterable[Search], generator: Generator, *, concurrent: int | None = None,
                 on_done: Callable[[Search], None] | None = None) -> None:
    """Run every search to its end, one ``branch_many`` call per round carrying all active searches' jobs.

    ``searches`` is read lazily: at most ``concurrent`` run at once (all when None), and a search that
    ends makes room for the next; ``on_done(search)`` is called as each one ends (to journal it).
    """
    waiting = iter(searches)
    active: list[Search] = []
    exhausted = False
    while True:
        while not exhausted and (concurrent is None or len(active) < concurrent):
            s = next(waiting, None)
            if s is None:
                exhausted = True
            else:
                active.append(s)
        finished = [s for s in active if s.done]
        if finished:  # retire them, then refill before the next call
            for s in finished:
                active.remove(s)
                if on_done is not None:
                    on_done(s)
            continue
        if not active:
            return
        batch = [(s, s.next_jobs(lambda job: job_fits(job, generator))) for s in active]
        batch = [(s, jobs) for s, jobs in batch if jobs]  # a search left with nothing to expand stopped
        if not batch:
            continue
        sets = branch_many([job for _, jobs in batch for job in jobs], generator=generator)
        start = 0
        for s, jobs in batch:
            s.absorb(sets[start:start + len(jobs)])
            start += len(jobs)


def search(problem: Problem, response: str, config: SearchConfig, *, generator: Generator,
           scorer: StepScorer | None = None, origin: str = "given", cut: Cut | None = None,
           ) -> tuple[nx.DiGraph, SearchResult]:
    """Search one problem from ``response`` (a wrong solution); returns the tree and the result."""
    s = start_search(problem, response, config, model=generator.model_name, scorer=scorer, origin=origin, cut=cut)
    run_searches([s], generator)
    return s.tree, s.result()
