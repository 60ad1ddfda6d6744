"""Outputs appear whole or not at all: written under a temporary name beside the target, then renamed.

A full disk or a kill mid-write leaves the old output (or none) and at most a hidden temporary sibling,
never a truncated page, table or data set. Three forms of one idea: :func:`write_atomic` for text or
bytes, :func:`replacing` for any writer that takes a path (``savefig``), :func:`replace_atomically` for
a writer that may make a folder (``Dataset.save_to_disk``). A failed write raises an ``OSError`` naming the
target (a full disk's ``write`` names no file by itself) and saying that nothing was written.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
>>> write_atomic(target, "done\\n")
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('done\\n', ['a.txt'])
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary(path: Path, kind: str) -> Path:
    """A hidden sibling of ``path`` that keeps its suffix (savefig reads the format from it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{kind}{path.suffix}")


def _named(err: OSError, path: Path) -> OSError:
    """``err`` as an ``OSError`` whose ``filename`` is the target, not a temporary sibling or nothing."""
    return OSError(err.errno, f"{err.strerror or err}; nothing written (an older {path.name}, if any, is kept)",
                   str(path))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """``with replacing(path) as tmp:`` write ``tmp``; it becomes ``path`` only if the block ends without
    an error, else it is removed."""
    path = Path(path)
    tmp = _temporary(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise _named(err, path) from err
    finally:
        _remove(tmp)


def write_atomic(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> None:
    """Write ``data`` to ``path`` through a temporary file (see the module docstring)."""
    with replacing(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)


def replace_atomically(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temp)`` with a sibling path of ``target``, then move ``temp`` onto ``target``.

    ``write`` creates a file or a folder at the path it is given. A folder replaces an existing folder
    (the old one is moved aside first and deleted after); on any error the temporary output is deleted
    and ``target`` is left as it was.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "a.txt"
    >>> replace_atomically(out, lambda p: p.write_text("done")).read_text()
    'done'
    """
    target = Path(target)
    temp, old = _temporary(target, "tmp"), _temporary(target, "old")
    try:
        write(temp)
        if temp.is_dir() and target.is_dir():
            os.replace(target, old)
        os.replace(temp, target)
    except BaseException as err:
        _remove(temp)
        if old.exists() and not target.exists():
            os.replace(old, target)
        if isinstance(err, OSError):
            raise _named(err, target) from err
        raise
    _remove(old)
    return target


__all__ = ["replace_atomically", "replacing", "write_atomic"]
