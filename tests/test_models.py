"""Model registry: embedded GGUF keys resolve to verified, converted folders; bad names are named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from prm_fire.models import CACHE_ENV, EMBEDDED, ModelError, cache_dir, gguf_path, resolve_model


def test_embedded_key_resolves_to_a_converted_folder():
    folder = Path(resolve_model("smollm2-135m"))
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    source = json.loads((folder / "prm_fire_source.json").read_text())
    assert source["gguf_sha256"] == EMBEDDED["smollm2-135m"].sha256
    assert "chat_template" in (folder / "tokenizer_config.json").read_text() or (folder / "chat_template.jinja").is_file()


def test_split_gguf_is_assembled_in_the_cache_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    path = gguf_path("qwen2.5-coder-0.5b")
    assert path == tmp_path / "gguf" / "qwen2.5-coder-0.5b.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert gguf_path("qwen2.5-coder-0.5b") == path  # second call verifies the cached file
    stamp = path.with_name(path.name + ".sha256.json")
    assert json.loads(stamp.read_text())["sha256"] == EMBEDDED["qwen2.5-coder-0.5b"].sha256
    assert gguf_path("qwen2.5-coder-0.5b") == path  # trusts the stamp
    with open(path, "r+b") as f:  # a file changed in place after it was stamped is hashed again
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 1]))
    with pytest.raises(ModelError, match="qwen2.5-coder-0.5b.gguf has sha256 .*expected"):
        gguf_path("qwen2.5-coder-0.5b")


def test_checksum_mismatch_is_an_error(monkeypatch):
    bad = EMBEDDED["smollm2-135m"].model_copy(update={"key": "tampered", "sha256": "0" * 64})
    monkeypatch.setitem(EMBEDDED, "tampered", bad)
    with pytest.raises(ModelError, match="model 'tampered': .* has sha256 b179c952.*expected 0000"):
        gguf_path("tampered")


def test_missing_package_names_the_install_command(monkeypatch):
    missing = EMBEDDED["smollm2-135m"].model_copy(
        update={"key": "absent", "parts": (("no_such_package_xyz", "m.gguf"),), "install": "pip install xyz"})
    monkeypatch.setitem(EMBEDDED, "absent", missing)
    with pytest.raises(ModelError, match="package 'no_such_package_xyz' is not installed; run: pip install xyz"):
        resolve_model("absent")


def test_hub_ids_pass_through_and_bad_names_fail(tmp_path):
    assert resolve_model("Qwen/Qwen2-7B-Instruct") == "Qwen/Qwen2-7B-Instruct"
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelError, match="neither an embedded key .*smollm2-135m"):
        resolve_model("no-such-model")


def test_converted_qwen_lists_both_end_ids_and_an_older_folder_is_fixed(tmp_path):
    folder = Path(resolve_model("qwen2.5-coder-0.5b"))
    assert json.loads((folder / "generation_config.json").read_text())["eos_token_id"] == [151645, 151643]
    # A folder converted before the fix names only <|im_end|>: the next resolve repairs it.
    from prm_fire.models import ensure_eos

    old = tmp_path / "old"
    old.mkdir()
    (old / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    config = json.loads((folder / "generation_config.json").read_text()) | {"eos_token_id": 151645}
    (old / "generation_config.json").write_text(json.dumps(config))
    assert ensure_eos("qwen2.5-coder-0.5b", old) is True
    assert json.loads((old / "generation_config.json").read_text())["eos_token_id"] == [151645, 151643]
    assert ensure_eos("qwen2.5-coder-0.5b", old) is False  # nothing left to fix
    assert ensure_eos("smollm2-135m", old) is False  # SmolLM2's upstream config names one end id


def test_model_names_are_checked_without_loading(tmp_path):
    from prm_fire.models import check_model_name

    assert check_model_name("smollm2-135m") == "embedded"
    assert check_model_name("Qwen/Qwen2-7B-Instruct") == "hub"
    assert check_model_name(str(Path(resolve_model("smollm2-135m")))) == "folder"
    with pytest.raises(ModelError, match="model 'smollm2' is neither an embedded key"):
        check_model_name("smollm2")
    with pytest.raises(ModelError, match="has no config.json"):
        check_model_name(str(tmp_path))
