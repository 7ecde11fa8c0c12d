#!/usr/bin/env bash
# Create .venv when it is missing (or when pyproject.toml or constraints.txt changed) and install the project into it.
#   scripts/bootstrap.sh          the provider with every extra and the dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      PYTHON="$candidate"
      break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "error: Python >= 3.11 is required (apt-get install python3.11 python3.11-venv)" >&2
  exit 1
fi

stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv || {
    echo "error: '$PYTHON -m venv' failed; on Debian install python3-venv (apt-get install python3.11-venv)" >&2
    exit 1
  }
fi
echo "==> installing airflow-provider-mlops[dev] into .venv (first time: about a minute)"
# constraints.txt pins the versions the tests ran with: without it pip's resolver can spend many
# minutes backtracking between boto3 and aiobotocore releases.
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
rm -f .venv/.installed-*
touch "$stamp"
