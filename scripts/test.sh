#!/usr/bin/env bash
# The whole test suite: lint, types, pytest (unit, integration, system, every area), infra and CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
started=$SECONDS

echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
# pytest exits 5 when it collects no test: that is a failure here too (set -e).
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
echo "==> infrastructure checks (terraform, checkov, compose)"
INFRA_PYTEST=0 bash scripts/check_infra.sh
echo "==> GitLab CI checks"
bash scripts/check_ci.sh
echo "==> all checks passed in $((SECONDS - started))s"
