#!/usr/bin/env bash
# prepare job, part 1: download the model repository's bundle (the upstream mlops:bundle job's
# artifacts) into $MLOPS_WORKDIR. Needs MLOPS_GITLAB_API_URL (ci/platform.env), CI_JOB_TOKEN (or MLOPS_UPSTREAM_TOKEN),
# MLOPS_UPSTREAM_PROJECT_ID, MLOPS_UPSTREAM_JOB_ID, MLOPS_UPSTREAM_COMMIT_SHA.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Inside GitLab the API address comes from ci/platform.env only: a triggering pipeline could
# otherwise point CI_API_V4_URL elsewhere and receive this job's CI_JOB_TOKEN.
[ "${GITLAB_CI:-}" = true ] || export MLOPS_GITLAB_API_URL="${MLOPS_GITLAB_API_URL:-${CI_API_V4_URL:-}}"
require_vars MLOPS_GITLAB_API_URL MLOPS_UPSTREAM_PROJECT_ID MLOPS_UPSTREAM_JOB_ID MLOPS_UPSTREAM_COMMIT_SHA
rm -rf "$MLOPS_WORKDIR"
"$MLOPS_PYTHON" "$MLOPS_CI_DIR/upstream.py" fetch --dest "$MLOPS_WORKDIR"
[ -f "$MLOPS_WORKDIR/$MLOPS_CONFIG" ] || die "$MLOPS_CONFIG is not in the model repository (MLOPS_CONFIG)"
