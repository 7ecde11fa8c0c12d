# shellcheck shell=bash
# Shared helpers of the MLOps pipeline's job scripts. Source it: . "$(dirname "$0")/lib.sh"
#
# Trust: in a model pipeline, the triggering model repository chooses the variables it passes,
# and GitLab ranks them above this project's CI/CD variables. So inside GitLab (GITLAB_CI=true):
#   - the settings that say where things go come from ci/platform.env, a reviewed file here;
#   - the knobs tests use (MLOPS_PYTHON, MLOPS_DOCKER, MLOPS_TRIGGER_LOCAL_HANDLER, ...) are ignored;
#   - paths a model repository may set (MLOPS_CONFIG, MLOPS_MODEL_DIR, MLOPS_DOCKERFILE) must
#     stay inside the unpacked repository.

set -euo pipefail

MLOPS_CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[mlops-ci] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# The settings ci/platform.env may hold; nothing else is read from it.
MLOPS_PLATFORM_SETTINGS=(MLOPS_DAGS_BUCKET MLOPS_CONFIGS_PREFIX MLOPS_TRIGGER_FUNCTION MLOPS_AWS_ROLE_ARN
  MLOPS_ECR_REGISTRY MLOPS_GITLAB_API_URL MLOPS_PUBLISH_MAX_MB AWS_DEFAULT_REGION AWS_REGION)

# load_platform_settings FILE: KEY=VALUE lines, '#' comments; no shell evaluation. Outside
# GitLab (a laptop, the tests) a variable already set wins over the file.
load_platform_settings() {
  local file="$1" line key value allowed name
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in '' | '#'*) continue ;; esac
    key="${line%%=*}"
    value="${line#*=}"
    allowed=false
    for name in "${MLOPS_PLATFORM_SETTINGS[@]}"; do
      [ "$key" != "$name" ] || allowed=true
    done
    "$allowed" || die "$file: $key is not a platform setting (${MLOPS_PLATFORM_SETTINGS[*]})"
    [[ "$value" =~ ^[A-Za-z0-9._:/@+=-]*$ ]] || die "$file: the value of $key has characters a setting never has"
    [ -n "$value" ] || continue
    [ "${GITLAB_CI:-}" = true ] || [ -z "${!key:-}" ] || continue
    export "$key=$value"
  done <"$file"
}

# relative_path NAME: the variable must be a relative path that does not climb out.
relative_path() {
  local value="${!1}"
  case "/$value/" in
    *'/../'* | //*) die "$1 must be a relative path inside the model repository, got '$value'" ;;
  esac
}

if [ "${GITLAB_CI:-}" = true ]; then
  MLOPS_REPO_DIR="$CI_PROJECT_DIR"
  MLOPS_PYTHON=python3
  MLOPS_DOCKER=docker
  MLOPS_WORKDIR=model
  MLOPS_ORG_DEFAULTS="$MLOPS_REPO_DIR/dags/mlops/mlops-defaults.yaml"
  unset MLOPS_TRIGGER_LOCAL_HANDLER MLOPS_REQUESTED_BY
  # Only ci/platform.env sets these here; a variable of the same name is dropped.
  for name in "${MLOPS_PLATFORM_SETTINGS[@]}"; do
    case "$name" in MLOPS_*) unset "$name" ;; esac
  done
else
  MLOPS_REPO_DIR="${MLOPS_REPO_DIR:-$(cd "$MLOPS_CI_DIR/../.." && pwd)}"
  MLOPS_PYTHON="${MLOPS_PYTHON:-python3}"
  MLOPS_DOCKER="${MLOPS_DOCKER:-docker}"
  # Where the model repository is unpacked (prepare job) and later jobs find it (artifacts).
  MLOPS_WORKDIR="${MLOPS_WORKDIR:-model}"
  MLOPS_ORG_DEFAULTS="${MLOPS_ORG_DEFAULTS:-$MLOPS_REPO_DIR/dags/mlops/mlops-defaults.yaml}"
fi
load_platform_settings "$MLOPS_REPO_DIR/ci/platform.env"
MLOPS_CONFIGS_PREFIX="${MLOPS_CONFIGS_PREFIX:-dags/mlops}"
MLOPS_CONFIG="${MLOPS_CONFIG:-mlops.yaml}"
MLOPS_MODEL_DIR="${MLOPS_MODEL_DIR:-.}"
relative_path MLOPS_CONFIG
relative_path MLOPS_MODEL_DIR
relative_path MLOPS_CONFIGS_PREFIX
[ -z "${MLOPS_DOCKERFILE:-}" ] || relative_path MLOPS_DOCKERFILE
MLOPS_PUBLISH_MAX_MB="${MLOPS_PUBLISH_MAX_MB:-50}"
[[ "$MLOPS_PUBLISH_MAX_MB" =~ ^[1-9][0-9]{0,4}$ ]] || die "MLOPS_PUBLISH_MAX_MB must be a whole number of MB, got '$MLOPS_PUBLISH_MAX_MB'"

