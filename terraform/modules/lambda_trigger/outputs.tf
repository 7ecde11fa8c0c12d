output "function_name" {
  description = "Name of the trigger function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the trigger function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "Log group of the function."
  value       = aws_cloudwatch_log_group.this.name
}

output "environment_variables" {
  description = "Environment variables the function runs with."
  value       = local.environment_variables
}
