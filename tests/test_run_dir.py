"""prm_app/experiments/run_dir.py: one writer per run folder, and a folder resumed only with its own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prm_app.experiments.config import load_config
from prm_app.experiments.run_dir import LOCK, RECORD, RunLock, check_settings, clear, record_fields, write_record
from prm_app.preflight import InputError


@pytest.fixture()
def config(tmp_path):
    return load_config("cpu-small", out_dir=str(tmp_path))


def test_record_holds_the_fields_that_change_records_and_not_the_free_ones(config):
    fields = record_fields(config)
    assert fields["model"] == config.model and fields["backend"] == config.backend
    assert fields["base_sampling.temperature"] == config.base_sampling.temperature
    assert fields["insertion.n"] == config.insertion.n and fields["data.path"] == config.data.path
    assert not {"name", "out_dir", "wave_size", "data.limit", "insertion.ks", "insertion.points"} & fields.keys()
    assert not [key for key in fields if key.startswith("executor")]


def test_a_folder_without_a_record_is_resumed_and_gets_one(config):
    check_settings(config, where="--config cpu-small")  # a folder made before records: accepted
    config.run_dir.mkdir(parents=True)
    write_record(config)
    assert json.loads((config.run_dir / RECORD).read_text())["fields"] == record_fields(config)
    check_settings(config.model_copy(update={"wave_size": 3}), where="--config cpu-small")  # free fields


def test_other_settings_are_refused_naming_the_field_unless_overwrite(config):
    config.run_dir.mkdir(parents=True)
    write_record(config)
    other = config.model_copy(update={"backend": "hf", "model": "smollm2-135m"})
    with pytest.raises(InputError, match=r"--config x: .* was made with backend = \"vllm\", this run has \"hf\" "
                                         r"\(and 1 more field\(s\)\); use another --out-dir, or --overwrite"):
        check_settings(other, where="--config x")
    check_settings(other, where="--config x", overwrite=True)
    (config.run_dir / "attempts.jsonl").write_text("{}\n")
    (config.run_dir / "insertion").mkdir()
    with RunLock(config.run_dir, where="--out-dir"):
        clear(config.run_dir)
        assert [p.name for p in config.run_dir.iterdir()] == [LOCK]


def test_a_second_run_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(config):
    with RunLock(config.run_dir, where="--out-dir"):
        assert (config.run_dir / LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(InputError, match=rf"--out-dir: .* is being written by another run \(pid {os.getpid()},"):
            RunLock(config.run_dir, where="--out-dir").__enter__()
    assert not (config.run_dir / LOCK).exists()  # released on exit
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (config.run_dir / LOCK).write_text(dead.stdout)  # a run that was killed: its process is gone
    with RunLock(config.run_dir, where="--out-dir"):
        assert (config.run_dir / LOCK).read_text() == f"{os.getpid()}\n"
