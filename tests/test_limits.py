"""Context and memory limits read from real model configs and GGUF metadata, without loading weights."""

from __future__ import annotations

import pytest

from prm_fire.limits import LimitError, _gguf_shape, check_context, check_memory, decode_bytes, model_shape
from prm_fire.models import gguf_path


def test_shape_of_the_converted_folder_matches_the_gguf_metadata():
    folder = model_shape("smollm2-135m")
    assert (folder.context_length, folder.layers, folder.kv_heads, folder.head_dim, folder.vocab_size) == (
        8192, 30, 3, 64, 49152)
    assert _gguf_shape(gguf_path("smollm2-135m"), "smollm2-135m") == folder


def test_qwen_shape_from_its_converted_config():
    shape = model_shape("qwen2.5-coder-0.5b")
    assert (shape.context_length, shape.layers, shape.kv_heads, shape.head_dim) == (32768, 24, 2, 64)
    assert shape.kv_bytes_per_token(4) == 24 * 2 * 64 * 2 * 4


def test_context_and_memory_limits_refuse_with_the_numbers():
    shape = model_shape("smollm2-135m")
    check_context(shape, 8000, 192)
    with pytest.raises(LimitError, match=r"x: 8000 prompt tokens \+ 193 new tokens = 8193 exceed the context"):
        check_context(shape, 8000, 193, what="x")
    # The case: n=100000 wanted 19.6 GB for its first logits tensor alone; the estimate covers it.
    assert decode_bytes(shape, 100000, 600) > 4 * 100000 * 49152
    check_memory(shape, 10, 800, available=2 * 2**30)
    with pytest.raises(LimitError, match="--n 100000: 100000 sequences of 600 tokens need about"):
        check_memory(shape, 100000, 600, available=24 * 2**30, what="--n 100000")
