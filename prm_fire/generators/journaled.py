"""A generator whose finished engine calls outlive a kill: each request's branches are journaled the moment
the call that made them returns.

A long run sends one engine call per wave and stage: the wave's base responses, each rollout-PRM round,
every branch set of the wave. Grading, scoring and writing the stage's records come after the call, so
a kill there used to lose the call too, and a kill in a later round lost the earlier rounds.
:class:`JournaledGenerator` wraps the backend: a call sends the engine only the requests its journal does
not answer yet, then appends one line per request (its key and branches, flushed and fsynced) before
returning them. A killed run's rerun replays the finished calls from the journal and loses at most the
call in flight. The stage empties the journal (:meth:`JournaledGenerator.settle`) once its own journals
hold the wave's records, so the file holds one wave at most and no stage record is written twice.

A request's key hashes the model, its prompt ids, ``n`` and sampling; every branch's seed derives from its
request, so a replayed request gives the branches a clean run gives.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from prm_fire.journal import append_journal, read_journal
from prm_fire.records import Branch, BranchRequest, Message
from prm_fire.sampling import SamplingConfig


class CallRecord(BaseModel):
    """One request of a finished engine call: its key, its branches and its share of the call's seconds."""

    model_config = ConfigDict(frozen=True)

    key: str
    branches: list[Branch]
    seconds: float


class JournaledGenerator:
    """``inner`` (any generator) with its calls journaled in ``path`` (see the module docstring).

    Every other attribute (``encode``, ``model_name``, ``shape``, an HF model's weights) is ``inner``'s.
    ``replayed_seconds`` adds up the recorded seconds of the requests served from the journal, so a
    stage's time per item still counts the engine time a killed run spent on them.
    """

    def __init__(self, inner: Any, path: str | Path) -> None:
        self.inner, self.path = inner, Path(path)
        self.replayed_seconds = 0.0
        self._known: dict[str, CallRecord] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def key(self, request: BranchRequest) -> str:
        """The request's identity: model, prompt ids, n and sampling, hashed."""
        sampling = request.sampling.model_dump(mode="json")
        text = json.dumps([self.inner.model_name, request.prompt_ids, request.n, sampling])
        return hashlib.sha256(text.encode()).hexdigest()

    def branch_many(self, requests: list[BranchRequest]) -> list[list[Branch]]:
        """Every request's branches: from the journal if a finished call made them, else from one engine call
        whose requests are journaled as soon as it returns."""
        if self._known is None:
            self._known = {r.key: r for r in read_journal(self.path, CallRecord)}
        keys = [self.key(r) for r in requests]
        missing = {k: r for k, r in zip(keys, requests) if k not in self._known}
        if missing:
            start = time.perf_counter()
            answered = self.inner.branch_many(list(missing.values()))
            share = (time.perf_counter() - start) / len(missing)
            for key, branches in zip(missing, answered, strict=True):
                record = CallRecord(key=key, branches=branches, seconds=share)
                append_journal(self.path, record)
                self._known[key] = record
        self.replayed_seconds += sum(self._known[k].seconds for k in dict.fromkeys(keys) if k not in missing)
        return [list(self._known[k].branches) for k in keys]

    def branch_ids(self, prompt_ids: list[int], n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing ``prompt_ids``, through :meth:`branch_many`."""
        return self.branch_many([BranchRequest(prompt_ids=prompt_ids, n=n, sampling=sampling)])[0]

    def branch(self, messages: list[Message], prefix: str, n: int, sampling: SamplingConfig) -> list[Branch]:
        """``n`` branches continuing ``prefix`` after the chat prompt, through :meth:`branch_many`."""
        return self.branch_ids(self.inner.encode(messages, prefix), n, sampling)

    def settle(self) -> None:
        """Empty the journal: the caller's own records now hold what its calls made."""
        self.path.unlink(missing_ok=True)
        self._known = {}


__all__ = ["CallRecord", "JournaledGenerator"]
