"""Step splitting keeps exact offsets; prefixes cut at the right place and name what is wrong."""

from __future__ import annotations

import json

import pytest

from prm_fire.prefixes import PrefixError, build_prefix, check_point
from prm_fire.steps import split_steps


@pytest.fixture(scope="module")
def math_solutions(shared_data) -> list[tuple[str, str]]:
    with open(shared_data / "math" / "train.jsonl") as f:
        records = [json.loads(next(f)) for _ in range(200)]
    return [(r["unique_id"], r["solution"]) for r in records]


@pytest.mark.parametrize("mode", ["line", "paragraph"])
def test_offsets_rebuild_the_exact_text_on_real_solutions(math_solutions, mode):
    for uid, text in math_solutions:
        steps = split_steps(text, mode)
        assert steps, uid
        for s in steps:
            assert text[s.start : s.end] == s.text and s.text.strip()
        # Everything between steps is separator whitespace only.
        cuts = [0, *[x for s in steps for x in (s.start, s.end)], len(text)]
        assert all(not text[a:b].strip() for a, b in zip(cuts[::2], cuts[1::2])), uid


def test_paragraph_steps_group_lines():
    text = "First, a = 2.\nSo 2a = 4.\n\nThen b = 4 + 1 = 5.\n\n\nThe answer is $\\boxed{5}$."
    assert [s.text for s in split_steps(text, "paragraph")] == [
        "First, a = 2.\nSo 2a = 4.", "Then b = 4 + 1 = 5.", "The answer is $\\boxed{5}$."]
    assert len(split_steps(text, "line")) == 4


@pytest.mark.parametrize("k", [1, 2, 3])
def test_line_k_keeps_k_minus_1_lines_verbatim(math_solutions, k):
    for uid, text in math_solutions:
        steps = split_steps(text)
        if len(steps) < k:
            continue
        prefix = build_prefix(text, f"line{k}", problem_id=uid)
        assert prefix.kept_steps == k - 1
        assert text.startswith(prefix.text)
        assert [s.text for s in split_steps(prefix.text)] == [s.text for s in steps[: k - 1]]
        assert text[len(prefix.text):].lstrip().startswith(steps[k - 1].text.lstrip())


def test_prm_point_keeps_steps_before_the_first_error():
    text = "a = 1\nb = a + 1 = 3\nc = 4"
    prefix = build_prefix(text, "prm", first_error_index=1)
    assert prefix.text == "a = 1\n" and prefix.first_error_index == 1
    assert build_prefix(text, "prm", first_error_index=0).text == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"response": "x = 1\ny = 2", "point": "line3"}, "problem 'p/1': response has 2 lines, insertion point line3 needs 3"),
        ({"response": "x\n\ny", "point": "line3", "step_mode": "paragraph"}, "has 2 paragraphs"),
        ({"response": "x = 1", "point": "prm"}, "insertion point prm needs a first-error index"),
        ({"response": "x = 1", "point": "prm", "first_error_index": 4}, "first-error index 4 is outside"),
        ({"response": "", "point": "line1"}, "response has 0 lines"),
        ({"response": "x", "point": "middle"}, "unknown insertion point 'middle'"),
    ],
)
def test_errors_name_the_problem_and_the_reason(kwargs, message):
    with pytest.raises(PrefixError, match=message):
        build_prefix(problem_id="p/1", **kwargs)


def test_check_point_accepts_any_line_k():
    assert check_point("line12") == "line12"
    with pytest.raises(PrefixError):
        check_point("line")


def test_a_first_error_index_outside_the_response_is_refused_at_every_point():
    from prm_fire.prefixes import PrefixError

    response = "a\nb\nc"
    for point in ("line1", "line2", "prm"):
        with pytest.raises(PrefixError, match="first-error index 7 is outside the response's 3 lines"):
            build_prefix(response, point, first_error_index=7)
