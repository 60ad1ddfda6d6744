"""Reference-guided step checker: judge a solution's steps against the problem's worked reference solution.

**Not a PRM result.** It reads information a PRM does not have -- the problem's worked reference
solution and its answer (GSM8K's ``<<a*b=c>>`` annotations and ``#### n``; MATH's solution and
``\\boxed{}``) -- so it is a *data-construction tool* for sets that come with solutions (labelling
first errors of sampled responses to MATH/GSM8K train problems), not a process reward model, and its
ProcessBench numbers are not comparable with a PRM's.

Rules, each recorded by name in ``reasons`` where it fires (designed from GSM8K/MATH *train* solutions):

1. ``arithmetic`` -- the step states an equation whose arithmetic is false (the symbolic checker's
   claims: SymPy in the time-bounded sandbox, :mod:`prm_models.symbolic`).
2. ``unsupported`` -- the step writes a number that follows neither from the problem nor from the
   reference: it is not a number the problem states (``25%`` also gives 0.25, 75 and 0.75; number
   words such as *dozen*, *half*, *fifty*), nor one ``+ - * /`` of two of them (``100 - 15``), nor a
   common unit constant (12, 24, 60, 365, ...), nor a small integer
   (``small_integers``, default up to 10: counts, exponents, multipliers), not a number of an earlier
   step, and matches no **reference value**: the numbers of the reference solution and answer, and
   for every GSM8K annotation ``<<expr=c>>`` the value of every sub-expression and of every partial
   sum (product) of the terms (factors) of a ``+``/``-`` (``*``/``/``) chain, so that
   ``<<16-3-4=9>>`` also supports 13, 7 and 12 (a solution that subtracts in another order). A number
   matches another when equal, or equal after rounding to the decimals written.
3. ``wrong-answer`` -- the solution's final answer (last ``\\boxed{}`` / ``####``, else the last number
   of the last step) differs from the reference answer and rules 1-2 flagged nothing: the first step
   that writes the wrong answer (a number compared as a number, :func:`writes_answer`; else the last
   step) is flagged, and the item is marked ``decided = False`` (a guess a combination may overrule).

The **answer gate** (``answer_gate``, default on): when the final answer equals the reference answer,
only rule 1 applies (a solution that reaches the reference answer by another route writes values the
reference does not hold; rule 2 would call them errors). Such an item is ``decided`` whether or not a
step is flagged.

A problem without a reference solution is an error naming it (:class:`MissingReferenceError`), never
a silent pass; ProcessBench problems (no solution of their own) are looked up by text in
``reference_data``'s GSM8K/MATH test files (:func:`prm_models.gold.find_reference`).

>>> from prm_fire.problems import Problem
>>> p = Problem(id="demo", question="Ann has 16 eggs, eats 3 and bakes with 4. How many are left?",
...             source="gsm8k", solution="She has 16-3-4 = <<16-3-4=9>>9 left.", answer="9")
>>> r = ReferencePRM().score(p, ["She uses 3 + 4 = 7 eggs.", "So 16 - 7 = 9 are left. #### 9"])
>>> r.first_error_index, r.answer_matches, r.decided
(None, True, True)
>>> r = ReferencePRM().score(p, ["She uses 3 + 4 = 7 eggs.", "So 16 + 7 = 23 are left. #### 23"])
>>> r.first_error_index, r.reasons[1]
(1, ['unsupported: 23 is in neither the problem, the earlier steps nor the reference solution'])
"""

from __future__ import annotations

import ast
import itertools
import re
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.grader import answers_equivalent, extract_answer
from prm_fire.problems import Problem
from prm_models import StepScores
from prm_models.gold import MissingReferenceError, find_reference
from prm_models.symbolic import ClaimCheck, SymbolicConfig, SymbolicPRM

Rule = Literal["arithmetic", "unsupported", "wrong-answer"]
RULES: tuple[Rule, ...] = ("arithmetic", "unsupported", "wrong-answer")

