"""Will a request fit? Context length and memory of a generation, read from the model's config alone.

Before a model is loaded (command line) or before a batch is decoded (backends), two questions:

* **context**: ``prompt tokens + max_new_tokens`` must not exceed the model's context window
  (``max_position_embeddings``); past it a model writes garbage, it does not fail.
* **memory**: n branches decoded together hold a KV cache of
  ``layers x kv heads x head dim x 2 (K and V) x bytes per value x n x (prompt + max_new_tokens)``
  bytes, plus n rows of float32 logits over the vocabulary (a few copies of them while sampling). A
  request whose estimate exceeds the memory available now is refused instead of swapping or dying.

:func:`model_shape` reads what these need without loading weights: the ``config.json`` of a folder
(a converted embedded model or a local HF folder), the hub's ``config.json`` for a hub id, or the GGUF
metadata (``gguf`` package) of an embedded model not converted yet. :func:`check_context` and
:func:`check_memory` raise :class:`LimitError` (a ``ValueError``) with one line naming the numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

LOGIT_COPIES = 4
"""Float32 copies of the n x vocabulary logits alive at once while sampling (raw, guarded, filtered, noise)."""


class LimitError(ValueError):
    """A request that does not fit the model's context window or the machine's memory."""


class ModelShape(BaseModel):
    """The sizes of a decoder model that bound a request (from its config, no weights)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The model name as given (embedded key, folder, hub id).")
    context_length: int = Field(ge=1, description="max_position_embeddings: prompt + new tokens must fit.")
    layers: int = Field(ge=1)
    kv_heads: int = Field(ge=1, description="Key/value heads (grouped-query attention: fewer than query heads).")
    head_dim: int = Field(ge=1)
    vocab_size: int = Field(ge=1)

    def kv_bytes_per_token(self, bytes_per_value: int) -> int:
        """KV-cache bytes one token of one sequence holds: layers x kv heads x head dim x 2 x bytes."""
        return self.layers * self.kv_heads * self.head_dim * 2 * bytes_per_value


def shape_from_config(config: dict[str, Any] | Any, name: str) -> ModelShape:
    """A :class:`ModelShape` from an HF ``config.json`` dict or a loaded model's ``PretrainedConfig``."""
    get = config.get if isinstance(config, dict) else (lambda key, default=None: getattr(config, key, default))
    heads = get("num_attention_heads")
    context = get("max_position_embeddings") or get("n_positions") or get("max_sequence_length")
    layers = get("num_hidden_layers")
    if not (heads and context and layers and get("vocab_size")):
        raise LimitError(f"model {name!r}: its config lacks max_position_embeddings, num_hidden_layers, "
                         "num_attention_heads or vocab_size")
    return ModelShape(
        name=name,
        context_length=context,
        layers=layers,
        kv_heads=get("num_key_value_heads") or heads,
        head_dim=get("head_dim") or get("hidden_size") // heads,
        vocab_size=get("vocab_size"),
    )


def _gguf_shape(path: Path, name: str) -> ModelShape:
    """The shape in a GGUF file's metadata, read once per file: kept beside the cache as JSON (reading a
    150k-token vocabulary with ``gguf`` takes 10-40 s)."""
    from prm_fire.models import metadata_file

    saved = metadata_file(name, "shape.json")
    if saved.is_file():
        return ModelShape.model_validate_json(saved.read_text())
    shape = _read_gguf_shape(path, name)
    tmp = saved.with_name(f".{saved.name}.{os.getpid()}")
    tmp.write_text(shape.model_dump_json())
    os.replace(tmp, saved)
    return shape


def _read_gguf_shape(path: Path, name: str) -> ModelShape:
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def value(key: str) -> Any:
        field = fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture")
    heads = value(f"{arch}.attention.head_count")
    vocab = fields.get("tokenizer.ggml.tokens")
    return ModelShape(
        name=name,
        context_length=value(f"{arch}.context_length"),
        layers=value(f"{arch}.block_count"),
        kv_heads=value(f"{arch}.attention.head_count_kv") or heads,
        head_dim=value(f"{arch}.attention.key_length") or value(f"{arch}.embedding_length") // heads,
        vocab_size=len(vocab.data) if vocab is not None else value(f"{arch}.vocab_size"),
    )


