# The one composition root: every environment (dev, stage, prod) is this file with its own
# envs/<environment>.tfvars and state. Metadata and artifacts live outside the MWAA cluster
# (S3, ECR, the SageMaker registry), so an environment can be replaced blue/green.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  prefix     = "${var.name_prefix}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  tags = merge(var.tags, {
    "mlops:environment" = var.environment
    "mlops:managed-by"  = "terraform"
  })

  mwaa_environment_name = local.prefix
  lambda_function_name  = "${local.prefix}-trigger"

  # "<project>/<model>" -> "<project>-<model>", the default endpoint name and registry group.
  model_slugs = { for m in var.models : m => replace(m, "/", "-") }

  # Relative paths are relative to this folder, so the same tfvars work from any directory.
  lambda_zip_path     = startswith(var.lambda_zip_path, "/") ? var.lambda_zip_path : "${path.root}/${var.lambda_zip_path}"
  plugins_zip_path    = startswith(var.plugins_zip_path, "/") ? var.plugins_zip_path : "${path.root}/${var.plugins_zip_path}"
  dags_source_dir     = startswith(var.dags_source_dir, "/") ? var.dags_source_dir : "${path.root}/${var.dags_source_dir}"
  provider_wheel_file = basename(var.provider_wheel_path)
}

module "kms" {
  source = "./modules/kms"

  name       = local.prefix
  account_id = local.account_id
  region     = local.region
  partition  = local.partition
}

module "s3_buckets" {
  source = "./modules/s3_buckets"

  name_prefix                       = local.prefix
  account_id                        = local.account_id
  kms_key_arn                       = module.kms.key_arn
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  artifacts_infrequent_access_days  = var.artifacts_infrequent_access_days
  access_log_retention_days         = var.access_log_retention_days
}

module "ecr" {
  source = "./modules/ecr"

  repositories         = toset(var.models)
  kms_key_arn          = module.kms.key_arn
  max_images           = var.ecr_max_images
  untagged_expiry_days = var.ecr_untagged_expiry_days
}

module "sns" {
  source = "./modules/sns"

  name                = "${local.prefix}-notifications"
  account_id          = local.account_id
  partition           = local.partition
  kms_key_arn         = module.kms.key_arn
  notification_emails = var.notification_emails
}

module "iam" {
  source = "./modules/iam"

  name_prefix             = local.prefix
  account_id              = local.account_id
  region                  = local.region
  partition               = local.partition
  kms_key_arn             = module.kms.key_arn
  dags_bucket_arn         = module.s3_buckets.dags_bucket_arn
  artifacts_bucket_arn    = module.s3_buckets.artifacts_bucket_arn
  data_bucket_arn         = module.s3_buckets.data_bucket_arn
  ecr_repository_arns     = values(module.ecr.repository_arns)
  sns_topic_arn           = module.sns.topic_arn
  mwaa_environment_name   = local.mwaa_environment_name
  model_metrics_namespace = var.model_metrics_namespace
  alarm_name_prefix       = local.prefix
  trigger_function_name   = local.lambda_function_name

  gitlab_oidc_provider_arn = var.gitlab_oidc_provider_arn
  gitlab_oidc_audience     = var.gitlab_oidc_audience
  gitlab_subjects          = var.gitlab_subjects
}

module "mwaa" {
  source = "./modules/mwaa"

  name                          = local.mwaa_environment_name
  airflow_version               = var.airflow_version
  environment_class             = var.mwaa_environment_class
  min_workers                   = var.mwaa_min_workers
  max_workers                   = var.mwaa_max_workers
  schedulers                    = var.mwaa_schedulers
  log_level                     = var.mwaa_log_level
  execution_role_arn            = module.iam.mwaa_execution_role_arn
  kms_key_arn                   = module.kms.key_arn
  dags_bucket_arn               = module.s3_buckets.dags_bucket_arn
  dags_bucket_name              = module.s3_buckets.dags_bucket_name
  vpc_id                        = var.vpc_id
  subnet_ids                    = var.private_subnet_ids
  plugins_zip_path              = local.plugins_zip_path
  provider_wheel_file           = local.provider_wheel_file
  provider_extras               = var.provider_extras
  extra_requirements            = var.extra_requirements
  dags_source_dir               = local.dags_source_dir
  airflow_configuration_options = var.airflow_configuration_options
}

module "lambda_trigger" {
  source = "./modules/lambda_trigger"

  function_name         = local.lambda_function_name
  zip_path              = local.lambda_zip_path
  runtime               = var.lambda_runtime
  account_id            = local.account_id
  region                = local.region
  partition             = local.partition
  mwaa_environment_name = module.mwaa.environment_name
  airflow_ui_url        = "https://${module.mwaa.webserver_url}"
  airflow_rbac_role     = var.airflow_rbac_role
  ecr_registry          = module.ecr.registry_url
  log_level             = var.lambda_log_level
  kms_key_arn           = module.kms.key_arn
  log_retention_days    = var.log_retention_days
  reserved_concurrency  = var.lambda_reserved_concurrency
}

module "cloudwatch" {
  source = "./modules/cloudwatch"

  name_prefix                   = local.prefix
  region                        = local.region
  endpoints                     = local.model_slugs
  sns_topic_arn                 = module.sns.topic_arn
  model_metrics_namespace       = var.model_metrics_namespace
  trigger_function_name         = module.lambda_trigger.function_name
  endpoint_5xx_threshold        = var.endpoint_5xx_threshold
  endpoint_latency_threshold_ms = var.endpoint_latency_threshold_ms
  sagemaker_log_group_prefix    = "/aws/sagemaker"
}

# --- config defaults: how the outputs above reach every mlops.yaml -------------------------
# The DAG loader layers mlops-defaults.yaml files from the config root (dags/mlops/) down to
# each model's folder, the nearest winning and the model's own mlops.yaml winning over all.

resource "aws_s3_object" "org_config_defaults" {
  count = var.publish_config_defaults ? 1 : 0

  bucket       = module.s3_buckets.dags_bucket_name
  key          = "dags/mlops/mlops-defaults.yaml"
  content_type = "application/yaml"
  kms_key_id   = module.kms.key_arn
  content = yamlencode({
    aws = {
      region        = local.region
      role_arn      = module.iam.sagemaker_execution_role_arn
      artifacts_uri = "s3://${module.s3_buckets.artifacts_bucket_name}/models"
    }
    notifications = {
      sns = { topic_arn = module.sns.topic_arn }
    }
  })
}

resource "aws_s3_object" "model_config_defaults" {
  for_each = var.publish_config_defaults ? local.model_slugs : {}

  bucket       = module.s3_buckets.dags_bucket_name
  key          = "dags/mlops/${each.key}/mlops-defaults.yaml"
  content_type = "application/yaml"
  kms_key_id   = module.kms.key_arn
  content = yamlencode({
    deployment = {
      auto_rollback_alarms = module.cloudwatch.auto_rollback_alarms[each.value]
    }
  })
}
