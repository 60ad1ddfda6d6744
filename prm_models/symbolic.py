"""Symbolic step checker: a step with a false arithmetic claim is incorrect. No model.

A *claim* is a chain of numeric expressions joined by ``=`` (or ``\\approx``) inside a step, in plain
text or LaTeX: ``16 - 3 - 4 = 10``, ``\\(\\frac{3}{4} \\cdot 8 = 6\\)``, ``Total = 20 + 22 + 66 = 108``
(the numeric links of a chain), GSM8K's ``<<48/2=24>>``, ``3 x 4 = 12``, ``$12 \\times 5 = $60``,
``1,200``, ``25%``. Each adjacent pair of numeric sides is checked exactly with SymPy. Divisions
with a remainder (``706 \\div 7 = 100 R 6``, ``194 ÷ 11 = 17 with a remainder of 7``) are checked as
``a = b q + r``, ``0 <= r < b`` (:func:`remainder_claims`).

The checker is built to be **precise rather than greedy**: a false positive flags a correct step.

* Only *numeric* sides are read: numbers, ``+ - * / ^``, ``\\times \\cdot \\div``, ``\\frac``,
  ``\\sqrt``, brackets, implicit products such as ``2(3+4)``; ``$``, ``\\$``, ``\\boxed``, degree
  signs are ignored; ``x`` is a product only between numbers (``3 x 4``). Claims with free variables
  (``x - 2 = 20``, ``4x = 100``) are skipped, not checked as identities (an equation is not an
  identity, and telling them apart from the text is unreliable).
* A side touching something that is not arithmetic is dropped: a letter or subscript before it
  (``O_c - 2 = 20`` is not ``-2 = 20``), a word that works as an operator (``1/3 of 18 = 6`` is not
  ``18 = 6``; also *times, plus, and, by, per, ...*), a scale or unit word after it (``= 1.5 million``,
  ``= 50 cents``, ``= 25 percent``), ``|``, ``!``, ``_``, an unknown LaTeX command, a ratio ``3:4``.
* ``number = number`` (no operator on either side) is never a verdict: it is a unit conversion or a
  label far more often than arithmetic (``$0.50 = 50 cents``).
* Rounding is allowed: when a side is a single number with *d* decimals, the other side may differ by
  less than ``10^-d`` (``20/3600 = 0.0056``, ``100/3 = 33``) unless it needs no rounding at *d*
  decimals (``7 + 6 = 14`` is false). Sides computed from decimals (``33.33 \\times 3 = 100``) and
  ``\\approx`` claims get a relative tolerance (``rel_tolerance``). A percentage is read both as
  a hundredth and as a plain number; the claim is false only if false both ways.

A step's score is 0 if any claim is false, else 1; the step **abstains** (score 1, ``abstained``)
when no claim got a verdict. SymPy runs in a worker process of the time-bounded sandbox
(:mod:`prm_fire.sandbox`), one request per claim, each bounded by ``claim_timeout`` seconds: a claim
such as ``9^{9^{9}} = 1`` times out, is recorded as ``timeout`` and counts as no verdict.

>>> from prm_fire.problems import Problem
>>> p = Problem(id="demo", question="?", source="builtin")
>>> r = SymbolicPRM().score(p, ["So 7 + 10 = 17.", "Then 17 - 3 = 15.", "The answer is 14."])
>>> r.scores, r.abstained, r.first_error_index
([1.0, 0.0, 1.0], [False, False, True], 1)
>>> [(c.text, c.verdict) for c in r.claims[1]]
[('17 - 3 = 15', 'false')]
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prm_fire.problems import Problem
from prm_fire.sandbox import Sandbox
from prm_models import StepScores

Verdict = Literal["true", "false", "skipped", "timeout", "error"]


class SymbolicConfig(BaseModel):
    """Settings of the symbolic step checker. Validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_timeout: float = Field(default=2.0, gt=0, description="Seconds SymPy may spend on one claim.")
    rel_tolerance: float = Field(
        default=0.01, ge=0, lt=1,
        description="Relative slack for \\approx claims and for sides computed from decimals (rounded inputs).",
    )
    threshold: float = Field(default=0.5, ge=0, le=1, description="A step scoring below it is incorrect.")
    max_claim_chars: int = Field(default=300, ge=10, description="Longer claims are skipped (not parsed).")


