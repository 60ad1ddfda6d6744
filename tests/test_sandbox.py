"""prm_fire/sandbox.py: the time-bounded worker process shared by the grader and the step checkers."""

from __future__ import annotations

import time

import pytest

from prm_fire.sandbox import Sandbox


def _sleepy_handler():
    """Handler factory run by the worker (this file by path): sleeps ``s`` seconds, then echoes ``x``."""

    def handle(request: dict) -> dict:
        time.sleep(request["s"])
        return {"x": request["x"]}

    return handle


def test_reply_then_timeout_kills_the_worker_and_a_fresh_one_serves_the_next_call() -> None:
    sandbox = Sandbox(_sleepy_handler, what="sleepy")
    try:
        assert sandbox.call({"s": 0, "x": 7}, timeout=5.0) == ({"x": 7}, None)
        [worker] = sandbox._idle
        reply, error = sandbox.call({"s": 30, "x": 1}, timeout=0.5)
        assert reply is None and error == "timeout after 0.5s in sleepy"
        assert worker._process.poll() is not None  # killed, not left sleeping
        assert worker not in sandbox._idle and worker not in sandbox._live
        assert sandbox.call({"s": 0, "x": [1, 2]}, timeout=5.0) == ({"x": [1, 2]}, None)
    finally:
        sandbox.close()


def test_a_nested_factory_is_refused_by_name() -> None:
    def nested():
        return lambda request: request

    with pytest.raises(ValueError, match="must be a module-level function"):
        Sandbox(nested, what="nested")
