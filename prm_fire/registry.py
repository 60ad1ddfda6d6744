"""A small name -> class registry: entries registered by decorator, or named lazily as ``"module:attr"``.

A lazy entry is imported on its first :meth:`Registry.get`, so the package that holds a registry does
not import its plug-ins (generator backends, PRM scorers) until one is used; the resolved object is
checked then (against a protocol, say) and kept.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: A check of a registered object: None if it fits the registry, else what is wrong, in a few words.
Check = Callable[[Any], "str | None"]


class RegistryError(LookupError):
    """A registered entry that cannot be resolved or is not what its registry holds."""


def implements(protocol: type, *, attributes: tuple[str, ...] = ()) -> Check:
    """A check: the object is a class with every public method of ``protocol`` and the named class attributes.

    >>> from typing import Protocol
    >>> class Scorer(Protocol):
    ...     def score(self, steps: list[str]) -> list[float]: ...
    >>> class Good:
    ...     Config = dict
    ...     def score(self, steps): return [1.0] * len(steps)
    >>> check = implements(Scorer, attributes=("Config",))
    >>> check(Good) is None, check(dict), check(Good())
    (True, "lacks Scorer's method 'score'", 'is not a class')
    >>> class NoConfig:
    ...     def score(self, steps): return []
    >>> check(NoConfig)
    "lacks the class attribute 'Config'"
    """
    methods = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]

    def check(obj: Any) -> str | None:
        if not inspect.isclass(obj):
            return "is not a class"
        for name in methods:
            if not callable(getattr(obj, name, None)):
                return f"lacks {protocol.__name__}'s method {name!r}"
        for name in attributes:
            if not hasattr(obj, name):
                return f"lacks the class attribute {name!r}"
        return None

    return check


class Registry(Generic[T]):
    """Maps names chosen on the command line to classes (or functions).

    Entries come from :meth:`register` (a decorator) or from ``lazy``: name -> ``"module:attr"``,
    imported on the first :meth:`get` of that name. ``check`` (see :func:`implements`) vets every
    entry as it is registered or resolved; a failure is a :class:`RegistryError` naming the entry.

    >>> backends: Registry[type] = Registry("backend", lazy={"frac": "fractions:Fraction"})
    >>> @backends.register("toy")
    ... class Toy: ...
    >>> backends.names(), backends.target("frac")
    (['frac', 'toy'], 'fractions:Fraction')
    >>> backends.get("toy") is Toy, backends.get("frac").__name__
    (True, 'Fraction')
    >>> backends.get("nope")
    Traceback (most recent call last):
    ...
    KeyError: "unknown backend 'nope'; known: frac, toy"
    """

    def __init__(self, kind: str, *, lazy: Mapping[str, str] | None = None, check: Check | None = None) -> None:
        self.kind = kind
        self._check = check
        self._entries: dict[str, T | str] = {}
        for name, target in (lazy or {}).items():
            if target.count(":") != 1 or not all(target.split(":")):
                raise ValueError(f"{kind} {name!r}: lazy entry {target!r} is not 'module:attr'")
            self._entries[name] = target

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class under ``name`` (checked now)."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._vet(name, entry, self._describe(entry))
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The class registered as ``name``, imported and checked on first use.

        An unknown name is a KeyError listing the known names; an entry whose module or attribute is
        missing, or that fails the check, is a :class:`RegistryError`.
        """
        try:
            entry = self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None
        if isinstance(entry, str):
            entry = self._entries[name] = self._resolve(name, entry)
        return entry

    def target(self, name: str) -> str:
        """Where the entry ``name`` lives, as ``"module:attr"``, without importing it."""
        if name not in self._entries:
            self.get(name)  # the KeyError that lists the known names
        entry = self._entries[name]
        return entry if isinstance(entry, str) else self._describe(entry)

    def names(self) -> list[str]:
        """Registered names, sorted (nothing is imported)."""
        return sorted(self._entries)

    def _resolve(self, name: str, target: str) -> T:
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise RegistryError(f"{self.kind} {name!r}: cannot import {module_name!r} for {target!r}: {err}") from err
        try:
            entry = getattr(module, attr)
        except AttributeError:
            raise RegistryError(f"{self.kind} {name!r}: module {module_name!r} has no {attr!r} ({target!r})") from None
        self._vet(name, entry, target)
        return entry

    def _vet(self, name: str, entry: Any, where: str) -> None:
        problem = self._check(entry) if self._check is not None else None
        if problem is not None:
            raise RegistryError(f"{self.kind} {name!r}: {where} {problem}")

    @staticmethod
    def _describe(entry: Any) -> str:
        return f"{getattr(entry, '__module__', '?')}:{getattr(entry, '__qualname__', repr(entry))}"
