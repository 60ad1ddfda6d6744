"""A run folder's guards: one writer at a time (a lock naming its pid), and the settings its records were made with.

``<run>/run.lock`` holds the pid of the run writing the folder; a second run refuses at once, naming that
pid; a lock left by a process that no longer exists is taken over. ``<run>/run_config.json`` records the
config fields that change the records (model, backend, sampling, PRM, filter, data selection, branches
per set: everything but :data:`FREE_FIELDS`); a run whose fields differ refuses to resume into the
folder, naming the first field that differs, unless ``--overwrite`` clears the folder first. A folder
made before this record existed gets one on its first use.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from prm_app.experiments.config import ExperimentConfig
from prm_app.preflight import InputError

RECORD = "run_config.json"
LOCK = "run.lock"
FREE_FIELDS = frozenset({
    "name", "out_dir", "wave_size", "executor", "data.limit", "insertion.ks", "insertion.items", "insertion.points",
    "insertion.methods",
})
"""Fields a run may change on resume: where outputs go, how the work is split, how many problems, what the
table reports, which journals are added. Every other field changes what a record holds."""


def record_fields(config: ExperimentConfig) -> dict[str, Any]:
    """The config's record-changing fields, flattened to dotted names (``base_sampling.temperature``)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if prefix in FREE_FIELDS or prefix.split(".")[0] in FREE_FIELDS:
            return
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = value

    walk("", config.model_dump(mode="json"))
    return flat


def check_settings(config: ExperimentConfig, *, where: str, overwrite: bool = False) -> None:
    """Refuse a run whose record-changing fields differ from those the run folder was made with.

    Fields present in only one of the two (a field added to the config since) are not compared.
    ``overwrite``: the folder will be cleared, so nothing is compared.
    """
    path = config.run_dir / RECORD
    if overwrite or not path.is_file():
        return
    try:
        made = json.loads(path.read_text())["fields"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: unreadable run record ({type(err).__name__}); "
                         "rerun with --overwrite to start the folder afresh") from None
    now = record_fields(config)
    differ = [key for key in sorted(made.keys() & now.keys()) if made[key] != now[key]]
    if differ:
        key = differ[0]
        more = f" (and {len(differ) - 1} more field(s))" if len(differ) > 1 else ""
        raise InputError(f"{where}: {config.run_dir} was made with {key} = {json.dumps(made[key])}, this run has "
                         f"{json.dumps(now[key])}{more}; use another --out-dir, or --overwrite to clear the folder")


def write_record(config: ExperimentConfig) -> None:
    """Record the config's record-changing fields in the run folder (temp file, then rename)."""
    path = config.run_dir / RECORD
    tmp = path.with_name(f".{RECORD}.{os.getpid()}")
    tmp.write_text(json.dumps({"fields": record_fields(config)}, indent=1) + "\n")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class RunLock:
    """``with RunLock(run_dir):`` the folder is this process's until the block ends (see the module docstring)."""

    def __init__(self, run_dir: Path, *, where: str) -> None:
        self.path = Path(run_dir) / LOCK
        self.where = where

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise InputError(f"{self.where}: {self.path.parent} is being written by another run (pid "
                                     f"{holder}, lock {self.path}); wait for it or stop it") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return self

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: object) -> None:
        if self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)


def clear(run_dir: Path) -> None:
    """``--overwrite``: remove everything in the run folder but the lock (held by this run)."""
    for entry in Path(run_dir).iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
