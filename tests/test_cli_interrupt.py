"""Ctrl-C during a real run: no traceback, one line saying what is recorded and how to resume, exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _interrupt_when(argv: list[str], marker: str, cwd: Path, until: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI; the moment ``marker`` appears on stdout (and file ``until`` exists), send SIGINT.

    The marker is the command's own readiness signal (printed as the work it names starts), so the
    signal lands inside that work however fast or slow the machine is: no fixed sleep to outrun."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "prm_app.cli", *argv], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = []
    try:
        for line in process.stdout:
            out.append(line)
            if marker in line:
                break
        assert process.poll() is None, "".join(out) + process.stderr.read()
        deadline = time.monotonic() + 300
        while until is not None and not until.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(argv, process.returncode, "".join(out) + rest, err)


def _status_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("interrupted:")]


def test_ctrl_c_in_branch_says_nothing_was_written(tmp_path):
    out = tmp_path / "tree.json"
    done = _interrupt_when(["branch", "--model", "smollm2-135m", "--response-from", "model", "--n", "4",
                            "--response-max-new-tokens", "400",
                            "--out", str(out)], "sampling a base response", tmp_path)
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert _status_lines(done.stderr) == [
        f"interrupted: nothing written (the tree goes to {out} once every branch is graded); "
        "rerun the same command to start again"]
    assert done.stderr.rstrip().splitlines()[-1].startswith("interrupted:")  # no progress bar drawn after it
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_in_table5_names_what_the_journals_hold(tmp_path, shared_data):
    config = tmp_path / "c.toml"
    config.write_text(f"""
name = "c"
out_dir = "{tmp_path}"
model = "smollm2-135m"
[data]
path = "{shared_data / 'gsm8k' / 'train.jsonl'}"
limit = 50
[base_sampling]
method = "regular"
max_new_tokens = 48
[prm]
name = "rollout"
options = {{ model = "smollm2-135m", m = 1, max_new_tokens = 8 }}
[insertion]
n = 2
ks = [1, 2]
[insertion.sampling]
method = "regular"
max_new_tokens = 8
""")
    done = _interrupt_when(["table5", "--config", str(config), "--stage", "dataset"], "config c:", tmp_path,
                           until=tmp_path / "c" / "attempts.jsonl")
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr[-2000:]
    [status] = _status_lines(done.stderr)
    tried = len((tmp_path / "c" / "attempts.jsonl").read_text().splitlines())
    assert status.startswith(f"interrupted: {tmp_path / 'c'} holds {tried} problems tried, ") and tried >= 1
    assert status.endswith("the unit in progress was dropped; rerun the same command to resume")
