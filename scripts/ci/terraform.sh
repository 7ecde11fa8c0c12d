#!/bin/sh
# Terraform jobs for terraform/ (POSIX sh: the hashicorp/terraform image has no bash).
#
#   terraform.sh fmt | validate | plan | apply
#
# MLOPS_ENVIRONMENT (dev, stage, prod) picks terraform/envs/<env>.tfvars and <env>.s3.tfbackend.
# plan writes plan.tfplan and plan.txt for review; apply applies exactly that saved plan.
set -eu

TF_ROOT="${TF_ROOT:-terraform}"
environment="${MLOPS_ENVIRONMENT:-dev}"
tf() { terraform -chdir="$TF_ROOT" "$@"; }
init_backend() {
  tf init -input=false -reconfigure -backend-config="envs/$environment.s3.tfbackend"
}

case "${1:-}" in
  fmt)
    tf fmt -check -recursive -diff
    ;;
  validate)
    tf init -input=false -backend=false
    tf validate
    ;;
  plan)
    [ -f "$TF_ROOT/envs/$environment.tfvars" ] || { echo "no $TF_ROOT/envs/$environment.tfvars" >&2; exit 1; }
    init_backend
    tf plan -input=false -lock-timeout=5m -var-file="envs/$environment.tfvars" -out=plan.tfplan
    tf show -no-color plan.tfplan >"$TF_ROOT/plan.txt"
    ;;
  apply)
    [ -f "$TF_ROOT/plan.tfplan" ] || { echo "no saved plan: run the plan job first" >&2; exit 1; }
    init_backend
    tf apply -input=false -lock-timeout=5m plan.tfplan
    ;;
  *)
    echo "usage: terraform.sh fmt|validate|plan|apply" >&2
    exit 2
    ;;
esac
