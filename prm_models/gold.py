"""Gold answers for problems that carry none: ProcessBench items, looked up in the GSM8K/MATH test files.

ProcessBench's ``gsm8k`` and ``math`` problems are taken verbatim from the GSM8K and MATH *test*
splits, so the problem text finds its gold answer there (exact match after stripping surrounding
whitespace). Its ``olympiadbench`` and ``omnimath`` problems have no such file here: they get a
:class:`MissingGoldAnswerError`, as does any text with no match.

>>> from pathlib import Path
>>> from prm_fire.problems import Problem
>>> index = GoldIndex.from_texts({"What is 2 + 3?": "5"})
>>> index.fill(Problem(id="pb-1", question="What is 2 + 3?  ", source="processbench")).answer
'5'
>>> index.fill(Problem(id="pb-2", question="What is 4 + 4?", source="processbench"))
Traceback (most recent call last):
...
prm_models.gold.MissingGoldAnswerError: problem 'pb-2' has no gold answer and its text matches no problem of the gold index (1 problems from <dict>)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prm_fire.problems import Problem, load_problems

#: Test files searched, relative to the data folder (``../shared/data``), and their formats.
TEST_FILES: tuple[tuple[str, str], ...] = (("gsm8k/test.jsonl", "gsm8k"), ("math/test.jsonl", "math"))


class MissingGoldAnswerError(ValueError):
    """A problem has no gold answer and none could be found for it."""


class GoldIndex:
    """Problem text -> gold answer, built from GSM8K/MATH test files (or any mapping)."""

    def __init__(self, answers: Mapping[str, str], origin: str) -> None:
        self.answers = dict(answers)
        self.origin = origin

    @classmethod
    def from_texts(cls, answers: Mapping[str, str], origin: str = "<dict>") -> GoldIndex:
        """An index from a ``question -> answer`` mapping (keys are stripped)."""
        return cls({q.strip(): a for q, a in answers.items()}, origin)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path) -> GoldIndex:
        """Index every problem of ``data_dir``'s GSM8K and MATH test files that has a gold answer.

        A missing file raises :class:`prm_fire.problems.DataError` naming it. When two test problems
        share a text with different answers the text is dropped from the index (ambiguous).
        """
        data_dir = Path(data_dir)
        answers: dict[str, str] = {}
        clashes: set[str] = set()
        for relative, fmt in TEST_FILES:
            for problem in load_problems(data_dir / relative, format=fmt):
                key = problem.question.strip()
                if problem.answer is None:
                    continue
                if key in answers and answers[key] != problem.answer:
                    clashes.add(key)
                answers.setdefault(key, problem.answer)
        for key in clashes:
            del answers[key]
        files = " + ".join(str(data_dir / r) for r, _ in TEST_FILES)
        return cls(answers, files)

    def lookup(self, question: str) -> str | None:
        """The gold answer of this exact problem text, or None."""
        return self.answers.get(question.strip())

    def fill(self, problem: Problem) -> Problem:
        """``problem`` with its gold answer filled in (unchanged if it already has one).

        Raises :class:`MissingGoldAnswerError` naming the problem when the text has no match.
        """
        if problem.answer is not None:
            return problem
        answer = self.lookup(problem.question)
        if answer is None:
            raise MissingGoldAnswerError(
                f"problem {problem.id!r} has no gold answer and its text matches no problem of the gold "
                f"index ({len(self.answers)} problems from {self.origin})"
            )
        return problem.model_copy(update={"answer": answer})


_CACHE: dict[Path, GoldIndex] = {}


def fill_gold_answer(problem: Problem, data_dir: str | Path) -> Problem:
    """``problem`` with its gold answer looked up in ``data_dir``'s GSM8K/MATH test files (index cached)."""
    key = Path(data_dir).resolve()
    if key not in _CACHE:
        _CACHE[key] = GoldIndex.from_data_dir(key)
    return _CACHE[key].fill(problem)


__all__ = ["GoldIndex", "MissingGoldAnswerError", "TEST_FILES", "fill_gold_answer"]