#: Numbers any problem may use without stating them (units: dozen, day, hour, week, year, percent, ...).
UNIT_CONSTANTS: tuple[int, ...] = (12, 16, 24, 30, 31, 36, 48, 52, 60, 100, 360, 365, 1000, 3600)
NUMBER_WORDS: dict[str, tuple[Fraction, ...]] = {
    "eleven": (Fraction(11),), "twelve": (Fraction(12),), "thirteen": (Fraction(13),),
    "fourteen": (Fraction(14),), "fifteen": (Fraction(15),), "sixteen": (Fraction(16),),
    "seventeen": (Fraction(17),), "eighteen": (Fraction(18),), "nineteen": (Fraction(19),),
    "twenty": (Fraction(20),), "thirty": (Fraction(30),), "forty": (Fraction(40),), "fifty": (Fraction(50),),
    "sixty": (Fraction(60),), "seventy": (Fraction(70),), "eighty": (Fraction(80),), "ninety": (Fraction(90),),
    "hundred": (Fraction(100),), "thousand": (Fraction(1000),), "million": (Fraction(10**6),),
    "two": (Fraction(2),), "three": (Fraction(3),), "four": (Fraction(4),), "five": (Fraction(5),),
    "six": (Fraction(6),), "seven": (Fraction(7),), "eight": (Fraction(8),), "nine": (Fraction(9),),
    "ten": (Fraction(10),), "twice": (Fraction(2),), "double": (Fraction(2),), "triple": (Fraction(3),),
    "thrice": (Fraction(3),), "dozen": (Fraction(12),), "half": (Fraction(1, 2),), "quarter": (Fraction(1, 4),),
    "third": (Fraction(1, 3),), "fourth": (Fraction(1, 4),), "fifth": (Fraction(1, 5),),
}
_MAX_CHAIN = 8  # partial sums/products of at most this many terms (2^8 subsets)


