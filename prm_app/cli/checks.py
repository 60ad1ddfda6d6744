"""Command-line input checks: a parser whose errors are one line, typed flag values, collected problems.

Flags are checked when parsed (``type=`` functions below: counts, fractions, insertion points, and the
sampling flags through :class:`~prm_fire.sampling.SamplingConfig`'s own field rules). What needs
files, names or a model's config is checked by each command's ``check`` with the functions of
:mod:`prm_app.preflight`, collected by :class:`Problems`, before any model loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from prm_fire.limits import ModelShape
from prm_fire.prefixes import PrefixError, check_point
from prm_app.preflight import InputError, check_backend, check_model


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


class InputErrors(ValueError):
    """Several bad inputs, one line each (what :class:`Problems` raises)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class Problems:
    """Collects independent input problems, so one run reports all of them, one line each.

    >>> problems = Problems()
    >>> with problems.check():
    ...     raise InputError("--data: x.jsonl: no such file")
    >>> problems.lines
    ['--data: x.jsonl: no such file']
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run a check; an :class:`InputError` (or ``InputErrors``) is recorded instead of raised."""
        try:
            yield
        except InputErrors as err:
            self.lines += err.lines
        except InputError as err:
            self.lines.append(str(err))

    def raise_if_any(self) -> None:
        """Raise :class:`InputErrors` if any check failed."""
        if self.lines:
            raise InputErrors(self.lines)

    def engine(self, backend: str, model: str) -> ModelShape:
        """Check ``--backend`` and ``--model``, then raise every problem collected so far; returns the
        model's shape for the size checks that follow."""
        with self.check():
            check_backend(backend)
        with self.check():
            shape = check_model(model)
        self.raise_if_any()
        return shape


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``--limit 0`` and ``--limit -1`` are errors, not 'all').

    >>> at_least(1)("3")
    3
    >>> at_least(1)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be an integer >= 1, got '0'
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def point(text: str) -> str:
    """An argparse type: an insertion point name (``line1``, ``line2``, ..., ``prm`` or ``entropy``)."""
    try:
        return check_point(text)
    except PrefixError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def field_value(model: type[BaseModel], field: str, **context: Any) -> Callable[[str], Any]:
    """An argparse type that validates the value by ``model``'s rules for ``field`` (one place for the bounds).

    ``context`` fills the other fields the model needs to validate (e.g. ``method="regular"``).

    >>> from prm_fire.sampling import SamplingConfig
    >>> field_value(SamplingConfig, "temperature", method="regular")("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: Input should be greater than or equal to 0, got '-1'
    """

    def parse(text: str) -> Any:
        try:
            record = model.model_validate({**context, field: text}, strict=False)
        except ValidationError as err:
            raise argparse.ArgumentTypeError(f"{err.errors()[0]['msg']}, got {text!r}") from None
        return getattr(record, field)

    parse.__name__ = field
    return parse


def report(lines: list[str]) -> None:
    """Print input problems, one ``error:`` line each, on stderr."""
    for line in lines:
        print(f"error: {line}", file=sys.stderr)


DEFAULT_PROBLEM = "builtin/1"  # the first builtin problem; see the README for how the default was measured


def add_problem_arguments(group: Any, *, default: str = DEFAULT_PROBLEM, more: str = "") -> None:
    """``--data`` and ``--id``: the one problem a command works on (``branch``, ``search``); ``more`` ends
    the ``--id`` help."""
    from pathlib import Path

    group.add_argument("--data", type=Path, help="data file (MATH/MATH-500/GSM8K JSONL, ProcessBench JSON); "
                       "default: the problems shipped with the package")
    group.add_argument("--id", help=f"problem id in --data (default: {default} without --data, "
                       f"else the file's first problem{more})")


def chosen_problem(args: argparse.Namespace, *, default: str = DEFAULT_PROBLEM) -> Any:
    """The problem ``--data``/``--id`` name (see :func:`add_problem_arguments`; ``default`` without either);
    an :class:`InputError` names the flag."""
    from prm_app.preflight import read_problems
    from prm_fire.problems import find_problem, load_builtin

    pool = read_problems(args.data) if args.data else load_builtin()
    wanted = args.id or (None if args.data else default)
    try:
        return find_problem(pool, wanted) if wanted else pool[0]
    except KeyError as err:
        raise InputError(f"--id: {err.args[0]}") from None


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["m=4", "estimate=soft"]`` -> ``{"m": 4, "estimate": "soft"}`` (values as JSON when they parse).

    >>> parse_options(["m=4", "estimate=soft", 'labels={"a": 1}'])
    {'m': 4, 'estimate': 'soft', 'labels': {'a': 1}}
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--prm-option expects key=value, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def checked_prm_options(problems: Problems, name: str, pairs: list[str]) -> dict[str, Any]:
    """``--prm NAME --prm-option K=V ...`` parsed and checked (no model built); a problem is recorded in
    ``problems`` and ``{}`` returned."""
    from prm_app.preflight import check_prm

    options: dict[str, Any] = {}
    with problems.check():
        try:
            options = parse_options(pairs)
        except ValueError as err:
            raise InputError(str(err)) from None
        check_prm(name, options)
    return options
