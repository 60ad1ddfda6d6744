"""Input checks shared by the command line and the Python API (no model loads)."""

from __future__ import annotations

import importlib.util

import pytest

from prm_app.preflight import InputError, Request, TokenCounter, check_backend, check_requests, cut_response, \
    read_problems
from prm_fire.limits import model_shape
from prm_fire.problems import DataError, load_problems

RESPONSE = "Step one.\nStep two.\nStep three.\nSo \\boxed{4}"


def test_backends_are_checked_by_name_and_package():
    check_backend("hf")
    with pytest.raises(InputError, match="unknown backend 'onnx'; known: hf, llamacpp, vllm"):
        check_backend("onnx")
    if importlib.util.find_spec("llama_cpp") is None:
        with pytest.raises(InputError, match=r"needs the 'llama_cpp' package.*pip install 'prm-fire\[llamacpp\]'"):
            check_backend("llamacpp")


def test_first_error_must_fit_the_response_and_the_point():
    assert cut_response(RESPONSE, "line2", first_error_index=3).kept_steps == 1
    assert cut_response(RESPONSE, "prm", first_error_index=2).kept_steps == 2
    with pytest.raises(InputError, match="--first-error 7: the response has 4 lines"):
        cut_response(RESPONSE, "line2", first_error_index=7)
    with pytest.raises(InputError, match="--first-error 1: insertion point line3 keeps lines 0-1"):
        cut_response(RESPONSE, "line3", first_error_index=1)
    with pytest.raises(InputError, match="--point line9: .*response has 4 lines, insertion point line9 needs 9"):
        cut_response(RESPONSE, "line9")


def test_data_files_missing_folder_or_bad(tmp_path, shared_data):
    assert len(read_problems(shared_data / "gsm8k" / "test.jsonl")) > 1000
    with pytest.raises(InputError, match="is a folder"):
        read_problems(tmp_path)
    with pytest.raises(DataError, match="is a folder, not a data file"):  # the API's own loader too
        load_problems(tmp_path)


def test_token_counts_are_a_lower_bound_of_the_templated_prompt(shared_data):
    from transformers import AutoTokenizer

    from prm_fire.models import resolve_model
    from prm_fire.problems import load_problems
    from prm_fire.prompts import build_messages

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    counter = TokenCounter("smollm2-135m")
    for problem in load_problems(shared_data / "gsm8k" / "test.jsonl", limit=20):
        messages = build_messages(problem)
        prefix = problem.solution.split("\n")[0]
        exact = tokenizer.apply_chat_template([m.model_dump() for m in messages], tokenize=False,
                                              add_generation_prompt=True) + prefix
        lower = counter.at_least((*(m.content for m in messages), prefix))
        assert 0.5 * len(tokenizer(exact, add_special_tokens=False)["input_ids"]) <= lower
        assert lower <= len(tokenizer(exact, add_special_tokens=False)["input_ids"])


def test_requests_over_the_context_are_refused():
    shape = model_shape("smollm2-135m")
    check_requests(shape, [Request("ok", ("What is 2 + 2?",), 512)], n=10)
    with pytest.raises(InputError, match="long: .* exceed the context of model 'smollm2-135m'"):
        check_requests(shape, [Request("long", ("word " * 9000,), 16)])
