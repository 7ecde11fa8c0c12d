#!/usr/bin/env bash
# notify-failure job (stage .post, when: on_failure): report each failed job of this model
# pipeline to the model's Slack and SNS targets, with the failure message a failed DAG task sends
# (`mlops notify ci-failure`).
#
#   notify_failure.sh [NOTES]     (default .mlops-failed: the notes record_failure.sh left, one per failed job)
#
# The config is layered as Airflow reads it: this repository's org defaults, or the ones published
# under the configs prefix when the bucket can be read (they name the SNS topic). Slack: the
# connection notifications.slack.connection_id names (slack_default), given as a masked CI/CD
# variable in Airflow's URI or JSON form, e.g. AIRFLOW_CONN_SLACK_DEFAULT. SNS: this job's role.
#
# A reporter: a delivery that fails is logged (secrets redacted) and the job still passes. It
# fails only when it cannot say anything: a malformed note, bad arguments, an invalid config.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

notes="${1:-.mlops-failed}"
require_vars CI_PIPELINE_URL
config="$MLOPS_WORKDIR/$MLOPS_CONFIG"
if [ ! -f "$config" ]; then
  log "no $config (the pipeline failed before the prepare job fetched it): no model to notify; see $CI_PIPELINE_URL"
  exit 0
fi

stage="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$stage"' EXIT
project="${MLOPS_PROJECT:-project}"
model="${MLOPS_MODEL:-model}"
mkdir -p "$stage/$project/$model"
cp "$config" "$stage/$project/$model/mlops.yaml"
[ ! -f "$MLOPS_ORG_DEFAULTS" ] || cp "$MLOPS_ORG_DEFAULTS" "$stage/mlops-defaults.yaml"
if [ -n "${MLOPS_DAGS_BUCKET:-}" ]; then
  aws_login
  ci_aws s3-get --bucket "$MLOPS_DAGS_BUCKET" --key "$MLOPS_CONFIGS_PREFIX/mlops-defaults.yaml" \
    --file "$stage/mlops-defaults.yaml" || log "using this repository's org defaults"
  if [ -n "${MLOPS_PROJECT:-}" ] && [ -n "${MLOPS_MODEL:-}" ]; then
    ci_aws s3-get --bucket "$MLOPS_DAGS_BUCKET" --key "$MLOPS_CONFIGS_PREFIX/$project/$model/mlops-defaults.yaml" \
      --file "$stage/$project/$model/mlops-defaults.yaml" 2>/dev/null || true
  fi
fi

# notify JOB STAGE URL: one message; the CLI exits 0 whatever the delivery does.
notify() {
  local args=(--config "$stage/$project/$model/mlops.yaml" --pipeline-url "$CI_PIPELINE_URL" --job "$1" --stage "$2")
  [ -z "$3" ] || args+=(--job-url "$3")
  [ -z "${MLOPS_VERSION:-}" ] || args+=(--version "$MLOPS_VERSION")
  [ -z "${MLOPS_UPSTREAM_COMMIT_SHA:-}" ] || args+=(--commit "$MLOPS_UPSTREAM_COMMIT_SHA")
  [ -z "${MLOPS_UPSTREAM_PROJECT_PATH:-}" ] || args+=(--source-project "$MLOPS_UPSTREAM_PROJECT_PATH")
  local output status=0
  output="$(mlops notify ci-failure "${args[@]}" 2>&1)" || status=$?
  printf '%s\n' "${output//"$stage/$project/$model/mlops.yaml"/"$config"}" >&2
  [ "$status" -eq 0 ] || die "could not report the failed job $1 (see above)"
}

found=0
for note in "$notes"/*.env; do
  [ -f "$note" ] || continue
  job="$(sed -n 's/^job=//p' "$note" | head -n 1)"
  job_stage="$(sed -n 's/^stage=//p' "$note" | head -n 1)"
  url="$(sed -n 's/^url=//p' "$note" | head -n 1)"
  # Notes come from the jobs' artifacts: only a link into this project's jobs is passed on.
  case "$url" in
    "${CI_PROJECT_URL:-https://}"/-/jobs/[0-9]*) ;;
    *) url="" ;;
  esac
  if [ -z "$job" ] || [ -z "$job_stage" ]; then
    log "skipping $note: no job= or stage= line"
    continue
  fi
  found=$((found + 1))
  log "reporting the failed job $job ($job_stage)"
  notify "$job" "$job_stage" "$url"
done
if [ "$found" -eq 0 ]; then
  log "no note of a failed job under $notes/: reporting the pipeline"
  notify "unknown (see the pipeline)" "unknown" ""
fi
