"""The symbolic step checker on real ProcessBench steps (each case names its item and step)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from prm_fire.problems import Problem
from prm_models import PRMS, make_prm
from prm_models.symbolic import SymbolicConfig, SymbolicPRM, find_claims

PRM = SymbolicPRM()
PROBLEM = Problem(id="test", question="?", source="builtin")


@cache
def _steps(shared: str, split: str) -> dict[str, list[str]]:
    items = json.loads((Path(shared) / "processbench" / f"{split}.json").read_text())
    return {item["id"]: item["steps"] for item in items}


def _real(shared_data: Path, item_id: str, step: int, excerpt: str) -> str:
    """The excerpt, after checking that it is quoted verbatim from that item's step."""
    text = _steps(str(shared_data), item_id.split("-")[0])[item_id][step]
    assert excerpt in text, f"{item_id} step {step} does not contain the quoted text"
    return excerpt


# (item id, step, verbatim excerpt of the step, expected [(claim, verdict)] for the checked claims)
TRUE_CLAIMS = [
    ("gsm8k-291", 1, "we add the initial number of lollipops (7) to the new lollipops (10): 7 + 10 = 17. So, Erin "
     "now has 17 lollipops.", [("7 + 10 = 17", "true")]),
    ("gsm8k-391", 2, r"\[ \frac{3}{5} \times 30 = 18 \]", [(r"\frac{3}{5} * 30 = 18", "true")]),
    ("gsm8k-130", 1, "So, there are 60 x 60 = 3600 seconds in 1 hour.", [("60 * 60 = 3600", "true")]),
    ("gsm8k-60", 2, "Number of bags of chips = $4.95 / $0.40 = 12.375.", [("4.95 / 0.40 = 12.375", "true")]),
    # 0.0666... written rounded to four decimals
    ("gsm8k-60", 4, "Number of candy bars = $0.05 / $0.75 = 0.0667.", [("0.05 / 0.75 = 0.0667", "true")]),
    # the chain's links with variables are skipped, the numeric link is checked
    ("gsm8k-32", 4, r"\[ \text{Total} = O_s + O_c + J_c = 20 + 22 + 66 = 108 \]", [("20 + 22 + 66 = 108", "true")]),
    # `\text{ of }` is an operator: `2,000.00 = 0.25 \times 2000` is not a claim
    ("gsm8k-136", 0, r"\[ 25\% \text{ of } \$2,000.00 = 0.25 \times 2000 = \$500.00 \]",
     [("0.25 * 2000 = 500.00", "true")]),
    # a word before `+ 17` is its operand: `+ 17 = 68 + 17` is not a claim
    ("gsm8k-193", 1, r"\[ \text{Brianna's Points} = \text{Naomi's Points} + 17 = 68 + 17 = 85 \]",
     [("68 + 17 = 85", "true")]),
    # percentages as hundredths
    ("gsm8k-81", 4, r"So, \(60\% * 20\% = 12\%\).", [("60% * 20% = 12%", "true")]),
    ("gsm8k-77", 3, r"\[ \text{Total earnings} = 52,500 + 11,250 + 67,500 = 129,250 \]",
     [("52,500 + 11,250 + 67,500 = 129,250", "false")]),
    ("math-849", 4, r"we divide 20 by 6: \[20 \div 6 = 3\, R\, 2\].", [("20 / 6 = 3 R 2", "true")]),
    ("math-382", 2, "9 divided by 6 is 1 with a remainder of 3.", [("9 / 6 = 1 R 3", "true")]),
    ("olympiadbench-249", 10, r"\sqrt[3]{8100 - 16184} = \sqrt[3]{-8084}",
     [(r"\sqrt[3]{8100 - 16184} = \sqrt[3]{-8084}", "true")]),  # the real cube root
]

FALSE_CLAIMS = [
    ("gsm8k-36", 3, r"\[ 50 + 70 + 140 + 240 = 400 \]", [("50 + 70 + 140 + 240 = 400", "false")]),
    ("gsm8k-110", 4, r"\[ \$20 - \$13.00 = \$6.00 \]", [("20 - 13.00 = 6.00", "false")]),
    ("gsm8k-126", 0, "then the bakery has 7 * 70 - 40 = 470 - 40 = 430 loaves of bread.",
     [("7 * 70 - 40 = 470 - 40", "false"), ("470 - 40 = 430", "true")]),
    ("gsm8k-51", 5, r"Stan has caught \( 4x - 13 = 4(40) - 13 = 157 \) Pokémon.", [("4(40) - 13 = 157", "false")]),
    ("gsm8k-141", 2, r"the value of the nickels is: \[ \frac{40}{5} = 3 \text{ dollars} \]",
     [(r"\frac{40}{5} = 3", "false")]),
    ("gsm8k-2", 1, "Amount of expired milk = Fraction of expired milk * Total gallons purchased = 2/5 * 4000 = 800 "
     "gallons.", [("2/5 * 4000 = 800", "false")]),
    ("math-19", 0, r"Second, \(168 = 2^3 \times 7\).", [("168 = 2^3 * 7", "false")]),
    ("math-83", 3, "Therefore, $$x^2-y^2=(19)^2-(-12)^2=361.$$", [("(19)^2-(-12)^2 = 361", "false")]),
    # quotient and remainder (not 355/6 = 58): 6 * 58 + 5 = 353
    ("math-54", 0, r"$$355\div 6=58\;\mathrm{R}\;5.$$", [("355 / 6 = 58 R 5", "false")]),
    ("math-0", 0, "194 ÷ 11 = 17 with a remainder of 9.", [("194 / 11 = 17 R 9", "false")]),
    ("math-8", 2, r"\( n = 1 \cdot 3^3 + 2 \cdot 3^2 + 2 \cdot 3^1 + 2 \cdot 3^0 = 81 + 18 + 6 + 2 = 107 \)",
     [("1 * 3^3 + 2 * 3^2 + 2 * 3^1 + 2 * 3^0 = 81 + 18 + 6 + 2", "false"), ("81 + 18 + 6 + 2 = 107", "true")]),
]

