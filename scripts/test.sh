#!/usr/bin/env bash
# The whole test suite: lint, types, pytest (unit, integration, system, every area), infra and CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/system_deps.sh
started=$SECONDS

echo "==> ruff"
.venv/bin/ruff check .
echo "==> mypy"
.venv/bin/mypy
echo "==> GitLab CI checks (installs gitlab-ci-local into ci-tools/ for the tests below)"
bash scripts/check_ci.sh
echo "==> infrastructure checks (terraform, checkov, compose)"
INFRA_PYTEST=0 bash scripts/check_infra.sh
echo "==> docs (mkdocs build --strict: every page in the nav, every link and anchor resolves)"
docs_site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$docs_site"
rm -rf "$docs_site"
echo "==> pytest"
# pytest exits 5 when it collects no test: that is a failure here too (set -e).
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
echo "==> all checks passed in $((SECONDS - started))s"
