"""A small name -> class registry, filled by a decorator (generator backends, PRM scorers)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names chosen on the command line to classes.

    >>> backends: Registry[type] = Registry("backend")
    >>> @backends.register("toy")
    ... class Toy: ...
    >>> backends.get("toy") is Toy, backends.names()
    (True, ['toy'])
    >>> backends.get("nope")
    Traceback (most recent call last):
    ...
    KeyError: "unknown backend 'nope'; known: toy"
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class under ``name``."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The class registered as ``name``; a KeyError lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)
