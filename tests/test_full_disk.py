"""Free space and failing writes: a full or read-only file system is refused before any model loads
(:func:`prm_app.preflight.check_free_space`, exit 2) or, when a write fails anyway, ends in one line naming
the file with nothing half-written (:mod:`prm_fire.atomic`, exit 1).

Real file systems where the machine allows it: a tiny tmpfs (a full disk) and a read-only tmpfs, mounted
for the test (needs root, as in this project's CI; skipped elsewhere). ``shutil.disk_usage`` and the
writers are patched in-process for the rest, so every case also runs without root.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from prm_app.cli import main
from prm_fire.models import NO_LOAD_ENV

REPO = Path(__file__).resolve().parents[1]
TREE = next(iter(sorted((REPO / "results" / "cpu-small" / "trees").glob("*.json"))), None)  # a real run's tree


def _mounted(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real file system with 8 KiB of room."""
    yield from _mounted(tmp_path / "tiny", "size=8k")


@pytest.fixture
def read_only_fs(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (chmod does not stop root; ``ro`` does)."""
    yield from _mounted(tmp_path / "ro", "ro,size=64k")


def _one_error_line(err: str) -> str:
    """The one ``error:`` line, the last thing printed (progress bars of a real run may come before it)."""
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and err.rstrip().splitlines()[-1] == lines[0] and "Traceback" not in err, err
    return lines[0]


def _plenty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Report a terabyte free wherever asked, so a write goes ahead and meets the real (full) disk."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 40, 0, 1 << 40))


BRANCH = ["branch", "--model", "smollm2-135m", "--response", "2 + 2 = 4.\nSo the answer is 4.", "--point", "line2",
          "--n", "2", "--max-new-tokens", "8"]


def test_a_full_file_system_is_refused_before_any_model_loads(tiny_fs, monkeypatch, capsys):
    monkeypatch.setenv(NO_LOAD_ENV, "1")  # a model load would raise instead of a one-line refusal
    assert main([*BRANCH, "--out", str(tiny_fs / "tree.json")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: --out: {tiny_fs / 'tree.json'}: 8,192 bytes free on its file system, ")
    assert list(tiny_fs.iterdir()) == []


def test_the_room_asked_for_grows_with_what_will_be_written(monkeypatch, tmp_path, capsys):
    """In-process: ``disk_usage`` reports 2 MB free; 2 branches of 8 tokens fit, 50 of 4096 do not."""
    from prm_app.preflight import BYTES_PER_TOKEN, MIN_FREE_BYTES, check_free_space

    monkeypatch.setenv(NO_LOAD_ENV, "1")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 40, 0, 20 << 20))
    check_free_space(tmp_path / "a" / "b.json", 20 << 20, where="--out")  # a missing folder: its parent's disk
    small = [*BRANCH, "--out", str(tmp_path / "small.json"), "--response-max-new-tokens", "16"]
    big = [*BRANCH[:-4], "--n", "50", "--max-new-tokens", "4096", "--out", str(tmp_path / "big.json")]
    # Without a model the small run stops at the load: past every check, free space included.
    with pytest.raises(RuntimeError, match=NO_LOAD_ENV):
        main(small)
    assert main(big) == 2
    need = 2 * BYTES_PER_TOKEN * (2 * 50 * 4096 + 512)
    assert need > 20 << 20 > MIN_FREE_BYTES
    assert f"--out: {tmp_path / 'big.json'}: 20,971,520 bytes free on its file system, {need:,} needed" in \
        _one_error_line(capsys.readouterr().err)


def test_table5_asks_room_for_every_problem_left(monkeypatch, tmp_path, capsys, shared_data):
    """cpu-small's chain on 41 problems, at most 384 + 8 x 10 x 512 tokens each: refused on 50 MiB."""
    monkeypatch.setenv(NO_LOAD_ENV, "1")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 40, 0, 50 << 20))
    assert main(["table5", "--config", "cpu-small", "--backend", "hf", "--out-dir", str(tmp_path)]) == 2
    need = 32 * 41 * (384 + 4 * 2 * 10 * 512)
    assert f"--out-dir: {tmp_path / 'cpu-small'}: 52,428,800 bytes free on its file system, {need:,} needed" in \
        _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_file_system_is_refused_before_any_model_loads(read_only_fs, monkeypatch, capsys):
    monkeypatch.setenv(NO_LOAD_ENV, "1")
    assert main([*BRANCH, "--out", str(read_only_fs / "tree.json")]) == 2
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: --out: {read_only_fs / 'tree.json'}: {read_only_fs} is on a read-only file system")


@pytest.mark.skipif(TREE is None, reason="no committed tree in results/cpu-small")
def test_a_disk_that_fills_during_the_write_leaves_no_partial_page(tiny_fs, monkeypatch, capsys):
    """The real kernel's ENOSPC: the page (~480 KB) does not fit in 8 KiB; exit 1, one line, nothing left."""
    _plenty(monkeypatch)
    for name in ("tree.html", "tree.png"):
        assert main(["view", str(TREE), "-o", str(tiny_fs / name)]) == 1
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {tiny_fs / name}: No space left on device; nothing written"), line
        assert list(tiny_fs.iterdir()) == []


def _failing_after(limit: int, err: int, suffix: str):
    """A ``Path.write_text`` that writes ``limit`` characters of a ``suffix`` file, then fails with ``err``
    (the hostile trial's tree.html stopped at 4,096 bytes)."""
    real = Path.write_text

    def write_text(self: Path, data: str, *args, **kwargs) -> int:
        if self.suffix != suffix:
            return real(self, data, *args, **kwargs)
        real(self, data[:limit], *args, **kwargs)
        raise OSError(err, "No space left on device" if err == errno.ENOSPC else "Read-only file system")

    return write_text


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_branch_whose_page_cannot_be_written_leaves_the_tree_whole_and_no_page(err, monkeypatch, tmp_path, capsys):
    """In-process: a real branch run on smollm2-135m; the HTML page's write fails at 4,096 characters."""
    monkeypatch.setattr(Path, "write_text", _failing_after(4096, err, ".html"))
    out = tmp_path / "tree.json"
    assert main([*BRANCH, "--out", str(out)]) == 1
    line = _one_error_line(capsys.readouterr().err)
    reason = "No space left" if err == errno.ENOSPC else "Read-only"
    assert line.startswith(f"error: {out.with_suffix('.html')}: {reason}"), line
    from prm_fire.tree import load_tree

    assert len([n for n in load_tree(out) if n.count("/") >= 2]) == 4  # the JSON is whole: 2 x 2 branches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.json"]  # no page, no temporary sibling


def test_the_tables_png_that_cannot_be_written_keeps_the_old_one(monkeypatch, tmp_path, capsys):
    """In-process: a copy of the committed cpu-small run; savefig writes half the PNG, then the disk is full."""
    from matplotlib.figure import Figure

    run = tmp_path / "cpu-small"
    shutil.copytree(REPO / "results" / "cpu-small", run)
    old = (run / "table5.png").read_bytes()
    real = Figure.savefig

    def half_then_full(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:4096])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_then_full)
    assert main(["table5", "--config", "cpu-small", "--out-dir", str(tmp_path), "--stage", "table"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {run / 'table5.png'}: No space left on device; nothing written"), line
    assert (run / "table5.png").read_bytes() == old
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
