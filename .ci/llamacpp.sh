#!/usr/bin/env bash
# CI for the llama.cpp backend: install the `llamacpp` extra if missing, then run its marked tests.
# llama-cpp-python has no wheel on PyPI: a cold install compiles llama.cpp with cmake (~4.5 min on an
# idle 2-core machine, 17 min on a busy one); pip caches the built wheel, so a second install takes seconds.
# The tests take ~10 min on a busy 2-core machine (one llama.cpp thread; HF models load too).
# Needs the project and the embedded models installed first (.ci/run does that).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if ! python -c "import llama_cpp" 2>/dev/null; then
    pip install --quiet --disable-pip-version-check -e ".[llamacpp]"
fi
echo "llamacpp install took $(( $(date +%s) - start ))s"
python -m pytest -m llamacpp -q -p no:cacheprovider
echo "llamacpp CI took $(( $(date +%s) - start ))s"
