#!/usr/bin/env bash
# Check this repository's GitLab CI configuration; exits non-zero on any failure.
#
#   scripts/check_ci.sh
#
#  1. .gitlab-ci.yml and ci/*.yml against GitLab's CI JSON schema (check-jsonschema's
#     vendor.gitlab-ci): keys, types, enums.
#  2. scripts/ci/*.sh parse (bash -n; terraform.sh with sh -n), and shellcheck (Debian's package,
#     installed with apt-get when missing and running as root).
#  3. gitlab-ci-local 4.73.0 (the newest that runs on Node 20): each kind of pipeline (model,
#     scheduled retrain, this repository's own) resolves its includes, extends, needs and stages.
#     It is installed into ci-tools/node_modules on first use.
# A check that cannot run (a tool missing and not installable) is a failure, never a skip.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
failures=()
step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAILED: $*" >&2
  failures+=("$*")
}

step "GitLab CI schema: .gitlab-ci.yml ci/*.yml"
check_jsonschema="$(command -v check-jsonschema || true)"
[ -n "$check_jsonschema" ] || [ ! -x "$repo/.venv/bin/check-jsonschema" ] || check_jsonschema="$repo/.venv/bin/check-jsonschema"
if [ -z "$check_jsonschema" ]; then
  fail "check-jsonschema is not installed (pip install check-jsonschema)"
else
  "$check_jsonschema" --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci .gitlab-ci.yml ci/*.yml ||
    fail "GitLab CI schema"
fi

step "job scripts: scripts/ci/*.sh"
for script in scripts/ci/*.sh; do
  if [ "$(basename "$script")" = terraform.sh ]; then
    sh -n "$script" || fail "sh -n $script"
  else
    bash -n "$script" || fail "bash -n $script"
  fi
done
if ! command -v shellcheck >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  (apt-get install -y -qq shellcheck >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }) ||
    echo "apt-get install shellcheck failed" >&2
fi
if command -v shellcheck >/dev/null; then
  shellcheck -x -S warning scripts/ci/*.sh scripts/check_ci.sh scripts/test.sh scripts/system_deps.sh lambda/build.sh ||
    fail "shellcheck"
else
  fail "shellcheck is not installed and could not be (apt-get install shellcheck)"
fi

step "gitlab-ci-local: jobs of each kind of pipeline"
glc="$repo/ci-tools/node_modules/.bin/gitlab-ci-local"
if [ ! -x "$glc" ] && command -v npm >/dev/null; then
  (cd ci-tools && npm install --no-audit --no-fund --ignore-scripts --loglevel=error) ||
    echo "npm install of gitlab-ci-local failed" >&2
fi
if [ -x "$glc" ] && command -v node >/dev/null && command -v git >/dev/null; then
  snapshot="$(mktemp -d)"
  trap 'rm -rf "$snapshot"' EXIT
  cp .gitlab-ci.yml "$snapshot/"
  mkdir -p "$snapshot/scripts"
  cp -r scripts/ci "$snapshot/scripts/"
  cp -r ci "$snapshot/"
  (
    cd "$snapshot"
    git init -q -b main
    git add -A
    git -c user.email=ci@example.com -c user.name=ci commit -qm snapshot
    git remote add origin "$snapshot"
    git fetch -q origin
    git remote set-head origin main
  ) >/dev/null
  for kind in "CI_PIPELINE_SOURCE=pipeline MLOPS_UPSTREAM_PROJECT_ID=1" "CI_PIPELINE_SOURCE=schedule" "CI_PIPELINE_SOURCE=push"; do
    args=()
    for variable in $kind; do args+=(--variable "$variable"); done
    echo "-- $kind"
    (cd "$snapshot" && "$glc" --validate-dependency-chain --list --ignore-predefined-vars CI_PIPELINE_SOURCE "${args[@]}") ||
      fail "gitlab-ci-local ($kind)"
  done
  # A model repository that includes the template (as `local:` here; `project:` in GitLab).
  model="$snapshot/model-repo"
  mkdir -p "$model/ci"
  cp ci/model-repo.gitlab-ci.yml "$model/ci/"
  [ ! -d examples/breast-cancer ] || cp -r examples/breast-cancer/. "$model/"
  printf 'include:\n  - local: ci/model-repo.gitlab-ci.yml\n' >"$model/.gitlab-ci.yml"
  (cd "$model" && git init -q -b main && git add -A && git -c user.email=ci@example.com -c user.name=ci commit -qm model) >/dev/null
  echo "-- a model repository including ci/model-repo.gitlab-ci.yml, on its default branch"
  (cd "$model" && "$glc" --validate-dependency-chain --list --ignore-predefined-vars CI_COMMIT_BRANCH \
    --variable CI_COMMIT_BRANCH=main --variable CI_DEFAULT_BRANCH=main) || fail "gitlab-ci-local (model repository)"
else
  fail "gitlab-ci-local could not run (needs Node 20+, npm and git; see ci-tools/package.json)"
fi

echo
if [ "${#failures[@]}" -gt 0 ]; then
  echo "check_ci: ${#failures[@]} failure(s): ${failures[*]}" >&2
  exit 1
fi
echo "check_ci: all checks passed"
