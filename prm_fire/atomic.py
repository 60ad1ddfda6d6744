"""Write a file or folder under a temporary sibling name, then rename it into place.

A reader never sees a half-written output: a failed or killed write leaves at most a hidden
``.<name>.tmp-<pid>`` sibling (removed on failure), and an existing target is only replaced once the
new one is complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def replace_atomically(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temp)`` with a sibling path of ``target``, then move ``temp`` onto ``target``.

    ``write`` creates a file or a folder at the path it is given. A folder replaces an existing
    folder (the old one is moved aside first and deleted after); on any error the temporary output is
    deleted and ``target`` is left as it was.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "a.txt"
    >>> replace_atomically(out, lambda p: p.write_text("done")).read_text()
    'done'
    """
    target = Path(target)
    temp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    try:
        write(temp)
        if temp.is_dir() and target.is_dir():
            os.replace(target, old)
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    _remove(old)
    return target


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


__all__ = ["replace_atomically"]
