#!/bin/sh
# after_script of every job of the model pipeline (POSIX sh: it also runs in the docker:cli image).
# When the job failed, leave a note for the notify-failure job, passed on as an artifact:
#   .mlops-failed/<job id>.env      job=<name>  stage=<stage>  url=<job log>
# The folder is emptied first, so nothing the job's own code wrote there is passed on.
rm -rf .mlops-failed
[ "${CI_JOB_STATUS:-}" = failed ] || exit 0
mkdir -p .mlops-failed
printf 'job=%s\nstage=%s\nurl=%s\n' "${CI_JOB_NAME:-unknown}" "${CI_JOB_STAGE:-unknown}" "${CI_JOB_URL:-}" \
  >".mlops-failed/${CI_JOB_ID:-0}.env"
