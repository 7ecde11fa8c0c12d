#!/usr/bin/env bash
# package job: build the model image and push it to ECR as
#   <registry>/<project>/<model>:<semver>  and  :<commit tag>
#
#   package.sh [DOTENV]       (default package.env: MLOPS_IMAGE, MLOPS_IMAGE_DIGEST)
#
# Needs the prepare job's dotenv (MLOPS_VERSION, MLOPS_COMMIT_TAG, MLOPS_ECR_REPOSITORY,
# MLOPS_PROJECT, MLOPS_MODEL, MLOPS_COMMIT). The repository must exist (Terraform makes one per
# model) and tags are immutable: an existing semver tag is an error, an existing commit tag
# (an earlier build of the same commit) is left as it is. MLOPS_IMAGE is pinned by digest.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-package.env}"
require_vars MLOPS_VERSION MLOPS_COMMIT_TAG MLOPS_ECR_REPOSITORY MLOPS_PROJECT MLOPS_MODEL MLOPS_COMMIT
docker="${MLOPS_DOCKER:-docker}"
context="$MLOPS_WORKDIR/$MLOPS_MODEL_DIR"
dockerfile="${MLOPS_DOCKERFILE:-$context/Dockerfile}"
[ -f "$dockerfile" ] || die "$dockerfile not found: the model repository needs a Dockerfile (MLOPS_DOCKERFILE)"
aws_login

# Fail before pushing anything if another GitLab project owns this project/model name.
if [ -n "${MLOPS_DAGS_BUCKET:-}" ]; then
  ci_aws s3-check-owner --bucket "$MLOPS_DAGS_BUCKET" \
    --key "$MLOPS_CONFIGS_PREFIX/$MLOPS_PROJECT/$MLOPS_MODEL/mlops.yaml" \
    --owner "${MLOPS_UPSTREAM_PROJECT_PATH:-${CI_PROJECT_PATH:-}}"
fi

registry="$(ci_aws ecr-registry)"
repository_uri="$registry/$MLOPS_ECR_REPOSITORY"

# tag_exists TAG: 0 if the tag is in ECR, 1 if not; any other failure (no repository) stops the job.
tag_exists() {
  local status=0
  ci_aws ecr-digest --repository "$MLOPS_ECR_REPOSITORY" --tag "$1" >/dev/null || status=$?
  case "$status" in
    0) return 0 ;;
    4) return 1 ;;
    *) exit "$status" ;;
  esac
}

if tag_exists "$MLOPS_VERSION"; then
  die "$repository_uri:$MLOPS_VERSION already exists and tags are immutable: run a new pipeline for a new build number"
fi
tags=("$MLOPS_VERSION")
if tag_exists "$MLOPS_COMMIT_TAG"; then
  log "$repository_uri:$MLOPS_COMMIT_TAG exists (an earlier build of this commit): pushing $MLOPS_VERSION only"
else
  tags+=("$MLOPS_COMMIT_TAG")
fi

ci_aws ecr-password | "$docker" login --username AWS --password-stdin "$registry"
build=(build --file "$dockerfile"
  --label "org.opencontainers.image.revision=$MLOPS_COMMIT"
  --label "org.opencontainers.image.version=$MLOPS_VERSION"
  --label "org.opencontainers.image.title=$MLOPS_PROJECT/$MLOPS_MODEL")
[ -z "${MLOPS_UPSTREAM_PROJECT_URL:-}" ] || build+=(--label "org.opencontainers.image.source=$MLOPS_UPSTREAM_PROJECT_URL")
for tag in "${tags[@]}"; do
  build+=(--tag "$repository_uri:$tag")
done
"$docker" "${build[@]}" "$context"
for tag in "${tags[@]}"; do
  "$docker" push "$repository_uri:$tag"
done

digest="$(ci_aws ecr-digest --repository "$MLOPS_ECR_REPOSITORY" --tag "$MLOPS_VERSION")"
: >"$out"
dotenv_put "$out" MLOPS_IMAGE "$repository_uri:$MLOPS_VERSION@$digest"
dotenv_put "$out" MLOPS_IMAGE_DIGEST "$digest"
log "pushed ${tags[*]} to $repository_uri ($digest)"
cat "$out"
