#!/usr/bin/env bash
# publish job: validate mlops.yaml and upload it where the DAG loader reads configs,
#   s3://$MLOPS_DAGS_BUCKET/$MLOPS_CONFIGS_PREFIX/<project>/<model>/mlops.yaml
# with, beside it and at the same relative paths, the files the config names that the Airflow
# side reads (`mlops publish-files`: the source folder and local data for the local backend, the
# smoke-test payload for every backend), and release.json (version, image, commit: what the
# scheduled retrain starts from).
#
# What is uploaded is exactly the folder `mlops validate --publish` passed (lib.sh,
# stage_as_published). The config goes up after the files it names; then the objects an earlier
# publish of this GitLab project left under the prefix, and this one did not upload, are deleted.
# An object another GitLab project published is never overwritten or deleted, and neither is one
# nobody published from CI (Terraform's mlops-defaults.yaml).
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_vars MLOPS_DAGS_BUCKET MLOPS_PROJECT MLOPS_MODEL MLOPS_VERSION MLOPS_IMAGE MLOPS_COMMIT
owner="${MLOPS_UPSTREAM_PROJECT_PATH:-${CI_PROJECT_PATH:-}}"
[ -n "$owner" ] || die "not set: MLOPS_UPSTREAM_PROJECT_PATH (the trigger passes it)"
config="$MLOPS_WORKDIR/$MLOPS_CONFIG"
[ -f "$config" ] || die "$config not found: did the prepare job fetch the model repository?"
stage="$(cd "$(mktemp -d)" && pwd -P)"
trap 'rm -rf "$stage"' EXIT
(stage_as_published "$config" "$MLOPS_PROJECT" "$MLOPS_MODEL" "$stage") || exit $?
aws_login

release="$stage/release.json"
"$MLOPS_PYTHON" - "$release" <<'PY'
import json, os, sys, time
release = {name: os.environ[f"MLOPS_{name.upper()}"] for name in ("project", "model", "version", "image", "commit")}
release["gitlab_project"] = os.environ.get("MLOPS_UPSTREAM_PROJECT_PATH") or os.environ.get("CI_PROJECT_PATH", "")
release["pipeline_url"] = os.environ.get("CI_PIPELINE_URL", "")
release["published_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(release, out, indent=2, sort_keys=True)
PY
ci_aws s3-publish-folder --bucket "$MLOPS_DAGS_BUCKET" --prefix "$MLOPS_CONFIGS_PREFIX/$MLOPS_PROJECT/$MLOPS_MODEL" \
  --folder "$stage/$MLOPS_PROJECT/$MLOPS_MODEL" --release "$release" --owner "$owner"
