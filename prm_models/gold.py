"""Gold answers and reference solutions for problems that carry none, looked up in the GSM8K/MATH test files.

ProcessBench's ``gsm8k`` and ``math`` problems are taken verbatim from the GSM8K and MATH *test*
splits, so the problem text finds its gold answer there (exact match after stripping surrounding
whitespace). Its ``olympiadbench`` and ``omnimath`` problems have no such file here: they get a
:class:`MissingGoldAnswerError`, as does any text with no match. :func:`find_reference` returns the
whole test problem (worked ``solution`` and ``answer``), for the reference-guided checker.

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
        problems, origin = _test_problems(data_dir)
        return cls({key: p.answer for key, p in problems.items() if p.answer is not None}, origin)

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


def _test_problems(data_dir: str | Path) -> tuple[dict[str, Problem], str]:
    """Stripped problem text -> test problem of ``data_dir``'s GSM8K/MATH test files (cached), and their names.

    A text shared by two test problems with different answers is left out (ambiguous).
    """
    key = Path(data_dir).resolve()
    if key not in _PROBLEMS:
        problems: dict[str, Problem] = {}
        clashes: set[str] = set()
        for relative, fmt in TEST_FILES:
            for problem in load_problems(key / relative, format=fmt):
                text = problem.question.strip()
                if text in problems and problems[text].answer != problem.answer:
                    clashes.add(text)
                problems.setdefault(text, problem)
        for text in clashes:
            del problems[text]
        _PROBLEMS[key] = (problems, " + ".join(str(key / r) for r, _ in TEST_FILES))
    return _PROBLEMS[key]


_PROBLEMS: dict[Path, tuple[dict[str, Problem], str]] = {}
_CACHE: dict[Path, GoldIndex] = {}


def fill_gold_answer(problem: Problem, data_dir: str | Path) -> Problem:
    """``problem`` with its gold answer looked up in ``data_dir``'s GSM8K/MATH test files (index cached)."""
    key = Path(data_dir).resolve()
    if key not in _CACHE:
        _CACHE[key] = GoldIndex.from_data_dir(key)
    return _CACHE[key].fill(problem)


class MissingReferenceError(ValueError):
    """A problem has no worked reference solution and none could be found for it."""


def find_reference(problem: Problem, data_dir: str | Path | None) -> Problem:
    """The problem with a worked reference solution and answer: itself if it has both, else its test-file twin.

    Raises :class:`MissingReferenceError` naming the problem when it has no solution and ``data_dir``
    is None or its GSM8K/MATH test files hold no problem with the same text.
    """
    if problem.solution and problem.answer is not None:
        return problem
    if data_dir is None:
        raise MissingReferenceError(
            f"problem {problem.id!r} has no reference solution (set reference_data to the folder holding "
            "gsm8k/test.jsonl and math/test.jsonl to look ProcessBench problems up)"
        )
    problems, origin = _test_problems(data_dir)
    found = problems.get(problem.question.strip())
    if found is None or not found.solution or found.answer is None:
        raise MissingReferenceError(
            f"problem {problem.id!r} has no reference solution and its text matches no problem of "
            f"{origin} ({len(problems)} problems)"
        )
    return problem.model_copy(update={"solution": found.solution, "answer": found.answer})


__all__ = ["GoldIndex", "MissingGoldAnswerError", "MissingReferenceError", "TEST_FILES", "fill_gold_answer",
           "find_reference"]