class ClaimCheck(BaseModel):
    """One checked (or skipped) claim: ``lhs = rhs`` as written, its verdict and why."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The claim as it reads in the step (both sides).")
    lhs: str = Field(description="Left side as the SymPy expression checked ('' if not parsed).")
    rhs: str = Field(description="Right side as the SymPy expression checked.")
    approx: bool = Field(default=False, description="Written with \\approx / ≈.")
    verdict: Verdict = Field(description="true/false: checked; skipped/timeout/error: no verdict.")
    reason: str | None = Field(default=None, description="Why skipped, the error, or the values compared.")


class SymbolicScores(StepScores):
    """Step scores of the symbolic checker with the claims behind every score."""

    claims: list[list[ClaimCheck]] = Field(description="Per step, the claims found and their verdicts.")


# --- text -> tokens --------------------------------------------------------------------------------

_REPLACEMENTS = (
    ("×", r" \times "), ("·", r" \cdot "), ("⋅", r" \cdot "), ("÷", r" \div "), ("−", "-"), ("–", "-"),
    ("≈", r" \approx "), ("²", "^2"), ("³", "^3"), ("°", " "), ("\\$", "$"), ("\\%", "%"), ("{,}", ","),
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", " "), ("\\right", " "),
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad\b|~")
# `x` as a product sign: `3 x 4`, `(3) x 4`, `3x4`; never `2x + 3`.
_TIMES_X = re.compile(r"(?<=[\d)])[ \t]+x[ \t]+(?=[\d($(])|(?<=\d)x(?=\d)")

_TOKEN = re.compile(
    r"(?P<open>\\\(|\\\[)|(?P<close>\\\)|\\\])|(?P<newline>\\\\)"
    r"|(?P<textcmd>\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{[^{}]*\})"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<gsm8k><<|>>)|(?P<word>[A-Za-z]+)|(?P<space>\s+)|(?P<char>.)",
    re.DOTALL,
)

_OPS = {"+": "+", "-": "-", "*": "*", "/": "/", "^": "^"}
_CMD_OPS = {r"\times": "*", r"\cdot": "*", r"\ast": "*", r"\div": "/"}
_SAFE_CMDS = {  # (inequalities are not: `k < \frac{180}{123} \approx 0.732 < k` is no claim about 180/123)
    r"\implies", r"\Rightarrow",
    r"\rightarrow", r"\to", r"\Longrightarrow", r"\therefore", r"\quad", r"\qquad", r"\hline", r"\end",
    r"\begin", r"\displaystyle",
}
# Words that make the number next to them part of a bigger expression than the symbols show.
_OPERATOR_WORDS = {
    "of", "times", "plus", "minus", "by", "over", "and", "or", "divided", "multiplied", "than", "per",
    "into", "less", "more", "with", "from", "to", "half", "twice", "double", "triple", "thrice", "mod",
    "modulo", "percent", "percentage", "out", "each", "every", "squared", "cubed", "power", "root",
    "hundred", "thousand", "million", "millions", "billion", "billions", "trillion", "dozen", "dozens",
    "cent", "cents", "pennies", "penny", "point", "x", "th", "st", "nd", "rd", "choose", "remainder", "r",
    "factorial", "base", "binary", "octal", "hexadecimal", "log", "ln", "sin", "cos", "tan", "exp", "sqrt",
}
# ... and those that do it one word later: `= 1010 in binary`, `= 2 hours and 30 minutes`
# (not `of`: `= 430 loaves of bread` is fine).
_SECOND_WORDS = {"and", "base", "binary", "octal", "hexadecimal", "remainder", "r", "choose", "mod", "modulo",
                 "hundred", "thousand", "million", "billion", "dozen", "squared", "cubed", "percent"}
_SAFE_CHARS = set(",;.?\"&")


class _Tok:
    __slots__ = ("kind", "text", "space_before")

    def __init__(self, kind: str, text: str, space_before: bool) -> None:
        self.kind, self.text, self.space_before = kind, text, space_before

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.kind}:{self.text!r}"


def _normalize(text: str) -> str:
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = _DEGREES.sub(" ", text)
    text = _SPACING.sub(" ", text)
    return _TIMES_X.sub(" * ", text)


def _tokens(text: str) -> list[_Tok]:
    """Tokens with kinds: num, op, eq, approx, pct, neutral, lpar, rpar, frac, sqrt, safe, word, opword, other."""
    out: list[_Tok] = []
    space = True
    for m in _TOKEN.finditer(_normalize(text)):
        kind, value = m.lastgroup, m.group()
        if kind == "space":
            space = True
            continue
        if kind in ("open", "close", "newline", "gsm8k"):
            kind = "safe"
        elif kind == "textcmd":
            inner = re.findall(r"[a-z]+", value[value.index("{") + 1 : -1].lower())
            if not inner:
                kind = "safe"
            elif _OPERATOR_WORDS.intersection(inner) or len(inner) == 1 and len(inner[0]) == 1:
                kind = "opword"  # `\text{ of }`, `58 \mathrm{R} 5`
            else:
                kind = "word"
        elif kind == "cmd":
            if value in _CMD_OPS:
                kind, value = "op", _CMD_OPS[value]
            elif value == r"\frac":
                kind = "frac"
            elif value == r"\sqrt":
                kind = "sqrt"
            elif value == r"\approx":
                kind = "approx"
            elif value == r"\boxed":
                kind = "neutral"
            elif value in _SAFE_CMDS:
                kind = "safe"
            else:
                kind = "other"
        elif kind == "word":
            kind = "opword" if value.lower() in _OPERATOR_WORDS else "word" if len(value) > 1 else "other"
        elif kind == "char":
            if value in _OPS:
                kind = "op"
            elif value == "=":
                kind = "eq"
            elif value == "%":
                kind = "pct"
            elif value == "$":
                kind = "neutral"
            elif value in "([{":
                kind = "lpar"
            elif value in ")]}":
                kind = "rpar"
            elif value == ":":
                kind = "colon"
            elif value in _SAFE_CHARS:
                kind = "safe"
            else:
                kind = "other"
        out.append(_Tok(kind, value, space))
        space = False
    return out


_RUN_KINDS = {"num", "op", "eq", "approx", "pct", "neutral", "lpar", "rpar", "frac", "sqrt"}


def _safe_before(toks: list[_Tok], i: int) -> bool:
    """Whether the token before index ``i`` (a run's start) cannot be part of the expression."""
    first = next((t for t in toks[i:] if t.kind != "neutral"), toks[i])
    if i == 0:
        return not (first.kind == "op" and first.text != "-")
    t = toks[i - 1]
    if first.kind == "op" and (first.text != "-" or t.kind != "safe"):
        return False  # `Value of the house - $22,800 = ...`: the words are an operand
    if t.kind == "word":
        return toks[i].space_before  # `5cm`-like glue is not a boundary
    if t.kind == "colon":
        return toks[i].space_before  # `Total: 3 + 4`, not the ratio `3:4`
    return t.kind == "safe"


def _safe_after(toks: list[_Tok], j: int) -> bool:
    """Whether the token at index ``j`` (after a run's end) cannot be part of the expression."""
    if j >= len(toks):
        return True
    t = toks[j]
    if t.kind == "word":  # `= 12 apples`, but not `= 1010 in binary`, `= 2 hours and 30 minutes`
        return t.space_before and not (j + 1 < len(toks) and toks[j + 1].text.lower() in _SECOND_WORDS)
    if t.kind == "colon":
        return t.space_before
    if t.kind == "safe":
        # `3.` / `3,` end a sentence; `,` then a digit could be a list of numbers: fine either way.
        return True
    return False


def _runs(toks: list[_Tok]) -> list[tuple[int, int]]:
    spans, i = [], 0
    while i < len(toks):
        if toks[i].kind in _RUN_KINDS:
            j = i
            while j < len(toks) and toks[j].kind in _RUN_KINDS:
                j += 1
            if any(t.kind in ("eq", "approx") for t in toks[i:j]):
                spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


# --- one side -> a SymPy expression string (recursive descent) ---------------------------------


class _Unparsable(Exception):
    pass


class _Side:
    """A parsed side: its SymPy source (percent as 1/100 and percent as plain) and its shape."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks: list[_Tok] = []
        space = False
        for t in toks:  # drop `$` and `\boxed`, keeping the space before them
            if t.kind == "neutral":
                space = space or t.space_before
            else:
                self.toks.append(_Tok(t.kind, t.text, t.space_before or space))
                space = False
        self.atomic = False  # a single number (possibly in brackets, with %)
        self.decimals = 0  # decimals of that number
        self.has_decimal = any(t.kind == "num" and "." in t.text for t in self.toks)
        self.has_pct = any(t.kind == "pct" for t in self.toks)
        self.expr = self._parse(percent=True)
        self.expr_plain = self._parse(percent=False) if self.has_pct else self.expr
        nums = [t for t in self.toks if t.kind == "num"]
        ops = [t for t in self.toks if t.kind in ("op", "frac", "sqrt")]
        if len(nums) == 1 and not ops:
            self.atomic = True
            self.decimals = len(nums[0].text.split(".")[1]) if "." in nums[0].text else 0
        elif len(nums) == 1 and [t.text for t in ops] == ["-"] and self.toks[0].text == "-":
            self.atomic = True  # a negative number
            self.decimals = len(nums[0].text.split(".")[1]) if "." in nums[0].text else 0

    def _parse(self, percent: bool) -> str:
        self._pos, self._percent = 0, percent
        if not self.toks:
            raise _Unparsable("empty side")
        out = self._expr()
        if self._pos != len(self.toks):
            raise _Unparsable(f"unexpected {self.toks[self._pos].text!r}")
        return out

    def _peek(self) -> _Tok | None:
        return self.toks[self._pos] if self._pos < len(self.toks) else None

    def _take(self, kind: str, text: str | None = None) -> _Tok:
        t = self._peek()
        if t is None or t.kind != kind or (text is not None and t.text != text):
            raise _Unparsable(f"expected {text or kind}")
        self._pos += 1
        return t

    def _expr(self) -> str:
        out = self._term()
        while (t := self._peek()) is not None and t.kind == "op" and t.text in "+-":
            self._pos += 1
            out = f"{out} {t.text} {self._term()}"
        return out

    def _term(self) -> str:
        out = self._unary()
        while (t := self._peek()) is not None:
            if t.kind == "op" and t.text in "*/":
                self._pos += 1
                out = f"({out}) {t.text} ({self._unary()})"
            elif t.kind in ("lpar", "sqrt"):
                if t.kind == "lpar" and t.text == "{":
                    raise _Unparsable("brace after a factor")
                out = f"({out}) * ({self._power()})"  # implicit product: 2(3 + 4), 2\sqrt{3}
            else:
                break
        return out

    def _unary(self) -> str:
        t = self._peek()
        if t is not None and t.kind == "op" and t.text in "+-":
            self._pos += 1
            return f"{t.text}({self._unary()})"
        return self._power()

    def _power(self) -> str:
        base = self._atom()
        t = self._peek()
        if t is not None and t.kind == "op" and t.text == "^":
            self._pos += 1
            nxt = self._peek()
            if nxt is not None and nxt.kind == "op" and nxt.text == "-":
                self._pos += 1
                return f"({base}) ** (-({self._atom()}))"
            return f"({base}) ** ({self._power()})"
        return base

    def _group(self) -> str:
        t = self._take("lpar")
        inner = self._expr()
        closing = {"(": ")", "[": "]", "{": "}"}[t.text]
        self._take("rpar", closing)
        return f"({inner})"

    def _atom(self) -> str:
        t = self._peek()
        if t is None:
            raise _Unparsable("missing operand")
        if t.kind == "num":
            self._pos += 1
            digits = t.text.replace(",", "")
            value = f"Rational('{digits}')" if "." in digits else f"Integer({digits})"
            nxt = self._peek()
            if nxt is not None and nxt.kind == "num":
                raise _Unparsable("two numbers side by side (a mixed number?)")
            if nxt is not None and nxt.kind == "frac":
                raise _Unparsable("a number before \\frac (a mixed number?)")
            if nxt is not None and nxt.kind == "pct":
                self._pos += 1
                return f"({value} / 100)" if self._percent else value
            return value
        if t.kind == "lpar":
            return self._group()
        if t.kind == "frac":
            self._pos += 1
            num, den = self._braced(), self._braced()
            return f"(({num}) / ({den}))"
        if t.kind == "sqrt":
            self._pos += 1
            nxt = self._peek()
            if nxt is not None and nxt.kind == "lpar" and nxt.text == "[":
                index = self._group()
                return f"root({self._braced()}, {index})"
            return f"sqrt({self._braced()})"
        raise _Unparsable(f"unexpected {t.text!r}")

    def _braced(self) -> str:
        t = self._peek()
        if t is not None and t.kind == "lpar" and t.text == "{":
            return self._group()
        if t is not None and t.kind == "num" and len(t.text) == 1:  # \frac12
            self._pos += 1
            return f"Integer({t.text})"
        raise _Unparsable("expected {...} after \\frac or \\sqrt")


def _strip_unmatched(toks: list[_Tok], leading: bool) -> list[_Tok]:
    """Drop unmatched opening (leading side) / closing (trailing side) brackets and neutral tokens."""
    toks = list(toks)
    while True:
        depth = 0
        unmatched = None
        for k, t in enumerate(toks):
            if t.kind == "lpar":
                depth += 1
            elif t.kind == "rpar":
                depth -= 1
                if depth < 0 and not leading:
                    unmatched = k
                    break
        if leading and depth > 0 and toks and toks[0].kind == "lpar":
            toks = toks[1:]
            continue
        if unmatched is not None and unmatched == len(toks) - 1:
            toks = toks[:-1]
            continue
        while toks and toks[0].kind == "neutral":
            toks = toks[1:]
        while toks and toks[-1].kind == "neutral":
            toks = toks[:-1]
        return toks


def _text(toks: list[_Tok]) -> str:
    return "".join((" " if t.space_before and k else "") + t.text for k, t in enumerate(toks))


class _Claim:
    def __init__(self, lhs: _Side, rhs: _Side, approx: bool, text: str) -> None:
        self.lhs, self.rhs, self.approx, self.text = lhs, rhs, approx, text


def find_claims(step: str) -> tuple[list[_Claim], list[ClaimCheck]]:
    """The checkable claims of a step, and the ones seen but skipped (with the reason)."""
    toks = _tokens(step)
    claims: list[_Claim] = []
    skipped: list[ClaimCheck] = []
    for i, j in _runs(toks):
        run = toks[i:j]
        parts: list[list[_Tok]] = [[]]
        links: list[bool] = []
        for t in run:
            if t.kind in ("eq", "approx"):
                parts.append([])
                links.append(t.kind == "approx")
            else:
                parts[-1].append(t)
        sides: list[_Side | None] = []
        for k, part in enumerate(parts):
            if k == 0 and not _safe_before(toks, i):
                sides.append(None)
                continue
            if k == len(parts) - 1 and not _safe_after(toks, j):
                sides.append(None)
                continue
            if k == 0:
                part = _strip_unmatched(part, leading=True)
            if k == len(parts) - 1:
                part = _strip_unmatched(part, leading=False)
            try:
                sides.append(_Side(part))
            except (_Unparsable, RecursionError):
                sides.append(None)
        for k, approx in enumerate(links):
            lhs, rhs = sides[k], sides[k + 1]
            if lhs is None or rhs is None:
                continue
            text = f"{_text(lhs.toks)} {'≈' if approx else '='} {_text(rhs.toks)}"
            if lhs.atomic and rhs.atomic:
                skipped.append(ClaimCheck(text=text, lhs=lhs.expr, rhs=rhs.expr, approx=approx, verdict="skipped",
                                          reason="number = number: a unit conversion or label, not arithmetic"))
                continue
            claims.append(_Claim(lhs, rhs, approx, text))
    return claims, skipped


# --- division with remainder: `706 \div 7 = 100 R 6`, `194 ÷ 11 = 17 with a remainder of 7` -------------

_INT = r"(\d{1,3}(?:,\d{3})+|\d+)"
_REMAINDER = re.compile(
    rf"(?<![\w.^_]){_INT}\s*(?:\\div|/|divided by)\s*{_INT}\s*(?:=|is|equals)\s*{_INT}\s*,?\s*"
    rf"(?:(?:with\s+)?(?:a\s+)?remainder(?:\s+of)?|\\(?:mathrm|text)\{{\s*R\s*\}}|R)\s*:?\s*{_INT}(?![\d.,]\d)"
)


def remainder_claims(step: str) -> list[ClaimCheck]:
    """Quotient-and-remainder claims ``a / b = q R r``: true iff ``a = b q + r`` and ``0 <= r < b``.

    >>> [(c.text, c.verdict) for c in remainder_claims(r"First, $$355\\div 6=58\\;\\mathrm{R}\\;5.$$")]
    [('355 / 6 = 58 R 5', 'false')]
    """
    checks = []
    text = _normalize(step)
    for m in _REMAINDER.finditer(text):
        before = text[: m.start()].rstrip()
        if before and before[-1] in "+-*/^=(":  # part of a bigger expression
            continue
        a, b, q, r = (int(g.replace(",", "")) for g in m.groups())
        holds = b > 0 and a == b * q + r and 0 <= r < b
        checks.append(ClaimCheck(
            text=f"{a} / {b} = {q} R {r}", lhs=f"Integer({a})", rhs=f"Integer({b}) * Integer({q}) + Integer({r})",
            verdict="true" if holds else "false", reason=f"{b} * {q} + {r} = {b * q + r}, remainder < {b}: {r < b}",
        ))
    return checks


# --- the verdict (SymPy in the sandbox worker; tolerance here) -------------------------------------


def _evaluate_request(request: dict) -> dict:
    """Runs in the worker: both sides' values (30 significant digits) and whether they are equal."""
    try:
        import sympy
        from sympy import Integer, Rational, real_root, sqrt

        # \sqrt[3]{-8084} is the real cube root, as a step means it (SymPy's root() is the principal one)
        names = {"Integer": Integer, "Rational": Rational, "sqrt": sqrt, "root": real_root}
        lhs = eval(request["lhs"], {"__builtins__": {}}, names)  # noqa: S307 - built by our own parser
        rhs = eval(request["rhs"], {"__builtins__": {}}, names)  # noqa: S307
        lhs, rhs = sympy.sympify(lhs), sympy.sympify(rhs)
        if not (lhs.is_finite and rhs.is_finite and lhs.is_real and rhs.is_real):
            return {"error": f"not a finite real number: {lhs} vs {rhs}"}
        difference = sympy.simplify(lhs - rhs)
        return {
            "equal": bool(difference == 0),
            "lhs": str(sympy.N(lhs, 30)),
            "rhs": str(sympy.N(rhs, 30)),
        }
    except Exception as exc:  # noqa: BLE001 - the reason goes into the claim record
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _claims_handler():
    """The sandbox worker's handler (SymPy imported before the worker says "ready")."""
    _evaluate_request({"lhs": "sqrt(Integer(8))", "rhs": "Rational('0.5')"})
    return _evaluate_request


_SANDBOX = Sandbox(_claims_handler, what="sympy")


def _needs_rounding(value: Decimal, decimals: int) -> bool:
    """Whether ``value`` (30 digits) has more than ``decimals`` decimals (beyond float noise)."""
    scaled = value * (Decimal(10) ** decimals)
    return abs(scaled - scaled.to_integral_value()) > Decimal("1e-20") * max(Decimal(1), abs(scaled))


def _judge(claim: _Claim, reply: dict, rel_tolerance: float) -> tuple[bool, str]:
    """Whether the claim holds given the worker's values, allowing for rounding; and the values."""
    lhs, rhs = Decimal(reply["lhs"]), Decimal(reply["rhs"])
    shown = f"{reply['lhs'][:24]} vs {reply['rhs'][:24]}"
    if reply["equal"]:
        return True, shown
    diff = abs(lhs - rhs)
    with localcontext() as ctx:
        ctx.prec = 40
        scale = max(abs(lhs), abs(rhs))
        if claim.approx or claim.lhs.has_decimal or claim.rhs.has_decimal:
            if diff <= Decimal(str(rel_tolerance)) * scale:
                return True, shown
        for side, other in ((claim.rhs, lhs), (claim.lhs, rhs)):
            if side.atomic and _needs_rounding(other, side.decimals) and diff < Decimal(10) ** -side.decimals:
                return True, shown  # the written number is the other side rounded (or truncated)
    return False, shown


def check_claim(claim: _Claim, config: SymbolicConfig) -> ClaimCheck:
    """One claim's verdict (SymPy in the sandbox, bounded by ``config.claim_timeout``)."""
    record = dict(text=claim.text, lhs=claim.lhs.expr, rhs=claim.rhs.expr, approx=claim.approx)
    if len(claim.text) > config.max_claim_chars:
        return ClaimCheck(**record, verdict="skipped", reason=f"longer than {config.max_claim_chars} characters")
    readings = [(claim.lhs.expr, claim.rhs.expr)]
    if claim.lhs.has_pct or claim.rhs.has_pct:
        readings.append((claim.lhs.expr_plain, claim.rhs.expr_plain))  # 20% as 20
    last = ""
    for lhs, rhs in readings:
        reply, error = _SANDBOX.call({"lhs": lhs, "rhs": rhs}, config.claim_timeout)
        if reply is None:
            return ClaimCheck(**record, verdict="timeout" if error and error.startswith("timeout") else "error",
                              reason=error)
        if "error" in reply:
            return ClaimCheck(**record, verdict="error", reason=reply["error"])
        try:
            holds, last = _judge(claim, reply, config.rel_tolerance)
        except InvalidOperation:
            return ClaimCheck(**record, verdict="error", reason=f"values not decimal: {reply}"[:300])
        if holds:
            return ClaimCheck(**record, verdict="true", reason=last)
    return ClaimCheck(**record, verdict="false", reason=last)


# A step that says a statement fails is testing it (a candidate root, a check), not claiming it.
_DISCLAIMS = re.compile(
    r"\b(?:false|not (?:true|equal|correct|valid|satisf\w*|hold\w*|a solution|possible)|does(?: not|n't) "
    r"(?:hold|equal|satisf\w*|work|match)|contradict\w*|incorrect|invalid|extraneous|mistake|wrong|impossible|"
    r"is not|isn't|error)\b|\\neq|≠",
    re.IGNORECASE,
)


class SymbolicPRM:
    """The symbolic step checker (see the module docstring). ``SymbolicPRM(claim_timeout=1.0)``."""

    name = "symbolic"
    Config = SymbolicConfig

    def __init__(self, config: SymbolicConfig | None = None, **fields: object) -> None:
        if config is not None and fields:
            raise ValueError(f"SymbolicPRM: pass a config or fields, not both (got fields {sorted(fields)})")
        self.config = config or SymbolicConfig(**fields)  # type: ignore[arg-type]

    def check_step(self, step: str) -> list[ClaimCheck]:
        """Every claim of one step with its verdict, in order of appearance (skipped ones last)."""
        claims, skipped = find_claims(step)
        checks = [check_claim(c, self.config) for c in claims] + remainder_claims(step)
        if _DISCLAIMS.search(step):  # `2 + 1 = 1 (False)`: the step tests the claim, it does not assert it
            checks = [
                c.model_copy(update={"verdict": "skipped", "reason": f"the step calls it false ({c.reason})"})
                if c.verdict == "false" else c
                for c in checks
            ]
        return checks + skipped

    def score(self, problem: Problem, steps: list[str]) -> SymbolicScores:
        """Score 0 for a step with a false claim, else 1; ``abstained`` where no claim got a verdict."""
        if not steps:
            raise ValueError(f"problem {problem.id!r}: no steps to score")
        checks = [self.check_step(step) for step in steps]
        scores = [0.0 if any(c.verdict == "false" for c in cs) else 1.0 for cs in checks]
        abstained = [not any(c.verdict in ("true", "false") for c in cs) for cs in checks]
        return SymbolicScores(prm=self.name, scores=scores, threshold=self.config.threshold,
                              abstained=abstained, claims=checks)


__all__ = [
    "ClaimCheck", "SymbolicConfig", "SymbolicPRM", "SymbolicScores", "check_claim", "find_claims", "remainder_claims",
]