# positive_integer NAME DEFAULT: the variable's value, which must be digits (it reaches $((...))).
positive_integer() {
  local value="${!1:-$2}"
  [[ "$value" =~ ^[0-9]{1,6}$ ]] || die "$1 must be a whole number of seconds, got '$value'"
  printf '%s' "$value"
}

# require_vars NAME...: fail with the names of the unset variables.
require_vars() {
  local name missing=()
  for name in "$@"; do
    [ -n "${!name:-}" ] || missing+=("$name")
  done
  [ "${#missing[@]}" -eq 0 ] || die "not set: ${missing[*]} (see docs/onboarding.md, 'Variables')"
}

ci_aws() { "$MLOPS_PYTHON" "$MLOPS_CI_DIR/ci_aws.py" "$@"; }

# dotenv_put FILE KEY VALUE: one KEY=VALUE line, refusing values that would break the format.
dotenv_put() {
  case "$3" in
    *$'\n'* | *$'\r'*) die "dotenv value of $2 contains a line break" ;;
  esac
  printf '%s=%s\n' "$2" "$3" >>"$1"
}

# aws_login: with GitLab OIDC (MLOPS_AWS_ROLE_ARN + the job's id_tokens MLOPS_AWS_ID_TOKEN),
# let boto3 assume the role itself through AWS_WEB_IDENTITY_TOKEN_FILE. Without them, boto3
# uses whatever credentials the runner has (instance profile, or variables in tests).
aws_login() {
  if [ -n "${MLOPS_AWS_ROLE_ARN:-}" ]; then
    require_vars MLOPS_AWS_ID_TOKEN
    local token_file
    token_file="$(mktemp)"
    chmod 600 "$token_file"
    printf '%s' "$MLOPS_AWS_ID_TOKEN" >"$token_file"
    export AWS_ROLE_ARN="$MLOPS_AWS_ROLE_ARN"
    export AWS_WEB_IDENTITY_TOKEN_FILE="$token_file"
    export AWS_ROLE_SESSION_NAME="gitlab-${CI_PROJECT_ID:-0}-${CI_PIPELINE_ID:-0}-${CI_JOB_ID:-0}"
  fi
}

# stage_as_published CONFIG PROJECT MODEL STAGE: lay out in the empty folder STAGE what publish.sh
# uploads and the DAG loader reads, then `mlops validate --publish` it, so CI fails on what Airflow
# would fail on:
#   STAGE/mlops-defaults.yaml                    the org defaults of this repository (not uploaded)
#   STAGE/<project>/<model>/mlops.yaml           the config
#   STAGE/<project>/<model>/<path>               the files it names that the Airflow side reads
#                                                (`mlops publish-files`: code for the local backend,
#                                                local data, the smoke-test payload)
# Messages name the model repository's files, not the stage's. Exits the (sub)shell on failure.
stage_as_published() {
  local config="$1" stage="$4" folder="$4/$2/$3" source output status=0
  source="$(cd "$(dirname "$config")" && pwd -P)"
  mkdir -p "$folder"
  cp "$config" "$folder/mlops.yaml"
  [ ! -f "$MLOPS_ORG_DEFAULTS" ] || cp "$MLOPS_ORG_DEFAULTS" "$stage/mlops-defaults.yaml"
  output="$(mlops publish-files "$folder/mlops.yaml" --source "$source" --copy-to "$folder" \
    --max-mb "$MLOPS_PUBLISH_MAX_MB" 2>&1)" || status=$?
  if [ "$status" -eq 0 ]; then
    log "to publish beside mlops.yaml: $(printf '%s\n' "$output" | grep -c .) file(s) the config names"
    output="$(mlops validate --publish "$stage" 2>&1)" || status=$?
  fi
  output="${output//"$folder/"/"$(dirname "$config")/"}"
  printf '%s\n' "${output//"$stage/mlops-defaults.yaml"/"$MLOPS_ORG_DEFAULTS"}" >&2
  [ "$status" -eq 0 ] || die "$config is not valid as published (with ${MLOPS_ORG_DEFAULTS##*/} of this repository)"
}

# validate_as_published CONFIG PROJECT MODEL: stage_as_published in a temporary folder.
validate_as_published() {
  local stage status=0
  stage="$(cd "$(mktemp -d)" && pwd -P)"
  (stage_as_published "$1" "$2" "$3" "$stage") || status=$?
  rm -rf "$stage"
  [ "$status" -eq 0 ] || exit "$status"
}

# requested_by: who asked, stable across retries of a job in one pipeline (the run id covers it).
requested_by() {
  printf 'gitlab:%s:pipeline:%s' "${GITLAB_USER_LOGIN:-unknown}" "${CI_PIPELINE_ID:-0}"
}
