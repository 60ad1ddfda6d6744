"""Output files appear whole or not at all: written to a temporary name beside the target, then renamed.

A full disk or a kill mid-write leaves the old file (or none) and a stray ``.<name>.<pid>.tmp``, never a
truncated page or table.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> write_atomic(target, "done\\n")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done\\n', ['a.txt'])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """``with replacing(path) as tmp:`` write ``tmp`` (any writer, e.g. ``savefig``); it becomes ``path``
    only if the block ends without an error, else it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # keeps the suffix savefig reads
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Write ``data`` to ``path`` through a temporary file (see the module docstring)."""
    with replacing(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
