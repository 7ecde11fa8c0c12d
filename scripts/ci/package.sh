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
#
# The engine: inside GitLab, docker (the job's dind service). Elsewhere MLOPS_DOCKER, or by default
# the provider's engine module: docker when its daemon answers, else podman with the settings of
# scripts/containers.sh. The build context gets mlops-wheels/: the provider's wheel built from this
# checkout (the image installs the model server from it, never from an index); MLOPS_PROVIDER_WHEEL
# names a wheel built already (outside GitLab only; the tests build one per session).
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-package.env}"
require_vars MLOPS_VERSION MLOPS_COMMIT_TAG MLOPS_ECR_REPOSITORY MLOPS_PROJECT MLOPS_MODEL MLOPS_COMMIT
provider_root="$(cd "$MLOPS_CI_DIR/../.." && pwd)"
[ "${GITLAB_CI:-}" != true ] || unset MLOPS_PROVIDER_WHEEL
docker="$MLOPS_DOCKER"
if [ "${GITLAB_CI:-}" != true ] && [ "$docker" = docker ]; then
  engine="$(PYTHONPATH="$provider_root" "$MLOPS_PYTHON" -m airflow_provider_mlops.engine env)" ||
    die "no container engine to build the image with (see the error above)"
  eval "$engine" # export MLOPS_DOCKER=<the CLI> and podman's settings, shell-quoted by the module
  docker="$MLOPS_DOCKER"
fi
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

# mlops-wheels/ in the context: exactly one provider wheel, from this checkout. It is removed
# after the build, so nothing later (publish, a second build) picks it up from the model folder.
wheels="$context/mlops-wheels"
trap 'rm -rf "$wheels"' EXIT
if [ -n "${MLOPS_PROVIDER_WHEEL:-}" ]; then
  [ -f "$MLOPS_PROVIDER_WHEEL" ] || die "MLOPS_PROVIDER_WHEEL is '$MLOPS_PROVIDER_WHEEL', which is not a file: unset it to build the wheel"
  mkdir -p "$wheels"
  rm -f "$wheels"/airflow_provider_mlops-*.whl
  cp "$MLOPS_PROVIDER_WHEEL" "$wheels/"
else
  MLOPS_PYTHON="$MLOPS_PYTHON" bash "$provider_root/scripts/containers.sh" wheel "$wheels" >/dev/null ||
    die "could not build the provider's wheel from $provider_root (pip wheel, see above)"
fi
log "provider wheel in the build context: $(cd "$wheels" && ls airflow_provider_mlops-*.whl)"

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
