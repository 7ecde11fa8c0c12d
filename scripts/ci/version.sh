#!/usr/bin/env bash
# prepare job, part 2: validate mlops.yaml and allocate this build's version.
#
#   version.sh [DOTENV]        (default version.env, a dotenv report for later jobs)
#
# `mlops version next` owns the semver rules (MAJOR.MINOR from mlops.yaml, the build number as
# PATCH), so CI and the registry agree. The build number is the model repository's pipeline
# IID: it grows with every pipeline of that repository.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-version.env}"
require_vars MLOPS_UPSTREAM_COMMIT_SHA
build_number="${MLOPS_BUILD_NUMBER:-${MLOPS_UPSTREAM_PIPELINE_IID:-${CI_PIPELINE_IID:-}}}"
[ -n "$build_number" ] || die "no build number: set MLOPS_UPSTREAM_PIPELINE_IID (the trigger passes it)"
config="$MLOPS_WORKDIR/$MLOPS_CONFIG"
[ -f "$config" ] || die "$config not found: did the prepare job fetch the model repository?"

mlops validate "$config"
lines="$(mlops version next --config "$config" --build-number "$build_number" --commit "$MLOPS_UPSTREAM_COMMIT_SHA")"

: >"$out"
for key in MLOPS_PROJECT MLOPS_MODEL MLOPS_VERSION MLOPS_IMAGE_TAG MLOPS_COMMIT_TAG MLOPS_ECR_REPOSITORY; do
  value="$(printf '%s\n' "$lines" | sed -n "s/^$key=//p" | tail -n 1)"
  [ -n "$value" ] || die "mlops version next did not print $key"
  dotenv_put "$out" "$key" "$value"
done
dotenv_put "$out" MLOPS_COMMIT "$MLOPS_UPSTREAM_COMMIT_SHA"
validate_as_published "$config" "$(sed -n 's/^MLOPS_PROJECT=//p' "$out")" "$(sed -n 's/^MLOPS_MODEL=//p' "$out")"
log "version: $(sed -n 's/^MLOPS_VERSION=//p' "$out") of $(sed -n 's/^MLOPS_ECR_REPOSITORY=//p' "$out")"
cat "$out"
