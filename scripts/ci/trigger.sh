#!/usr/bin/env bash
# trigger-train / deploy / retrain jobs: invoke the trigger Lambda, which starts
# mlops__<project>__<model>__<action> and answers with the run id.
#
#   trigger.sh train|deploy|retrain [DOTENV]     (default <action>.env: MLOPS_DAG_ID, MLOPS_DAG_RUN_ID)
#
# The run id is derived from the event, so retrying is safe: a repeated event answers with the
# run it already started. A DAG Airflow does not know yet (a config published a minute ago) or
# an unreachable Airflow is retried every MLOPS_TRIGGER_RETRY_SECONDS (30) for up to
# MLOPS_TRIGGER_WAIT_SECONDS (600); a refused event fails at once.
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action="${1:-}"
case "$action" in
  train | deploy | retrain) ;;
  *) die "usage: trigger.sh train|deploy|retrain [DOTENV]" ;;
esac
out="${2:-$action.env}"
require_vars MLOPS_PROJECT MLOPS_MODEL MLOPS_VERSION MLOPS_IMAGE MLOPS_COMMIT
[ -n "${MLOPS_TRIGGER_LOCAL_HANDLER:-}" ] || require_vars MLOPS_TRIGGER_FUNCTION
aws_login

event="$(mktemp)"
trap 'rm -f "$event"' EXIT
ci_aws make-event --action "$action" --project "$MLOPS_PROJECT" --model "$MLOPS_MODEL" \
  --version "$MLOPS_VERSION" --image "$MLOPS_IMAGE" --commit "$MLOPS_COMMIT" \
  --requested-by "${MLOPS_REQUESTED_BY:-$(requested_by)}" >"$event"

wait_seconds="$(positive_integer MLOPS_TRIGGER_WAIT_SECONDS 600)"
interval="$(positive_integer MLOPS_TRIGGER_RETRY_SECONDS 30)"
deadline=$((SECONDS + wait_seconds))
attempt=1
: >"$out"
while :; do
  status=0
  ci_aws invoke --event-file "$event" --dotenv "$out" || status=$?
  [ "$status" -ne 0 ] || exit 0
  [ "$status" -eq 75 ] || exit "$status"
  if [ $((SECONDS + interval)) -gt "$deadline" ]; then
    die "no run after $attempt attempt(s) in ${wait_seconds}s: see the trigger's answers above"
  fi
  log "attempt $attempt did not start the run; retrying in ${interval}s"
  sleep "$interval"
  attempt=$((attempt + 1))
done
