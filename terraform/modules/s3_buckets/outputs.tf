output "dags_bucket_name" {
  description = "MWAA source bucket: dags/, requirements.txt, plugins.zip, startup.sh."
  value       = aws_s3_bucket.this["dags"].id
}

output "dags_bucket_arn" {
  description = "ARN of the DAGs bucket."
  value       = aws_s3_bucket.this["dags"].arn
}

output "artifacts_bucket_name" {
  description = "Bucket of model artifacts and evaluation outputs."
  value       = aws_s3_bucket.this["artifacts"].id
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.this["artifacts"].arn
}

output "data_bucket_name" {
  description = "Bucket of training and evaluation data."
  value       = aws_s3_bucket.this["data"].id
}

output "data_bucket_arn" {
  description = "ARN of the data bucket."
  value       = aws_s3_bucket.this["data"].arn
}

output "access_logs_bucket_name" {
  description = "Bucket receiving the other buckets' server access logs."
  value       = aws_s3_bucket.access_logs.id
}
