#!/usr/bin/env bash
# test job: the model repository's tests, in a job with no AWS credentials.
#
#   test.sh [DIR]      (default $MLOPS_WORKDIR)
#
# Installs DIR/requirements.txt (or MLOPS_TEST_REQUIREMENTS) if present, then runs pytest and
# writes report.xml (JUnit) beside the job. A repository without tests passes with a notice,
# unless MLOPS_REQUIRE_TESTS=true.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${1:-$MLOPS_WORKDIR}"
report="$(pwd)/report.xml"
[ -d "$dir" ] || die "$dir is not a folder"
cd "$dir" || exit 1
requirements="${MLOPS_TEST_REQUIREMENTS:-requirements.txt}"
if [ -f "$requirements" ] && [ "${MLOPS_SKIP_INSTALL:-false}" != true ]; then
  "$MLOPS_PYTHON" -m pip install --quiet -r "$requirements"
fi
if [ -z "$(find . -path ./.git -prune -o \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit)" ]; then
  [ "${MLOPS_REQUIRE_TESTS:-false}" != true ] || die "no tests found in $dir and MLOPS_REQUIRE_TESTS=true"
  log "no tests found in $dir: nothing to run"
  exit 0
fi
"$MLOPS_PYTHON" -m pytest -q --junitxml="$report"
