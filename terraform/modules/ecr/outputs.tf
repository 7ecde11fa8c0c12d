output "registry_url" {
  description = "<account>.dkr.ecr.<region>.amazonaws.com (MLOPS_ECR_REGISTRY of the trigger Lambda)."
  value       = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${data.aws_region.current.name}.amazonaws.com"
}

output "repository_arns" {
  description = "ARN of each repository, keyed by \"<project>/<model>\"."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.arn }
}

output "repository_urls" {
  description = "URL of each repository, keyed by \"<project>/<model>\"."
  value       = { for name, repo in aws_ecr_repository.this : name => repo.repository_url }
}
