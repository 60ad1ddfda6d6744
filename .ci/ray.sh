#!/usr/bin/env bash
# CI for the Ray executor: install the `ray` extra if missing (a wheel, ~10 s), then run the tests
# marked `ray`. Each starts a local Ray cluster of 2 CPUs (no dashboard, 500 MiB object store) with two
# smollm2-135m actors, compares with local runs and stops the cluster. Measured 2026-11-30 on the
# 2-core machine loaded by other jobs: 12 min at load average 8-9 (chain tests 10.3 min, branching 1.5 min);
# the whole script 20 min at load average 18-20.
# Needs the project and the embedded models installed first (.ci/run does that).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if ! python -c "import ray.data" 2>/dev/null; then
    pip install --quiet --disable-pip-version-check -e ".[ray]"
fi
echo "ray install took $(( $(date +%s) - start ))s"
OMP_NUM_THREADS=1 python -m pytest -m ray -q -p no:cacheprovider
echo "ray CI took $(( $(date +%s) - start ))s"