# Steps with nothing checkable (or only claims the checker must not judge): score 1, abstained.
ABSTAIN = [
    ("gsm8k-0", 0, "First, on Friday, the neighbors start with 18 pink plastic flamingos.", []),
    ("gsm8k-32", 1, r"Substituting \( O_s = 20 \): \[ 20 = O_c - 2 \] Adding 2 to both sides: \[ O_c = 22 \]", []),
    ("math-60", 0, "(6 + 4 - 1) choose (4 - 1) = 9 choose 3 = 84.", []),  # not (4 - 1) = 9
    ("olympiadbench-430", 2, r"\frac{90}{123} < k < \frac{180}{123} \approx 0.732 < k < 1.463", []),
    # the step tests a candidate and says the equation fails: its false claims are not asserted
    ("olympiadbench-783", 7, "\\[ 2 + \\sqrt{3 - 2} = 3 - 2 \\]\n\\[ 2 + \\sqrt{1} = 1 \\]\n\\[ 2 + 1 = 1 \\]\n(False)",
     [(r"2 + \sqrt{3 - 2} = 3 - 2", "skipped"), (r"2 + \sqrt{1} = 1", "skipped"), ("2 + 1 = 1", "skipped")]),
]


def _case_id(case: tuple) -> str:
    return f"{case[0]}-step{case[1]}"


@pytest.mark.parametrize("case", TRUE_CLAIMS + FALSE_CLAIMS + ABSTAIN, ids=_case_id)
def test_claims_of_real_steps(shared_data: Path, case: tuple) -> None:
    item_id, step, excerpt, expected = case
    text = _real(shared_data, item_id, step, excerpt)
    checks = PRM.check_step(text)
    assert [(c.text, c.verdict) for c in checks] == expected
    result = PRM.score(PROBLEM, [text])
    verdicts = {v for _, v in expected}
    assert result.scores == [0.0 if "false" in verdicts else 1.0]
    assert result.abstained == [not verdicts & {"true", "false"}]


def test_a_real_solution_is_scored_step_by_step(shared_data: Path) -> None:
    """gsm8k-36: the labelled error (step 3) is an addition slip; the steps before it are right."""
    steps = _steps(str(shared_data), "gsm8k")["gsm8k-36"]
    result = PRM.score(PROBLEM, steps)
    assert result.first_error_index == 3
    assert result.scores[:3] == [1.0, 1.0, 1.0]
    assert len(result.claims) == len(steps) == len(result.abstained)


def test_empty_steps_abstain_and_no_steps_is_an_error() -> None:
    result = PRM.score(PROBLEM, ["", "   ", "7 + 10 = 17"])
    assert result.scores == [1.0, 1.0, 1.0] and result.abstained == [True, True, False]
    with pytest.raises(ValueError, match="problem 'test': no steps to score"):
        PRM.score(PROBLEM, [])


def test_pathological_latex_times_out_as_a_marked_abstention(shared_data: Path) -> None:
    """olympiadbench-645: SymPy would expand 100^(1000^10000); the claim is bounded and abstains."""
    text = _real(shared_data, "olympiadbench-645", 1, r"100^{1000^{10,000}} = (10^2)^{1000^{10,000}}")
    prm = SymbolicPRM(claim_timeout=0.5)
    prm.check_step("1 + 1 = 2")  # start the worker outside the timed part
    result = prm.score(PROBLEM, [text, "So 7 + 10 = 17."])
    assert result.claims[0][0].verdict == "timeout"
    assert result.claims[0][0].reason == "timeout after 0.5s in sympy"
    assert result.scores == [1.0, 1.0] and result.abstained == [True, False]
    assert result.claims[1][0].verdict == "true"  # the next claim is judged, by a fresh worker


def test_claims_are_found_without_sympy() -> None:
    claims, skipped = find_claims("She pays <<617+617=1234>>1,234 dollars, $0.50 = 50 cents; 1 = 60 min.")
    assert [c.text for c in claims] == ["617+617 = 1234"]  # (a GSM8K calculator annotation)
    assert [c.text for c in skipped] == ["1 = 60"]  # number = number: a conversion, never judged
    assert find_claims("1.5 * 2 = 3 million")[0] == []  # a scale word after the number: not 3


def test_registry_and_config() -> None:
    assert PRMS.get("symbolic") is SymbolicPRM
    prm = make_prm("symbolic", {"claim_timeout": "1.5"})
    assert isinstance(prm, SymbolicPRM) and prm.config == SymbolicConfig(claim_timeout=1.5)
    with pytest.raises(ValueError, match="claim_timeout"):
        make_prm("symbolic", {"claim_timeout": 0})
    with pytest.raises(ValueError, match="Extra inputs"):
        make_prm("symbolic", {"timeout": 1})
