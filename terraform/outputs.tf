# What the trigger Lambda, the GitLab CI templates and the model configs need.

output "environment" {
  description = "Deployment stage of this state."
  value       = var.environment
}

output "aws_region" {
  description = "Region of every resource."
  value       = local.region
}

output "kms_key_arn" {
  description = "Customer-managed key that encrypts buckets, repositories, logs, the topic and MWAA."
  value       = module.kms.key_arn
}

# --- MWAA -----------------------------------------------------------------------------------

output "mwaa_environment_name" {
  description = "MLOPS_MWAA_ENVIRONMENT of the trigger Lambda; the target of airflow:InvokeRestApi."
  value       = module.mwaa.environment_name
}

output "mwaa_environment_arn" {
  description = "ARN of the MWAA environment."
  value       = module.mwaa.environment_arn
}

output "mwaa_webserver_url" {
  description = "Private Airflow UI/API host (reachable from inside the VPC only)."
  value       = module.mwaa.webserver_url
}

output "mwaa_execution_role_arn" {
  description = "Role the Airflow tasks run as."
  value       = module.iam.mwaa_execution_role_arn
}

# --- S3 -------------------------------------------------------------------------------------

output "dags_bucket" {
  description = "Bucket MWAA reads DAGs, requirements and plugins from."
  value       = module.s3_buckets.dags_bucket_name
}

output "config_prefix_uri" {
  description = "Where CI publishes each model's config: <this>/<project>/<model>/mlops.yaml."
  value       = "s3://${module.s3_buckets.dags_bucket_name}/dags/mlops"
}

output "artifacts_bucket" {
  description = "Bucket of model artifacts and evaluation outputs."
  value       = module.s3_buckets.artifacts_bucket_name
}

output "artifacts_uri" {
  description = "mlops.yaml aws.artifacts_uri."
  value       = "s3://${module.s3_buckets.artifacts_bucket_name}/models"
}

output "data_bucket" {
  description = "Bucket of training and evaluation data."
  value       = module.s3_buckets.data_bucket_name
}

# --- ECR ------------------------------------------------------------------------------------

output "ecr_registry" {
  description = "MLOPS_ECR_REGISTRY: <account>.dkr.ecr.<region>.amazonaws.com."
  value       = module.ecr.registry_url
}

output "ecr_repository_urls" {
  description = "Image repository of each \"<project>/<model>\"; images are tagged <semver> and <commit sha>."
  value       = module.ecr.repository_urls
}

# --- trigger Lambda ---------------------------------------------------------------------------

output "trigger_lambda_name" {
  description = "Function CI invokes with {action, project, model, version, image, commit, requested_by}."
  value       = module.lambda_trigger.function_name
}

output "trigger_lambda_arn" {
  description = "ARN of the trigger Lambda."
  value       = module.lambda_trigger.function_arn
}

output "trigger_lambda_environment" {
  description = "Environment variables the trigger Lambda runs with."
  value       = module.lambda_trigger.environment_variables
}

# --- IAM, SNS, CloudWatch ---------------------------------------------------------------------

output "sagemaker_execution_role_arn" {
  description = "mlops.yaml aws.role_arn: the role SageMaker jobs and endpoints run as."
  value       = module.iam.sagemaker_execution_role_arn
}

output "ci_role_arn" {
  description = "Role GitLab CI assumes through OIDC (empty when gitlab_oidc_provider_arn is empty)."
  value       = module.iam.ci_role_arn
}

output "sns_topic_arn" {
  description = "mlops.yaml notifications.sns.topic_arn."
  value       = module.sns.topic_arn
}

output "auto_rollback_alarms" {
  description = "mlops.yaml deployment.auto_rollback_alarms, per endpoint (\"<project>-<model>\")."
  value       = module.cloudwatch.auto_rollback_alarms
}

output "dashboard_name" {
  description = "CloudWatch dashboard of training jobs, endpoints and model metrics."
  value       = module.cloudwatch.dashboard_name
}

output "model_metrics_namespace" {
  description = "CloudWatch namespace of the model metrics the pipeline publishes."
  value       = var.model_metrics_namespace
}
