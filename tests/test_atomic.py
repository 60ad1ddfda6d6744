"""prm_fire/atomic.py: an output appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from prm_fire.atomic import replace_atomically


def _fail_halfway(path: Path) -> None:
    path.mkdir()
    (path / "part-0").write_text("half")
    raise OSError("disk full")


def test_a_failed_write_leaves_the_old_output_and_no_temporary(tmp_path: Path) -> None:
    old = tmp_path / "data"
    old.mkdir()
    (old / "dataset_info.json").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        replace_atomically(old, _fail_halfway)
    assert [p.name for p in tmp_path.iterdir()] == ["data"] and (old / "dataset_info.json").read_text() == "old"
    with pytest.raises(OSError):
        replace_atomically(tmp_path / "new", _fail_halfway)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_a_folder_replaces_a_folder_and_a_file_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "stale").write_text("x")
    replace_atomically(folder, lambda p: (p.mkdir(), (p / "fresh").write_text("y")))
    assert [p.name for p in folder.iterdir()] == ["fresh"]
    replace_atomically(tmp_path / "a.txt", lambda p: p.write_text("1"))
    replace_atomically(tmp_path / "a.txt", lambda p: p.write_text("2"))
    assert (tmp_path / "a.txt").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "data"]
