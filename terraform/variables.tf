# Inputs of the composition root. Each environment sets them in envs/<environment>.tfvars.

variable "environment" {
  description = "Deployment stage; one AWS account each."
  type        = string

  validation {
    condition     = contains(["dev", "stage", "prod"], var.environment)
    error_message = "environment must be one of dev, stage, prod."
  }
}

variable "aws_region" {
  description = "AWS region of every resource in this environment."
  type        = string
}

variable "aws_account_id" {
  description = "The account this environment lives in; the provider refuses any other."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id must be 12 digits."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name; the environment is appended (mlops-dev, mlops-prod)."
  type        = string
  default     = "mlops"
}

variable "models" {
  description = "Every model served by this environment, as \"<project>/<model>\". One ECR repository, one config folder and one set of endpoint alarms each."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.models : can(regex("^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?/[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$", m))
    ])
    error_message = "Each model is \"<project>/<model>\": 1-32 lowercase letters, digits and '-' on each side, as in mlops.yaml."
  }

  validation {
    # MWAA's InvokeRestApi takes a Path of at most 64 characters, and the trigger Lambda posts
    # to /dags/mlops__<project>__<model>__retrain/dagRuns (32 characters besides the names).
    condition     = alltrue([for m in var.models : length(replace(m, "/", "")) <= 32])
    error_message = "The project and model names of each model may be 32 characters together at most, or MWAA's InvokeRestApi cannot reach its DAGs."
  }
}

# --- network (MWAA needs two private subnets in an existing VPC) ----------------------------

variable "vpc_id" {
  description = "VPC that hosts the MWAA environment."
  type        = string
}

variable "private_subnet_ids" {
  description = "Exactly two private subnets, in different availability zones, with a route to AWS APIs (NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) == 2
    error_message = "MWAA needs exactly two private subnets."
  }
}

# --- MWAA ---------------------------------------------------------------------------------

variable "airflow_version" {
  description = "MWAA Airflow version. The provider requires apache-airflow 3.3.x: use the 3.3 image MWAA offers in your region."
  type        = string
  default     = "3.3.2"

  validation {
    condition     = can(regex("^3\\.", var.airflow_version))
    error_message = "This provider targets Airflow 3.x."
  }
}

variable "mwaa_environment_class" {
  description = "MWAA environment class (mw1.micro ... mw1.2xlarge)."
  type        = string
  default     = "mw1.small"
}

variable "mwaa_min_workers" {
  description = "Minimum number of MWAA workers."
  type        = number
  default     = 1
}

variable "mwaa_max_workers" {
  description = "Maximum number of MWAA workers."
  type        = number
  default     = 5
}

variable "mwaa_schedulers" {
  description = "Number of MWAA schedulers (2 or more outside dev for availability)."
  type        = number
  default     = 2
}

variable "mwaa_log_level" {
  description = "Log level of the MWAA components sent to CloudWatch."
  type        = string
  default     = "INFO"
}

variable "airflow_configuration_options" {
  description = "Extra Airflow configuration options (section.key = value) merged over the defaults of the mwaa module."
  type        = map(string)
  default     = {}
}

variable "provider_wheel_path" {
  description = "The wheel of this package (python -m build --wheel), relative to the terraform folder or absolute. terraform/scripts/build_mwaa_plugins.sh zips it into plugins.zip."
  type        = string
  default     = "../dist/airflow_provider_mlops-0.1.0-py3-none-any.whl"
}

variable "plugins_zip_path" {
  description = "plugins.zip holding the provider wheel, made by terraform/scripts/build_mwaa_plugins.sh; relative to the terraform folder or absolute."
  type        = string
  default     = ".build/plugins.zip"
}

variable "provider_extras" {
  description = "Extras of airflow-provider-mlops installed on MWAA."
  type        = list(string)
  default     = ["aws", "slack"]
}

variable "extra_requirements" {
  description = "More requirement lines for MWAA's requirements.txt."
  type        = list(string)
  default     = []
}

variable "dags_source_dir" {
  description = "Folder whose *.py files and .airflowignore are uploaded as the DAG loader; relative to the terraform folder or absolute."
  type        = string
  default     = "../dags"
}

variable "publish_config_defaults" {
  description = "Publish mlops-defaults.yaml files (role, artifacts location, SNS topic, rollback alarms) beside the model configs."
  type        = bool
  default     = true
}

# --- trigger Lambda --------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Zip made by lambda/build.sh, relative to the terraform folder or absolute."
  type        = string
  default     = "../lambda/build/trigger_lambda.zip"
}

variable "lambda_runtime" {
  description = "Lambda runtime; must match the Python that lambda/build.sh packed wheels for."
  type        = string
  default     = "python3.11"
}

variable "lambda_log_level" {
  description = "MLOPS_LOG_LEVEL of the trigger Lambda."
  type        = string
  default     = "INFO"
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency of the trigger Lambda: a cap on how many DAG triggers run at once."
  type        = number
  default     = 5
}

variable "airflow_rbac_role" {
  description = "Airflow role the trigger Lambda acts as through InvokeRestApi (User may trigger DAG runs)."
  type        = string
  default     = "User"
}

# --- S3 ---------------------------------------------------------------------------------------

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept in the DAGs, artifacts and data buckets."
  type        = number
  default     = 90
}

variable "artifacts_infrequent_access_days" {
  description = "Days after which model artifacts move to STANDARD_IA."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days S3 server access logs are kept."
  type        = number
  default     = 365
}

# --- ECR --------------------------------------------------------------------------------------

variable "ecr_max_images" {
  description = "Images kept per model repository (each image carries a semver and a commit SHA tag)."
  type        = number
  default     = 100
}

variable "ecr_untagged_expiry_days" {
  description = "Days after which untagged images (failed or superseded pushes) expire."
  type        = number
  default     = 7
}

# --- logs, metrics, alarms, notifications -----------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups this composition owns."
  type        = number
  default     = 365
}

variable "model_metrics_namespace" {
  description = "CloudWatch namespace the pipeline publishes model metrics to (dimensions Project and Model)."
  type        = string
  default     = "MLOps/Models"
}

variable "endpoint_5xx_threshold" {
  description = "Invocation 5XX errors per minute that trip an endpoint's rollback alarm."
  type        = number
  default     = 1
}

variable "endpoint_latency_threshold_ms" {
  description = "Average model latency (milliseconds, all variants, per minute) that trips an endpoint's rollback alarm."
  type        = number
  default     = 1000
}

variable "notification_emails" {
  description = "E-mail addresses subscribed to the notification topic (each must confirm)."
  type        = list(string)
  default     = []
}

# --- GitLab CI (OIDC, no IAM users) ------------------------------------------------------------

variable "gitlab_oidc_provider_arn" {
  description = "ARN of an existing IAM OIDC provider for GitLab. Empty: no CI role is created."
  type        = string
  default     = ""
}

variable "gitlab_oidc_audience" {
  description = "Audience GitLab puts in its ID tokens (id_tokens: aud)."
  type        = string
  default     = "https://gitlab.com"
}

variable "gitlab_subjects" {
  description = "GitLab ID-token subjects allowed to assume the CI role, e.g. \"project_path:ml/*:ref_type:branch:ref:main\"."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
