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
#
# With MLOPS_TRIGGER_WAIT_FOR_RESULT=true the job then reports the run's outcome, through the
# Lambda's status query (run_status.py): train and retrain wait until the run finishes, deploy
# until it waits for approval in Airflow (or finishes, with approval: auto). It polls every
# MLOPS_TRIGGER_POLL_SECONDS (15) for up to MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS (3600) and
# exits 1 on a failed run (with each failed task's log tail) or on the timeout, with the run's link.
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
case "${MLOPS_TRIGGER_WAIT_FOR_RESULT:-}" in
  true)
    # Checked before the run starts, so a bad value never leaves a run nobody waits for.
    result_timeout="$(positive_integer MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS 3600)"
    poll="$(positive_integer MLOPS_TRIGGER_POLL_SECONDS 15)"
    [ "$result_timeout" -gt 0 ] && [ "$poll" -gt 0 ] ||
      die "MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS and MLOPS_TRIGGER_POLL_SECONDS must be above 0"
    ;;
  '' | false) ;;
  *) die "MLOPS_TRIGGER_WAIT_FOR_RESULT must be true or false, got '$MLOPS_TRIGGER_WAIT_FOR_RESULT'" ;;
esac
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
  [ "$status" -ne 0 ] || break
  [ "$status" -eq 75 ] || exit "$status"
  if [ $((SECONDS + interval)) -gt "$deadline" ]; then
    die "no run after $attempt attempt(s) in ${wait_seconds}s: see the trigger's answers above"
  fi
  log "attempt $attempt did not start the run; retrying in ${interval}s"
  sleep "$interval"
  attempt=$((attempt + 1))
done
[ "${MLOPS_TRIGGER_WAIT_FOR_RESULT:-}" = true ] || exit 0

case "$action" in
  deploy) until=approval ;;
  *) until=finished ;;
esac
log "waiting for the run's result (until $until; every ${poll}s, at most ${result_timeout}s)"
status=0
"$MLOPS_PYTHON" "$MLOPS_CI_DIR/run_status.py" wait --dotenv "$out" --kind "$action" --until "$until" \
  --timeout "$result_timeout" --interval "$poll" || status=$?
exit "$status"
