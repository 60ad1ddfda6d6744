"""A time-bounded sandbox: run a handler in a worker process and wait at most ``timeout`` seconds per request.

SymPy can spend minutes on an innocent-looking expression (``9^{9^{9}}``), and the libraries built on
it bound their time with ``signal.alarm``, which fails off the main thread. So work that may hang runs
in a **worker process** that answers one JSON request per line over a pipe; the caller waits on the
pipe with ``select`` (POSIX only) for at most ``timeout`` seconds, and a worker that has not answered
by then is killed (the next call starts a fresh one). Workers are reused (a request costs a few
milliseconds), one per thread calling at the same time, and killed at interpreter exit; a forked child
forgets its parent's workers. Starting a worker (about a second) is not counted in ``timeout``.

A sandbox is built from a **handler factory**: a module-level function, taking no argument, that
imports what the handler needs and returns ``handle(request: dict) -> dict``. The worker runs the
factory's file *by path* (``runpy.run_path``, ``__name__ == "<run_path>"``), so it skips the imports of
the package the file belongs to unless the file makes them itself. Users: :mod:`prm_fire.grader`
(math-verify) and :mod:`prm_models.symbolic` (arithmetic claims, also used by the reference checker).

>>> import math
>>> def _demo_factory():
...     return lambda request: {"sqrt": math.sqrt(request["x"])}
>>> # Sandbox(_demo_factory, what="demo").call({"x": 4}, timeout=5.0) -> ({'sqrt': 2.0}, None)
"""

from __future__ import annotations

import atexit
import inspect
import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[dict], dict]
HandlerFactory = Callable[[], Handler]

#: Seconds a worker may take to import its handler and say "ready".
STARTUP_TIMEOUT = 120.0

# argv: this file, the factory's file, the factory's name. Both files run by path (no package imports).
WORKER_COMMAND = (
    "import runpy, sys; serve = runpy.run_path(sys.argv[1], run_name='<sandbox>')['serve']; "
    "serve(lambda: runpy.run_path(sys.argv[2])[sys.argv[3]]())"
)


def serve(factory: HandlerFactory) -> None:
    """The worker's loop: a JSON request a line in, ``handle(request)`` as a JSON line out.

    Stdout is taken over for the replies first (a stray print of the handler goes to stderr), then
    ``factory()`` builds the handler, then the worker says ``ready``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then kills us
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="ascii")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    handle = factory()
    replies.write("ready\n")
    replies.flush()
    for line in sys.stdin:
        replies.write(json.dumps(handle(json.loads(line))) + "\n")
        replies.flush()


class Worker:
    """One worker process serving ``factory`` (see the module docstring), used by one thread at a time."""

    def __init__(self, factory_file: str, factory_name: str, what: str = "sandbox") -> None:
        # The worker imports the same prm_fire as this process (not whichever one its cwd would find).
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-c", WORKER_COMMAND, str(Path(__file__).resolve()), factory_file, factory_name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            ready = self._read_line(STARTUP_TIMEOUT)
        except TimeoutError:
            ready = b""
        if ready != b"ready\n":
            self.kill()
            raise RuntimeError(
                f"the {what} sandbox worker ({factory_name} in {factory_file}) did not start: "
                f"exit code {self._process.returncode}, first line {ready!r}; its stderr is above"
            )

    def request(self, payload: dict, timeout: float) -> dict:
        """The reply to one request; TimeoutError after ``timeout`` s, EOFError/OSError if the worker died."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(payload).encode() + b"\n")
        self._process.stdin.flush()
        line = self._read_line(timeout)
        if not line:
            raise EOFError(f"the worker exited with code {self._process.wait()}")
        return json.loads(line)

    def _read_line(self, timeout: float) -> bytes:
        assert self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not readable:
            raise TimeoutError
        return self._process.stdout.readline()

    def kill(self) -> None:
        """Kill the process (harmless if it has exited) and reap it."""
        self._process.kill()
        self._process.wait()
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()


class Sandbox:
    """The workers of one handler in this process: idle ones are reused, a new one starts when none is idle.

    ``what`` names the work in error messages (``"timeout after 2.0s in sympy"``). Building a sandbox
    starts no process; the first :meth:`call` does. Workers are killed at interpreter exit.
    """

    def __init__(self, factory: HandlerFactory, *, what: str) -> None:
        self.factory_file = str(Path(inspect.getfile(factory)).resolve())
        self.factory_name = factory.__name__
        if factory.__qualname__ != factory.__name__:
            raise ValueError(f"sandbox handler factory {factory.__qualname__!r} must be a module-level function")
        self.what = what
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._live: set[Worker] = set()
        atexit.register(self.close)
        os.register_at_fork(after_in_child=self.forget)

    def call(self, payload: dict, timeout: float) -> tuple[dict | None, str | None]:
        """The worker's reply within ``timeout`` seconds, or (None, what went wrong; the worker is killed)."""
        worker = self._checkout()
        try:
            reply = worker.request(payload, timeout)
        except TimeoutError:  # (before OSError, its base class)
            error = f"timeout after {float(timeout)}s in {self.what}"
        except (EOFError, OSError, ValueError) as exc:  # ValueError: a garbled reply
            error = f"{self.what}'s sandbox worker failed: {type(exc).__name__}: {exc}"
        except BaseException:  # KeyboardInterrupt mid-request: the worker's state is unknown
            self._discard(worker)
            raise
        else:
            with self._lock:
                self._idle.append(worker)
            return reply, None
        self._discard(worker)
        return None, error

    def _checkout(self) -> Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        worker = Worker(self.factory_file, self.factory_name, self.what)  # outside the lock: starts side by side
        with self._lock:
            self._live.add(worker)
        return worker

    def _discard(self, worker: Worker) -> None:
        worker.kill()
        with self._lock:
            self._live.discard(worker)

    def close(self) -> None:
        """Kill every worker, busy or idle (at interpreter exit)."""
        with self._lock:
            workers, self._live, self._idle = list(self._live), set(), []
        for worker in workers:
            worker.kill()

    def forget(self) -> None:
        """In a forked child: the workers belong to the parent, so start afresh without them."""
        self._lock = threading.Lock()
        self._idle, self._live = [], set()


__all__ = ["Handler", "HandlerFactory", "STARTUP_TIMEOUT", "Sandbox", "WORKER_COMMAND", "Worker", "serve"]
