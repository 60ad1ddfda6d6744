"""The vLLM backend's CPU thread binding (:func:`prm_fire.generators.vllm.cpu_threads_env`).

A pure function of the environment and the usable cores; it runs without vLLM. The engine started
with it is checked in tests/test_generator_vllm.py.
"""

from __future__ import annotations

import os

import pytest

from prm_fire.generators.vllm import SMALL_CPU, cpu_threads_env


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.delenv("VLLM_CPU_NUM_OF_RESERVED_CPU", raising=False)
    return monkeypatch


def test_two_usable_cores_are_both_bound_and_none_reserved(clean_env):
    clean_env.setattr(os, "sched_getaffinity", lambda _pid: {3, 1})
    assert cpu_threads_env() == {"VLLM_CPU_OMP_THREADS_BIND": "1,3", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


@pytest.mark.parametrize("variable, value", [("VLLM_CPU_OMP_THREADS_BIND", "0"),
                                             ("VLLM_CPU_NUM_OF_RESERVED_CPU", "1")])
def test_the_users_own_setting_wins(clean_env, variable, value):
    clean_env.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    clean_env.setenv(variable, value)
    assert cpu_threads_env() == {}


@pytest.mark.parametrize("cores", [1, SMALL_CPU + 1, 64])
def test_one_core_or_a_large_machine_keeps_vllms_binding(clean_env, cores):
    clean_env.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert cpu_threads_env() == {}


def test_parallel_engines_keep_vllms_binding(clean_env):
    clean_env.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert cpu_threads_env(world_size=2) == {}
