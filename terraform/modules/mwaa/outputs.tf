output "environment_name" {
  description = "Name of the environment."
  value       = aws_mwaa_environment.this.name
}

output "environment_arn" {
  description = "ARN of the environment."
  value       = aws_mwaa_environment.this.arn
}

output "webserver_url" {
  description = "Private webserver host."
  value       = aws_mwaa_environment.this.webserver_url
}

output "security_group_id" {
  description = "Security group of the environment."
  value       = aws_security_group.this.id
}

output "requirements_txt" {
  description = "The requirements.txt MWAA installs."
  value       = local.requirements_txt
}

output "dag_loader_keys" {
  description = "S3 keys of the uploaded DAG loader files, with their version ids."
  value       = { for f, o in aws_s3_object.dag_loader : o.key => o.version_id }
}
