#!/usr/bin/env bash
# retrain job (a pipeline schedule of this repository): start the retrain DAG of each model
# from its last published release.
#
# Models: MLOPS_RETRAIN_MODELS ("project/model ...", a schedule variable), or every config
# published under s3://$MLOPS_DAGS_BUCKET/$MLOPS_CONFIGS_PREFIX/. Each release's image must
# still be in ECR. One model's failure does not stop the others; the job fails if any failed.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_vars MLOPS_DAGS_BUCKET
aws_login
models="${MLOPS_RETRAIN_MODELS:-}"
if [ -z "$models" ]; then
  models="$(ci_aws s3-models --bucket "$MLOPS_DAGS_BUCKET" --prefix "$MLOPS_CONFIGS_PREFIX")"
fi
if [ -z "$models" ]; then
  log "no published model under s3://$MLOPS_DAGS_BUCKET/$MLOPS_CONFIGS_PREFIX/: nothing to retrain"
  exit 0
fi

name='[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?'
failed=()
set -f # the list is split on spaces, never globbed
for entry in $models; do
  if ! [[ "$entry" =~ ^$name/$name$ ]]; then
    log "skipping $entry: not project/model"
    failed+=("$entry")
    continue
  fi
  project="${entry%%/*}"
  model="${entry#*/}"
  if ! release="$(ci_aws s3-release --bucket "$MLOPS_DAGS_BUCKET" \
    --key "$MLOPS_CONFIGS_PREFIX/$project/$model/release.json")"; then
    failed+=("$entry")
    continue
  fi
  read -r version image commit <<<"$release"
  if ! ci_aws ecr-digest --repository "$project/$model" --tag "$version" >/dev/null; then
    log "$entry: the released image $version is no longer in ECR"
    failed+=("$entry")
    continue
  fi
  log "$entry: retraining from $version"
  if ! MLOPS_PROJECT="$project" MLOPS_MODEL="$model" MLOPS_VERSION="$version" MLOPS_IMAGE="$image" \
    MLOPS_COMMIT="$commit" MLOPS_TRIGGER_WAIT_SECONDS="${MLOPS_TRIGGER_WAIT_SECONDS:-120}" \
    bash "$MLOPS_CI_DIR/trigger.sh" retrain "retrain-$project-$model.env"; then
    failed+=("$entry")
  fi
done
[ "${#failed[@]}" -eq 0 ] || die "retrain failed for: ${failed[*]}"
