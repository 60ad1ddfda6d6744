"""Tests for prm_fire/grader.py: real MATH answer pairs, extraction, real solutions, threads, timeouts."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from prm_fire.grader import Grade, answers_equivalent, extract_answer, grade, normalize_math_answer


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def math_train(shared_data: Path) -> list[dict]:
    return read_jsonl(shared_data / "math/train.jsonl")


def boxed(answer: str) -> str:
    """A response whose final answer is ``answer``."""
    return f"Putting it together, the answer is $\\boxed{{{answer}}}$."


# --- real MATH answers against an equivalent rewriting and a wrong answer -----------------------

# (gold: an `answer` of math/train.jsonl, an equivalent rewriting, a wrong answer)
MATH_PAIRS = [
    pytest.param(r"\frac{1}{2}", "0.5", "0.05", id="frac-vs-decimal"),
    pytest.param("0.5", r"\frac{1}{2}", r"\frac{1}{5}", id="decimal-vs-frac"),
    pytest.param(r"\frac{1}{3}", r"\dfrac{1}{3}", r"\frac{1}{4}", id="dfrac"),
    pytest.param(r"\frac12", r"\frac{1}{2}", r"\frac{1}{3}", id="unbraced-frac"),
    pytest.param(r"-\dfrac{3}{4}", r"-\frac34", r"\frac34", id="negative-dfrac-vs-frac34"),
    pytest.param(r"-\frac{2}{5}", "-0.4", r"\frac{2}{5}", id="negative-frac-vs-decimal"),
    pytest.param(r"3\sqrt{5}", r"\sqrt{45}", r"5\sqrt{3}", id="sqrt-simplified"),
    pytest.param(r"\frac{2\sqrt{35}}{35}", r"\frac{2}{\sqrt{35}}", r"\frac{\sqrt{35}}{35}", id="sqrt-rationalised"),
    pytest.param(r"\sqrt{2}+1", r"1 + \sqrt2", r"\sqrt{2}-1", id="sqrt-sum"),
    pytest.param(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", r"\frac{\sqrt{2}}{2}", id="sqrt-over-2"),
    pytest.param(r"\left[-3,-\frac{4}{3}\right)", "[-3, -4/3)", r"[-3,-\frac{4}{3}]", id="interval-half-open"),
    pytest.param(
        r"(-\infty,3] \cup [4,\infty)", r"(-\infty, 3]\cup[4, \infty)", r"(-\infty,3) \cup (4,\infty)", id="interval-union"
    ),
    pytest.param(r"90^\circ", "90", "180", id="degrees"),
    pytest.param(r"50^{\circ}", r"50^\circ", "40", id="degrees-braced"),
    pytest.param(r"\text{(C)}", r"\text{(C)}", r"\text{(D)}", id="choice-letter"),
    pytest.param(r"\text{Sunday}", r"\text{ Sunday}", r"\text{Monday}", id="weekday"),
    pytest.param(r"\text{even}", "even", "odd", id="parity-word"),
    pytest.param("(0, 12)", "(0,12)", "(12, 0)", id="tuple-spaces"),
    pytest.param("(-4,4)", r"\left( -4, 4 \right)", "(4,-4)", id="tuple-negative"),
    pytest.param(r"\{4,5,7\}", r"\{7, 5, 4\}", r"\{4,5,6\}", id="set-order"),
    pytest.param("-11, -1, 1, 11", "11, 1, -1, -11", "-11, -1, 1", id="solution-list"),
    pytest.param("-32", "-32.0", "32", id="negative-integer"),
    pytest.param("408.04", "408.040", "408.4", id="decimal"),
    pytest.param("8+4i", "4i + 8", "8-4i", id="complex"),
    pytest.param(r"\frac{41\pi}{4}", r"\frac{41}{4}\pi", r"\frac{41}{4}", id="pi"),
    pytest.param(r"-3x^2 +9x -11", "-11 + 9x - 3x^2", "-3x^2 + 9x + 11", id="polynomial"),
    pytest.param(r"x=\frac{1}{67}", r"\frac{1}{67}", r"\frac{1}{76}", id="equation-lhs"),
    pytest.param(r"\$3.54", "3.54", "3.45", id="dollars"),
    pytest.param(r"\$306,\!956.63", "306956.63", "306956.36", id="dollars-thousands"),
    pytest.param(r"1,\!000,\!000", "1000000", "100000", id="thousands-separator"),
    pytest.param(r"64\%", "64", "46", id="percent"),
    pytest.param(r"4 \text{ feet}", "4", "5", id="units"),
    pytest.param(r"\approx 8.24 \text{ mph}", "8.24", "8.42", id="approx-units"),
    pytest.param(r"\begin{pmatrix} 6 \\ -33 \end{pmatrix}", r"\begin{pmatrix}6\\-33\end{pmatrix}",
                 r"\begin{pmatrix} -33 \\ 6 \end{pmatrix}", id="vector"),
    pytest.param("861_{12}", "861_{12}", "816_{12}", id="base-subscript"),
    # gold answers of MATH with leftovers of their extraction: trailing punctuation, a stray $
    pytest.param(r"\text{(E)},", r"\text{(E)}", r"\text{(B)}", id="gold-trailing-comma"),
    pytest.param(r"-\frac{5}{3}.", "-5/3", "5/3", id="gold-trailing-period"),
    pytest.param("2$.", "2", "3", id="gold-stray-dollar"),
    pytest.param(r"7\text{ hours}.", "7", "8", id="gold-units-period"),
]

KNOWN_FALSE_POSITIVES = [
    pytest.param(
        "2215_6", "2215_7",
        marks=pytest.mark.xfail(strict=True, reason="math-verify 0.9 drops base subscripts: 2215_7 reads as 2215"),
        id="wrong-base",
    ),
]


def test_table_golds_are_real_math_answers(math_train: list[dict]) -> None:
    answers = {record["answer"] for record in math_train}
    golds = [case.values[0] for case in MATH_PAIRS + KNOWN_FALSE_POSITIVES]
    assert [gold for gold in golds if gold not in answers] == []


@pytest.mark.parametrize(("gold", "same", "wrong"), MATH_PAIRS)
def test_equivalent_rewriting_is_correct(gold: str, same: str, wrong: str) -> None:
    result = grade(boxed(same), gold)
    assert result.correct, result
    assert result.predicted == same and result.error is None
    assert answers_equivalent(gold, same)


@pytest.mark.parametrize(("gold", "same", "wrong"), MATH_PAIRS)
def test_wrong_answer_is_incorrect(gold: str, same: str, wrong: str) -> None:
    result = grade(boxed(wrong), gold)
    assert not result.correct, result
    assert result.math_verify is False and not result.normalized_match and result.error is None
    assert not answers_equivalent(gold, wrong)


@pytest.mark.parametrize(("gold", "wrong"), KNOWN_FALSE_POSITIVES)
def test_known_false_positives(gold: str, wrong: str) -> None:
    assert not grade(boxed(wrong), gold).correct


# (an answer written by a model, whether it equals the gold answer 18): units and text around a number.
UNITS_AROUND_A_NUMBER = [
    pytest.param("18 dollars", True, id="plain-unit"),
    pytest.param(r"\text{18 apples}", True, id="number-and-unit-in-text"),
    pytest.param(r"18 \text{apples}", True, id="unit-in-text"),
    pytest.param("18 square meters", True, id="two-unit-words"),
    pytest.param("1,018 dollars", False, id="thousands-with-unit-is-another-number"),
    pytest.param("19 dollars", False, id="wrong-number-with-unit"),
    pytest.param("18x", False, id="variable-no-space"),
    pytest.param("18 x", False, id="single-letter-is-a-variable"),
    pytest.param("18 million", False, id="multiplier-word"),
    pytest.param("18 pi", False, id="pi-word"),
    pytest.param(r"18 \pi", False, id="pi-command"),
    pytest.param(r"\text{18 apples and 2 pears}", False, id="two-numbers-in-text"),
]


@pytest.mark.parametrize(("answer", "equal"), UNITS_AROUND_A_NUMBER)
def test_units_and_text_around_a_number(answer: str, equal: bool) -> None:
    assert grade(boxed(answer), "18").correct is equal
    assert answers_equivalent("18", answer) is equal


def test_normalized_match_decides_where_math_verify_cannot_parse() -> None:
    # math-verify reads \text{A5}_{11} as a symbol and A5_{11} as a*5; only the strings agree.
    result = grade(boxed(r"\text{A5}_{11}"), r"\text{A5}_{11}")
    assert result.correct and result.normalized_match


# --- normalize_math_answer --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "normalized"),
    [
        pytest.param(r"\dfrac{3}{4}", r"\frac{3}{4}", id="dfrac"),
        pytest.param(r"\tfrac34", r"\frac{3}{4}", id="tfrac-unbraced"),
        pytest.param(r"\frac1{72}", r"\frac{1}{72}", id="frac-half-braced"),
        pytest.param("3/4", r"\frac{3}{4}", id="slash"),
        pytest.param("-3/4", r"\frac{-3}{4}", id="slash-negative"),
        pytest.param("x/4", "x/4", id="slash-not-integers"),
        pytest.param("0.5", r"\frac{1}{2}", id="one-half"),
        pytest.param(".75", "0.75", id="leading-zero"),
        pytest.param(r"\{.5, 1\}", r"\{0.5,1\}", id="leading-zero-in-braces"),
        pytest.param(r"\left( 1, 2 \right)", "(1,2)", id="left-right-spaces"),
        pytest.param(r"30^{\circ}", "30", id="degrees"),
        pytest.param(r"\$1,\!657", "1,657", id="dollars-thin-space"),
        pytest.param(r"5225 \text{ cubic inches}", "5225", id="units"),
        pytest.param(r"40\%", "40", id="percent"),
        pytest.param("k = 3", "3", id="short-lhs"),
        pytest.param("AB=9, CD=4", "AB=9,CD=4", id="two-equations-kept"),
        pytest.param(r"2\sqrt 3", r"2\sqrt{3}", id="sqrt-unbraced"),
        pytest.param(r"\text{(C)}", r"\text{(C)}", id="text-kept"),
    ],
)
def test_normalize_math_answer(answer: str, normalized: str) -> None:
    assert normalize_math_answer(answer) == normalized


# --- extract_answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        pytest.param(r"so $\boxed{\frac{1}{\sqrt{2}}}$.", r"\frac{1}{\sqrt{2}}", id="nested-braces"),
        pytest.param(r"$\boxed{1}$ no; $\boxed{ 2 }$, no: $\boxed{(3, \{4\})}$", r"(3, \{4\})", id="last-of-several"),
        pytest.param(r"\fbox{7}", "7", id="fbox"),
        pytest.param(r"the answer is $\boxed 9$.", "9", id="boxed-without-braces"),
        pytest.param("so she earns 18.\n#### 1,234", "1,234", id="gsm8k"),
        pytest.param("#### 3\ncheck: 4\n#### 5 ", "5", id="gsm8k-last"),
        pytest.param(r"\boxed{4} and later #### 5", "4", id="boxed-beats-hashes"),
        pytest.param(r"$\boxed{\frac{1}{2}" + "\n#### 7", "7", id="unclosed-box-falls-back"),
        pytest.param("The answer is 42.", None, id="none"),
        pytest.param(r"\boxed{} nothing", None, id="empty-box"),
        pytest.param(r"\boxed{\frac{1}{2}", None, id="unclosed-box"),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_extract_answer_matches_math_answer_field(math_train: list[dict]) -> None:
    mismatches = {
        r["unique_id"]: (r["answer"], extract_answer(r["solution"]))
        for r in math_train
        if extract_answer(r["solution"]) != r["answer"].strip()
    }
    # The data set's own slips: `$\boxed 2$.` was cut as "2$.", and two solutions box nothing.
    assert mismatches == {
        "train/algebra/24014.json": ("2$.", "2"),
        "train/algebra/25040.json": ("9$.", "9"),
        "train/number_theory/7115.json": ("", None),
        "train/number_theory/7117.json": ("", None),
    }


# --- real solutions ---------------------------------------------------------------------------


def test_real_math_solutions_grade_correct(math_train: list[dict]) -> None:
    odd_golds = [r for r in math_train if re.search(r"[.,]$|(?<!\\)\$", r["answer"])]
    assert len(odd_golds) == 8  # trailing punctuation or a stray $, kept to check _tidy on real data
    for record in math_train[:50] + odd_golds:
        result = grade(record["solution"], record["answer"])
        assert result.correct and result.math_verify and result.error is None, (record["unique_id"], result)


def test_real_gsm8k_solutions(shared_data: Path) -> None:
    for record in read_jsonl(shared_data / "gsm8k/test.jsonl")[:20]:
        gold = record["answer"].rsplit("####", 1)[1].strip()
        assert grade(record["answer"], gold).correct, record["answer"]
        assert not grade(record["answer"], str(int(gold.replace(",", "")) + 1)).correct


def test_no_final_answer() -> None:
    result = grade("I believe the answer is 5.", "5")
    assert result == Grade(
        predicted=None,
        gold="5",
        correct=False,
        math_verify=None,
        normalized_match=False,
        error="no final answer found (no \\boxed{} and no '#### ' line)",
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gold answer is empty"):
        grade(boxed("1"), " ")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        grade(boxed("1"), "1", timeout=0)


def test_grade_record_checks_the_rule_and_round_trips() -> None:
    result = grade(boxed(r"\frac12"), "0.5")
    assert Grade.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError, match="correct=True contradicts math_verify=False"):
        Grade(predicted="1", gold="2", correct=True, math_verify=False, normalized_match=False)


# --- threads and timeouts ---------------------------------------------------------------------


def test_threads_give_the_same_verdicts() -> None:
    # A limit no loaded machine reaches (the default 5 s tripped at load 30): only the threads may differ.
    cases = [(boxed(p.values[i]), p.values[0], 300.0) for p in MATH_PAIRS[:12] for i in (1, 2)]
    on_main = [grade(response, gold, timeout=limit) for response, gold, limit in cases]
    with ThreadPoolExecutor(max_workers=3) as pool:
        in_pool = list(pool.map(lambda case: grade(case[0], case[1], timeout=case[2]), cases))
    in_thread: list[Grade] = []
    thread = threading.Thread(target=lambda: in_thread.extend(grade(r, g, timeout=t) for r, g, t in cases))
    thread.start()
    thread.join()
    assert in_pool == on_main and in_thread == on_main
    assert [g.correct for g in on_main] == [True, False] * 12


# Without a time limit math-verify 0.9 compares these for over a minute (checked by hand: both
# still running after 60 s); SymPy works out 9^(9^9), which has some 370 million digits.
HANGS = r"9^{9^{9}}"


def test_timeout_bounds_a_hanging_comparison() -> None:
    # Without the timeout this call would not return (the comparison runs for minutes): the error says the
    # worker was stopped at the limit, and the next call is served.
    assert grade(boxed("1"), "1").math_verify
    result = grade(boxed(HANGS), "2", timeout=1.0)
    assert result == Grade(
        predicted=HANGS, gold="2", correct=False, math_verify=None, normalized_match=False,
        error="timeout after 1.0s in math-verify",
    )
    assert grade(boxed("3"), "3").math_verify  # and grading goes on (in a fresh worker if no other is idle)


def test_timeout_off_the_main_thread_and_normalized_match_decides() -> None:
    # "2\text{ }9^{9^{9}}" normalises to "2" (MATH cuts units at "\text{ "), while math-verify
    # multiplies it out and hangs: the normalized match alone decides.
    pathological = r"2\text{ }" + HANGS
    with ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(grade, boxed("1"), "1").result()  # warm the pool's worker(s)
        results = list(pool.map(lambda gold: grade(boxed(pathological), gold, timeout=1.0), ["2", "3"]))
    opinions = [(r.correct, r.math_verify, r.normalized_match) for r in results]
    assert opinions == [(True, None, True), (False, None, False)]
    assert all(r.error == "timeout after 1.0s in math-verify" for r in results)
    assert not answers_equivalent("3", pathological, timeout=0.5)
