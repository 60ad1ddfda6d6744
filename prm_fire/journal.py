"""Append-only JSONL files that long runs write as they go and resume from.

Each finished unit of work is one line, flushed and fsynced before the next starts, so a killed run
loses at most the unit in progress. A torn last line (the process died mid-write) is dropped, with a
warning, on read and before the next append; any other malformed line is an error naming file and line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class JournalError(ValueError):
    """A journal line that is not a valid record."""


def complete_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every complete non-blank line of ``path`` (none if it does not exist).

    A torn last line (no newline: the writer was killed) is left out, with a warning.
    """
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if not text.endswith("\n") and lines[-1].strip():
        logger.warning("%s line %d: dropping a torn last line (interrupted write)", path, len(lines))
    return [(number, line) for number, line in enumerate(lines[:-1], start=1) if line.strip()]


def read_journal(path: Path, model: type[M]) -> list[M]:
    """Every complete record of ``path`` (none if it does not exist yet)."""
    records = []
    for number, line in complete_lines(path):
        try:
            records.append(model.model_validate_json(line))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise JournalError(f"{path} line {number}: not a {model.__name__} record ({where}: {first['msg']})") from None
    return records


def append_journal(path: Path, record: BaseModel) -> None:
    """Append one record as a line, durably, after cutting off a torn last line if there is one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                keep = f.read().rfind(b"\n") + 1
                logger.warning("%s: dropping a torn last line before appending", path)
                f.truncate(keep)
        f.write(record.model_dump_json().encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