def model_shape(name: str) -> ModelShape:
    """The shape of model ``name`` without loading weights or converting anything.

    An embedded key reads its converted folder's ``config.json``, or, before the first conversion,
    the GGUF metadata (about 10 s for Qwen's 150k-token vocabulary); a folder its ``config.json``; a
    hub id the hub's ``config.json`` (``huggingface_hub``, which uses its local cache). Raises
    :class:`prm_fire.models.ModelError` for a name that is none of these or a config that cannot be read.
    """
    from prm_fire.models import EMBEDDED, ModelError, check_model_name, converted_folder, gguf_path

    kind = check_model_name(name)
    if kind == "embedded":
        folder = converted_folder(name)
        if folder is None:
            return _gguf_shape(gguf_path(name), name)
        config_path = folder / "config.json"
    elif kind == "folder":
        config_path = Path(name).expanduser() / "config.json"
    else:
        try:
            from huggingface_hub import hf_hub_download

            config_path = Path(hf_hub_download(name, "config.json"))
        except Exception as err:  # noqa: BLE001 - any hub failure means the model cannot be used here
            raise ModelError(f"model {name!r}: cannot read its config.json from the hub ({type(err).__name__})") from None
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"model {name!r}: cannot read {config_path} ({err})") from None
    if name in EMBEDDED or "text_config" not in config:
        return shape_from_config(config, name)
    return shape_from_config(config["text_config"], name)  # multimodal configs nest the decoder's


def fits_context(shape: ModelShape, prompt_tokens: int, max_new_tokens: int) -> bool:
    """Whether ``prompt_tokens + max_new_tokens`` fit the context window (:func:`check_context` raises if not)."""
    return prompt_tokens + max_new_tokens <= shape.context_length


def check_context(shape: ModelShape, prompt_tokens: int, max_new_tokens: int, *, what: str = "request") -> None:
    """Raise :class:`LimitError` if ``prompt_tokens + max_new_tokens`` exceeds the context window.

    ``what`` names the request in the message (``"problem 'gsm8k/12': prompt + prefix"``).

    >>> shape = ModelShape(name="m", context_length=8192, layers=30, kv_heads=3, head_dim=64, vocab_size=49152)
    >>> check_context(shape, 8000, 100)
    >>> check_context(shape, 21000, 256, what="--response")
    Traceback (most recent call last):
    ...
    prm_fire.limits.LimitError: --response: 21000 prompt tokens + 256 new tokens = 21256 exceed the context of model 'm' (8192 tokens)
    """
    if not fits_context(shape, prompt_tokens, max_new_tokens):
        total = prompt_tokens + max_new_tokens
        raise LimitError(f"{what}: {prompt_tokens} prompt tokens + {max_new_tokens} new tokens = {total} exceed "
                         f"the context of model {shape.name!r} ({shape.context_length} tokens)")


def decode_bytes(shape: ModelShape, n: int, tokens: int, *, bytes_per_value: int = 4) -> int:
    """Memory ``n`` sequences of ``tokens`` tokens need while decoding together: KV cache plus logits.

    >>> shape = ModelShape(name="m", context_length=8192, layers=30, kv_heads=3, head_dim=64, vocab_size=49152)
    >>> decode_bytes(shape, 10, 768) // 2**20
    345
    """
    kv = shape.kv_bytes_per_token(bytes_per_value) * n * tokens
    logits = LOGIT_COPIES * 4 * n * shape.vocab_size
    return kv + logits


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable`` of ``/proc/meminfo``; elsewhere free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(
    shape: ModelShape,
    n: int,
    tokens: int,
    *,
    bytes_per_value: int = 4,
    available: int | None = None,
    what: str = "request",
) -> None:
    """Raise :class:`LimitError` if decoding ``n`` sequences of ``tokens`` tokens needs more than ``available``.

    ``tokens`` is prompt + max_new_tokens; ``bytes_per_value`` the KV cache's dtype (4: float32, the
    HF backend's default; 2: bfloat16/float16); ``available`` defaults to :func:`available_memory`.

    >>> shape = ModelShape(name="m", context_length=8192, layers=30, kv_heads=3, head_dim=64, vocab_size=49152)
    >>> check_memory(shape, 10, 768, available=2**30)
    >>> check_memory(shape, 100000, 768, available=16 * 2**30, what="--n")
    Traceback (most recent call last):
    ...
    prm_fire.limits.LimitError: --n: 100000 sequences of 768 tokens need about 3.6 TB (KV cache and logits of model 'm'), more than the 17.2 GB available
    """
    need = decode_bytes(shape, n, tokens, bytes_per_value=bytes_per_value)
    have = available_memory() if available is None else available
    if need > have:
        raise LimitError(f"{what}: {n} sequences of {tokens} tokens need about {_size(need)} (KV cache and logits "
                         f"of model {shape.name!r}), more than the {_size(have)} available")


def _size(nbytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"
