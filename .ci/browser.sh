#!/usr/bin/env bash
# Browser test of the HTML tree view (tests/test_view_browser.py): headless Debian Chromium driven by
# selenium on a tree made with smollm2-135m. Installs what is missing (idempotent, quiet), then runs
# the tests marked `browser`. Needs the project installed as .ci/run does (model packages included).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1 \
    || { tail -n 20 "$log"; echo "apt-get install chromium chromium-driver failed" >&2; exit 1; }
fi
if ! python -c "import selenium, PIL" 2>/dev/null; then
  pip install --quiet --disable-pip-version-check -e ".[browser]"
fi
echo "browser install took $(( $(date +%s) - start ))s"
python -m pytest -m browser -q -p no:cacheprovider
echo "browser tests took $(( $(date +%s) - start ))s"
