output "mwaa_execution_role_arn" {
  description = "Role of the MWAA environment."
  value       = aws_iam_role.mwaa_execution.arn
}

output "sagemaker_execution_role_arn" {
  description = "Role SageMaker jobs and endpoints run as (mlops.yaml aws.role_arn)."
  value       = aws_iam_role.sagemaker_execution.arn
}

output "ci_role_arn" {
  description = "Role GitLab CI assumes; empty when no OIDC provider is given."
  value       = local.create_ci_role ? aws_iam_role.ci[0].arn : ""
}
