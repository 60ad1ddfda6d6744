"""The sandbox checker: grade a model's response against a gold answer.

:func:`grade` takes the final answer out of a response (:func:`extract_answer`: the last
``\\boxed{}``, else a GSM8K ``#### 42`` line) and asks two opinions whether it equals the gold answer:

* **math-verify** (HuggingFace) parses both answers into SymPy and compares them symbolically and
  numerically, so ``\\frac{1}{2}`` equals ``0.5`` and ``\\{1,2\\}`` equals ``\\{2,1\\}``;
* **normalized match** is the MATH data set's own rule (Hendrycks et al. 2021): both strings go
  through :func:`normalize_math_answer` and must then be equal.

The answer is correct when either opinion says so. The normalized match catches what math-verify
cannot parse (``\\text{(C)}``, ``\\text{Sunday}``) and decides alone when math-verify times out.

Timeouts. SymPy can spend minutes on an innocent-looking answer: comparing ``9^{9^{9}}`` with ``2``
did not finish in 60 s. math-verify 0.9 bounds its work with ``signal.alarm``, which cannot serve a
pipeline that grades from worker threads: off the main thread ``signal.signal`` raises, and ``parse``
and ``verify`` re-raise it as ``ValueError("Math-Verify ... doesn't support threaded environment")``.
Even on the main thread the alarm takes whole seconds only (a float timeout such as ``2.5`` makes
``parse`` swallow a ``TypeError`` and return no answer), it replaces any alarm of the caller, and a
timed-out ``verify`` returns ``False``, the same as a wrong answer. So here math-verify runs with its
own timeouts switched off, inside a worker process of the time-bounded sandbox
(:mod:`prm_fire.sandbox`): the caller waits at most ``timeout`` seconds for the reply, and a worker
that has not answered by then is killed (a fresh one starts on the next call).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prm_fire.sandbox import Sandbox

logger = logging.getLogger(__name__)


class Grade(BaseModel):
    """The verdict on one response, with both opinions behind it.

    ``correct`` is ``math_verify is True or normalized_match``: math-verify's opinion counts when it
    gave one, and the normalized match decides alone when math-verify failed or timed out.
    """

    model_config = ConfigDict(frozen=True)

    predicted: str | None = Field(description="Final answer extracted from the response; None if none found.")
    gold: str = Field(description="The gold answer graded against.")
    correct: bool = Field(description="The verdict: math_verify is True or normalized_match.")
    math_verify: bool | None = Field(description="math-verify's opinion; None if it failed or timed out.")
    normalized_match: bool = Field(description="Equal after the MATH normalisation (normalize_math_answer).")
    error: str | None = Field(default=None, description="What went wrong: 'timeout after 5.0s in math-verify', ...")

    @model_validator(mode="after")
    def _correct_follows_the_rule(self) -> Grade:
        expected = self.math_verify is True or self.normalized_match
        if self.correct != expected:
            raise ValueError(
                f"correct={self.correct} contradicts math_verify={self.math_verify}, "
                f"normalized_match={self.normalized_match} (the rule: math_verify is True or normalized_match)"
            )
        return self


# --- extracting the final answer ----------------------------------------------------------------

_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_GSM8K_ANSWER = re.compile(r"^####[ \t]*(.*?)\s*$", re.MULTILINE)


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: the content of its last ``\\boxed{}``, else its last ``#### x``.

    ``\\boxed{...}`` is read up to its balanced closing brace; ``\\fbox{...}`` counts as a box, and
    ``\\boxed 5`` (no braces) runs to the next ``$`` or line end. A last box that is empty or never
    closed (a truncated response) counts as no box. Returns None when there is no answer.

    >>> extract_answer(r"So $x = \\boxed{\\frac{1}{\\sqrt{2}}}$.")
    '\\\\frac{1}{\\\\sqrt{2}}'
    >>> extract_answer(r"First \\boxed{1}, then \\fbox{2}, finally $\\boxed 3$.")
    '3'
    >>> extract_answer("She pays 617 + 617 = <<617+617=1234>>1,234 dollars.\\n#### 1,234")
    '1,234'
    >>> extract_answer("The answer is 5.") is None
    True
    """
    boxes = list(_BOX.finditer(text))
    if boxes:
        answer = _box_content(text, boxes[-1].end())
        if answer:
            return answer
    lines = _GSM8K_ANSWER.findall(text)
    if lines and lines[-1]:
        return lines[-1]
    return None


def _box_content(text: str, start: int) -> str | None:
    """What follows a ``\\boxed`` command ending at ``start``: ``{balanced}`` or `` token``."""
    rest = text[start:]
    body = rest.lstrip()
    if not body.startswith("{"):
        spaced = len(body) < len(rest)  # `\boxed 5`, not `\boxed$`
        return (re.split(r"[$\n]", body, maxsplit=1)[0].strip() or None) if spaced else None
    depth = 0
    for i, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return body[1:i].strip() or None
    return None  # never closed


# --- the MATH normalisation ---------------------------------------------------------------------