class ReferenceConfig(BaseModel):
    """Settings of the reference-guided checker. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_data: str | None = Field(
        default=None, description="Data folder with gsm8k/test.jsonl and math/test.jsonl to look references up."
    )
    rules: list[Rule] = Field(default_factory=lambda: list(RULES), description="Rules that may flag a step.")
    answer_gate: bool = Field(default=True, description="Final answer = reference answer: only 'arithmetic' applies.")
    small_integers: int = Field(default=10, ge=-1, description="Integers 0..this are always supported.")
    answer_timeout: float = Field(default=5.0, gt=0, description="Seconds math-verify may take on the answer.")
    symbolic: SymbolicConfig = Field(default_factory=SymbolicConfig, description="The arithmetic rule's checker.")
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")


class ReferenceScores(StepScores):
    """Step scores of the reference-guided checker, with the evidence behind them."""

    reference_answer: str = Field(description="The reference solution's final answer.")
    final_answer: str | None = Field(description="The solution's final answer as read (None: none found).")
    answer_matches: bool = Field(description="The final answer equals the reference answer.")
    claims: list[list[ClaimCheck]] = Field(description="Per step, the arithmetic claims and their verdicts.")
    unsupported: list[list[str]] = Field(description="Per step, the numbers rule 2 found unsupported.")


# --- numbers in text --------------------------------------------------------------------------------

_NUMBER = re.compile(
    r"(?<![\w.^_{])(\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\d])(\s*(?:\\?%|percent))?"
)
_LIST_MARKER = re.compile(r"^\s*(?:\*\*)?(?:step\s*)?\d+\s*[.):]\s+|\bstep\s+\d+\b", re.IGNORECASE | re.MULTILINE)
_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")


class Mention(BaseModel):
    """A number written in a text: its value, its decimals, and whether a percent sign follows."""

    model_config = ConfigDict(frozen=True)

    text: str
    value: Fraction
    decimals: int
    percent: bool


def numbers_in(text: str) -> list[Mention]:
    """The numbers of ``text`` (absolute values), without list markers (``1.``, ``Step 2:``) or subscripts.

    >>> [(m.text, str(m.value), m.percent) for m in numbers_in("Step 2: 25% of $1,200 is 0.25 * 1200 = 300.")]
    [('25%', '25', True), ('1,200', '1200', False), ('0.25', '1/4', False), ('1200', '1200', False), ('300', '300', False)]
    """
    text = _ANNOTATION.sub(" ", text)  # the annotation repeats the visible computation
    text = _LIST_MARKER.sub(" ", text)
    found = []
    for m in _NUMBER.finditer(text):
        digits = m.group(1).replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        found.append(Mention(text=m.group(0).strip(), value=Fraction(digits), decimals=decimals,
                             percent=bool(m.group(2))))
    return found


# --- reference values -------------------------------------------------------------------------------


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow) and b.denominator == 1 and abs(b) <= 12:
            return a ** int(b)
    raise ValueError(f"not arithmetic: {ast.dump(node)[:80]}")


def _chain(node: ast.AST, additive: bool) -> list[tuple[ast.AST, bool]]:
    """The operands of a ``+``/``-`` (additive) or ``*``/``/`` chain, each with its sign (False: - or /)."""
    ops = (ast.Add, ast.Sub) if additive else (ast.Mult, ast.Div)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ops):
        positive = isinstance(node.op, (ast.Add, ast.Mult))
        right = _chain(node.right, additive)
        if not positive:
            right = [(n, not s) for n, s in right]
        return _chain(node.left, additive) + right
    return [(node, True)]


def expression_values(expr: str) -> set[Fraction]:
    """Values an annotation's expression supports: itself, every sub-expression, every partial sum/product.

    >>> sorted(str(v) for v in expression_values("16-3-4"))
    ['-7', '12', '13', '16', '3', '4', '7', '9']
    >>> sorted(str(v) for v in expression_values("2*(3+4)"))
    ['14', '2', '3', '4', '7']
    """
    try:
        tree = ast.parse(expr.replace("^", "**").replace("x", "*").replace("%", "/100").strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return set()
    values: set[Fraction] = set()

    def walk(node: ast.AST) -> None:
        try:
            values.add(_value(node))
        except (ValueError, ZeroDivisionError, OverflowError):
            return
        for additive in (True, False):
            operands = _chain(node, additive)
            if len(operands) < 2:
                continue
            parts = []
            for operand, sign in operands:
                walk(operand)
                try:
                    parts.append((_value(operand), sign))
                except (ValueError, ZeroDivisionError, OverflowError):
                    return
            if len(parts) > _MAX_CHAIN:
                continue
            for size in range(2, len(parts)):
                for subset in itertools.combinations(parts, size):
                    try:
                        if additive:
                            values.add(sum((v if s else -v for v, s in subset), Fraction(0)))
                        else:
                            product = Fraction(1)
                            for v, s in subset:
                                product = product * v if s else product / v
                            values.add(product)
                    except ZeroDivisionError:
                        pass
        if isinstance(node, ast.UnaryOp):
            walk(node.operand)
        elif isinstance(node, ast.BinOp):
            walk(node.left)
            walk(node.right)

    walk(tree)
    return values | {abs(v) for v in values}


def reference_values(solution: str, answer: str) -> set[Fraction]:
    """Every value the reference solution supports: its numbers, its answer's and its annotations' values."""
    values = {m.value for m in numbers_in(solution)} | {m.value for m in numbers_in(answer)}
    for expr, result in _ANNOTATION.findall(solution):
        values |= expression_values(expr)
        values |= {m.value for m in numbers_in(result)}
    return values


def stated_numbers(question: str) -> set[Fraction]:
    """The numbers a problem states: numerals, number words, and a percentage p also as p/100, 100-p, 1-p/100.

    >>> sorted(str(v) for v in stated_numbers("A 10% discount on twelve shirts."))
    ['1/10', '10', '12', '9/10', '90']
    """
    values: set[Fraction] = set()
    for m in numbers_in(question):
        values.add(m.value)
        if m.percent:
            values |= {m.value / 100, 100 - m.value, 1 - m.value / 100}
    for word in re.findall(r"[a-z]+", question.lower()):
        values.update(NUMBER_WORDS.get(word, ()) or NUMBER_WORDS.get(word.rstrip("s"), ()))
    return values


def problem_values(question: str, small_integers: int) -> set[Fraction]:
    """What follows from the problem's numbers: each stated number, one ``+ - * /`` of two of them, small
    integers (0..``small_integers``) and unit constants.

    >>> v = problem_values("Ann had 100 dollars and spent 15.", 10)
    >>> [Fraction(x) in v for x in (85, 115, 1500, 11, 60)]
    [True, True, True, False, True]
    """
    stated = stated_numbers(question)
    values = set(stated) | {Fraction(k) for k in range(small_integers + 1)} | {Fraction(c) for c in UNIT_CONSTANTS}
    for a, b in itertools.product(stated, repeat=2):
        values |= {a + b, abs(a - b), a * b}
        if b:
            values.add(a / b)
    return values


def _matches(mention: Mention, pool: set[Fraction]) -> bool:
    """``mention`` equals a value of ``pool`` (also as a percentage), allowing for the rounding it shows."""
    candidates = [mention.value] + ([mention.value / 100] if mention.percent else [])
    if any(c in pool for c in candidates):
        return True
    if mention.decimals == 0:
        return False
    slack = Fraction(1, 10**mention.decimals)
    return any(abs(c - v) < slack for c in candidates for v in pool)


# --- the checker ------------------------------------------------------------------------------------


def _final_answer(steps: list[str]) -> str | None:
    """The solution's final answer: its last ``\\boxed{}`` / ``####``, else the last number of its last step."""
    answer = extract_answer("\n\n".join(steps))
    if answer is not None:
        return answer
    numbers = numbers_in(steps[-1])
    return numbers[-1].text.rstrip("%").strip() if numbers else None


def _as_number(answer: str) -> Fraction | None:
    """``answer`` as a number when it is one (``$1,200``, ``-3``, ``2.50``, ``25\\%``), else None.

    >>> _as_number("$1,200"), _as_number("-2.5"), _as_number("\\frac{1}{2}")
    (Fraction(1200, 1), Fraction(-5, 2), None)
    """
    text = re.sub(r"^(?:\\\$|\$)|(?:\\%|%)$", "", answer.strip()).replace(",", "").strip()
    try:
        return Fraction(text) if re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)", text) else None
    except (ValueError, ZeroDivisionError):
        return None


def writes_answer(step: str, answer: str) -> bool:
    """Whether ``step`` writes ``answer``: a number as a number of the step (``1`` is not written by
    ``15``, nor by a list marker ``1.``; a negative one with its minus sign attached), anything else as a
    whole token (not inside a longer word or number).

    >>> writes_answer("1. He has 15 apples.", "1"), writes_answer("He keeps 1 apple.", "1")
    (False, True)
    >>> writes_answer("So x = 18.0 dollars", "18"), writes_answer("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}")
    (True, True)
    >>> writes_answer("so $\\frac{1}{24}$.", "\\frac{1}{2}"), writes_answer("7x - 1 = -10", "-1")
    (False, False)
    """
    value = _as_number(answer)
    if value is not None:
        same = [m for m in numbers_in(step) if m.value == abs(value)]  # numbers_in reads no sign
        if value >= 0 or not same:
            return bool(same)
        return any(re.search(rf"[-−]{re.escape(m.text)}(?![\d.,]\d|\d)", step) for m in same)
    token = re.escape(answer.strip())
    return bool(token) and re.search(rf"(?<![\w.]){token}(?!\w|\.\d)", step) is not None


class ReferencePRM:
    """The reference-guided step checker (see the module docstring): ``ReferencePRM(reference_data=...)``."""

    name = "reference"
    Config = ReferenceConfig

    def __init__(self, config: ReferenceConfig | None = None, **fields: object) -> None:
        if config is not None and fields:
            raise ValueError(f"ReferencePRM: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or ReferenceConfig(**fields)  # type: ignore[arg-type]
        self._symbolic = SymbolicPRM(self.config.symbolic)

    def score(self, problem: Problem, steps: list[str]) -> ReferenceScores:
        """Flag the steps a rule fires on (score 0, ``reasons``); raises MissingReferenceError without a reference."""
        if not steps:
            raise ValueError(f"problem {problem.id!r}: no steps to score")
        reference = find_reference(problem, self.config.reference_data)
        assert reference.solution is not None and reference.answer is not None
        cfg = self.config
        final = _final_answer(steps)
        matches = final is not None and answers_equivalent(reference.answer, final, timeout=cfg.answer_timeout)
        rules = set(cfg.rules)
        if matches and cfg.answer_gate:
            rules.discard("unsupported")
        given = problem_values(problem.question, cfg.small_integers)
        supported = given | reference_values(reference.solution, reference.answer)
        reasons: list[list[str]] = []
        claims: list[list[ClaimCheck]] = []
        unsupported: list[list[str]] = []
        abstained: list[bool] = []
        for step in steps:
            checks = self._symbolic.check_step(step) if "arithmetic" in rules else []
            why = [f"arithmetic: {c.text} ({c.reason})" for c in checks if c.verdict == "false"]
            mentions = numbers_in(step)
            missing = [m.text for m in mentions if not _matches(m, supported)] if "unsupported" in rules else []
            why += [f"unsupported: {t} is in neither the problem, the earlier steps nor the reference solution"
                    for t in dict.fromkeys(missing)]
            supported |= {m.value for m in mentions}
            reasons.append(why)
            claims.append(checks)
            unsupported.append(missing)
            abstained.append(not mentions and not any(c.verdict in ("true", "false") for c in checks))
        decided = matches or any(reasons)
        if not decided and "wrong-answer" in rules:
            wrong = next((i for i, s in enumerate(steps) if final is not None and writes_answer(s, final)),
                         len(steps) - 1)
            reasons[wrong].append(f"wrong-answer: the final answer {final!r} differs from the reference "
                                  f"answer {reference.answer!r}; first written here")
        return ReferenceScores(
            prm=self.name, scores=[0.0 if why else 1.0 for why in reasons], threshold=cfg.threshold,
            abstained=abstained, reasons=reasons, decided=decided, reference_answer=reference.answer,
            final_answer=final, answer_matches=matches, claims=claims, unsupported=unsupported,
        )


__all__ = [
    "Mention", "MissingReferenceError", "NUMBER_WORDS", "RULES", "ReferenceConfig", "ReferencePRM",
    "ReferenceScores", "UNIT_CONSTANTS", "expression_values", "numbers_in", "problem_values", "reference_values", "stated_numbers",
    "writes_answer",
]