_PLAIN_REPLACEMENTS = (
    ("\n", ""),  # line breaks
    ("\\!", ""),  # negative thin space
    ("\\\\", "\\"),
    ("tfrac", "frac"),
    ("dfrac", "frac"),
    ("\\left", ""),
    ("\\right", ""),
    ("^{\\circ}", ""),  # degrees
    ("^\\circ", ""),
    ("\\$", ""),  # dollars
)


_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm)\{([^{}]*)\}")
_NUMBER_WITH_UNITS = re.compile(
    r"\s*(?P<number>[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)\s+(?P<unit>[A-Za-z]{2,}(?:\s+[A-Za-z]{2,})*)\s*"
)
_NOT_UNITS = frozenset({
    "pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "and", "or", "to", "times",
    "hundred", "thousand", "million", "billion", "trillion", "dozen", "squared", "cubed",
})
"""Words after a number that change its value or make it an expression, so they are never dropped as units."""


def _strip_units(answer: str) -> str:
    """A number followed by unit words (``18 dollars``, ``\\text{18 apples}``) -> the number; else unchanged.

    Only whole words of two or more letters count as units (``18x`` and ``18 x`` stay expressions),
    and never :data:`_NOT_UNITS` (``18 million``, ``18 pi``).
    """
    unwrapped = _TEXT_WRAPPER.sub(lambda m: f" {m.group(1)} ", answer)
    match = _NUMBER_WITH_UNITS.fullmatch(unwrapped)
    if match is None or any(word.lower() in _NOT_UNITS for word in match["unit"].split()):
        return answer
    return match["number"]


def normalize_math_answer(answer: str) -> str:
    """The MATH data set's answer normalisation (``strip_string`` of Hendrycks et al. 2021).

    Steps, in the original order: drop line breaks and ``\\!``, read ``\\\\`` as ``\\``,
    ``\\tfrac``/``\\dfrac`` -> ``\\frac``, drop ``\\left``/``\\right``, degrees (``^\\circ``), ``\\$``,
    units on the right (from ``\\text{ `` with a space on), ``\\%``; give decimals a leading zero
    (``.5`` -> ``0.5``); drop a short left-hand side (``x = 3`` -> ``3``); drop spaces; brace
    ``\\sqrt3`` and ``\\frac12``; and write ``0.5`` and ``a/b`` (integers) as ``\\frac``.
    Unlike the original it never raises, braces ``\\sqrt 3`` and ``\\frac{7}2`` too, units
    after a second ``\\text{ `` go as well, and a number followed by unit words, in text or not,
    is the number (``18 dollars``, ``\\text{18 apples}``: :func:`_strip_units`).

    >>> normalize_math_answer(r"\\left( 3, \\dfrac12 \\right)")
    '(3,\\\\frac{1}{2})'
    >>> normalize_math_answer(r"x = .5"), normalize_math_answer("3/4")
    ('\\\\frac{1}{2}', '\\\\frac{3}{4}')
    >>> [normalize_math_answer(a) for a in (r"90^\\circ", r"\\$4.50", r"4 \\text{ feet}")]
    ['90', '4.50', '4']
    >>> normalize_math_answer(r"2\\sqrt3 + \\sqrt{2}"), normalize_math_answer(r"\\text{(C)}")
    ('2\\\\sqrt{3}+\\\\sqrt{2}', '\\\\text{(C)}')
    >>> [normalize_math_answer(a) for a in ("18 dollars", r"\\text{18 apples}", "18 x", "18 million")]
    ['18', '18', '18x', '18million']
    """
    s = answer
    for old, new in _PLAIN_REPLACEMENTS:
        s = s.replace(old, new)
    s = s.split("\\text{ ")[0]  # "5 \text{ cm}" -> "5 ": a unit, in MATH's convention
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 3" -> "3"
        s = sides[1]
    s = _strip_units(s)  # "18 dollars" -> "18" (needs the spaces, removed next)
    s = s.replace(" ", "")
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)  # \sqrt3 -> \sqrt{3}
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)  # \frac12 -> \frac{1}{2}
    s = re.sub(r"\\frac(\w)(?=\{)", r"\\frac{\1}", s)  # \frac1{72} -> \frac{1}{72}
    s = re.sub(r"\\frac(\{[^{}]*\})(\w)", r"\\frac\1{\2}", s)  # \frac{72}1 -> \frac{72}{1}
    if s == "0.5":
        return "\\frac{1}{2}"
    return re.sub(r"^(-?\d+)/(-?\d+)$", r"\\frac{\1}{\2}", s)  # 3/4 -> \frac{3}{4}


def _tidy(answer: str) -> str:
    """Drop what extraction can leave around an answer: unescaped ``$`` and trailing ``.,;:``.

    MATH itself has such gold answers (``2$.`` from ``$\\boxed 2$.``, ``\\text{(E)},``,
    ``-\\frac{5}{3}.``); a ``$`` is never part of an answer (dollars are ``\\$``).
    """
    return re.sub(r"(?<!\\)\$", "", answer).strip().rstrip(".,;:").rstrip()


def _normalized_equal(a: str, b: str) -> bool:
    """Equal and non-empty after :func:`normalize_math_answer` (a lone unit normalises to '')."""
    normalized = normalize_math_answer(a)
    return normalized != "" and normalized == normalize_math_answer(b)


# --- math-verify, inside the sandbox worker -----------------------------------------------------


def _math_verify_opinion(gold: str, predicted: str) -> tuple[bool | None, str | None]:
    """math-verify's verdict on two extracted answers, or (None, why not). Runs in the worker.

    Each answer is wrapped in ``\\boxed{}`` so that math-verify's LaTeX extraction reads all of it
    (``1,234`` and ``\\frac12`` alike). Its own timeouts are off: the parent process bounds the time.
    """
    from math_verify import parse, verify

    try:
        gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)  # type: ignore[arg-type]
        if not gold_parsed:
            return None, f"math-verify could not read the gold answer {gold!r}"
        predicted_parsed = parse(f"\\boxed{{{predicted}}}", parsing_timeout=None)  # type: ignore[arg-type]
        if not predicted_parsed:
            return None, f"math-verify could not read the answer {predicted!r}"
        return verify(gold_parsed, predicted_parsed, timeout_seconds=None), None
    except Exception as exc:  # noqa: BLE001 - reported in Grade.error, not swallowed
        return None, f"math-verify failed: {type(exc).__name__}: {exc}"


def _math_verify_handler() -> Callable[[dict], dict]:
    """The sandbox worker's handler: request ``{"gold", "predicted"}``, reply ``{"verdict", "error"}``."""
    import math_verify.grader
    import math_verify.parser

    # Our parent bounds the time, so math-verify's "Timeout is disabled" warning is expected: silence it.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return _math_verify_request


def _math_verify_request(request: dict) -> dict:
    verdict, error = _math_verify_opinion(request["gold"], request["predicted"])
    return {"verdict": verdict, "error": error}


_SANDBOX = Sandbox(_math_verify_handler, what="math-verify")


def _opinion(gold: str, predicted: str, timeout: float) -> tuple[bool | None, str | None]:
    """math-verify's opinion within ``timeout`` seconds, or (None, what went wrong)."""
    reply, error = _SANDBOX.call({"gold": gold, "predicted": predicted}, timeout)
    if reply is None:
        logger.warning("%s (gold %r, answer %r); its worker was killed", error, gold[:200], predicted[:200])
        return None, error
    return reply["verdict"], reply["error"]


# --- the public verdicts ------------------------------------------------------------------------


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


def answers_equivalent(a: str, b: str, *, timeout: float = 5.0) -> bool:
    """Whether two final answers (already extracted) are the same answer.

    True when their normalisations are equal (checked first, no SymPy) or math-verify says so
    within ``timeout`` seconds; a timeout counts as "not shown equal" and is logged. ``a`` is
    math-verify's reference (gold) side, which matters little: its ``verify`` is nearly symmetric.

    >>> answers_equivalent(r"\\frac{1}{2}", "0.5"), answers_equivalent(r"\\{1, 2\\}", r"\\{2,1\\}")
    (True, True)
    >>> answers_equivalent("2", "3")
    False
    """
    _check_timeout(timeout)
    a, b = _tidy(a), _tidy(b)
    if _normalized_equal(a, b):
        return True
    verdict, _ = _opinion(a, b, timeout)
    return verdict is True


def grade(response: str, gold: str, *, timeout: float = 5.0) -> Grade:
    """Grade a response against the gold answer.

    The answer is :func:`extract_answer` of the response. Both opinions are always asked, and
    ``correct = math_verify is True or normalized_match``: math-verify (SymPy, bounded by
    ``timeout`` seconds in a sandbox process) or the MATH normalisation saying "equal" suffices. A
    response with no final answer is incorrect with ``error`` saying so; a math-verify timeout or
    failure gives ``math_verify=None`` and an ``error``, and the normalized match decides alone.
    Both opinions see the two answers without stray ``$`` and trailing ``.,;:`` (MATH has gold
    answers such as ``2$.``). Safe to call from any thread.
    """
    _check_timeout(timeout)
    if not gold.strip():
        raise ValueError(f"gold answer is empty ({gold!r}); cannot grade response {response[:80]!r}")
    predicted = extract_answer(response)
    if predicted is None:
        return Grade(
            predicted=None,
            gold=gold,
            correct=False,
            math_verify=None,
            normalized_match=False,
            error="no final answer found (no \\boxed{} and no '#### ' line)",
        )
    normalized_match = _normalized_equal(_tidy(predicted), _tidy(gold))
    verdict, error = _opinion(_tidy(gold), _tidy(predicted), timeout)
    return Grade(
        predicted=predicted,
        gold=gold,
        correct=verdict is True or normalized_match,
        math_verify=verdict,
        normalized_match=normalized_match,
        error=error,
    )
