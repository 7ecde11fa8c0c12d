variable "name_prefix" {
  description = "Prefix of the role names."
  type        = string
}

variable "account_id" {
  description = "Account of the roles and every resource they reach."
  type        = string
}

variable "region" {
  description = "Region of the resources the roles reach."
  type        = string
}

variable "partition" {
  description = "AWS partition."
  type        = string
  default     = "aws"
}

variable "kms_key_arn" {
  description = "The environment's key."
  type        = string
}

variable "dags_bucket_arn" {
  description = "MWAA source bucket (read by MWAA, model configs written by CI)."
  type        = string
}

variable "artifacts_bucket_arn" {
  description = "Model artifacts bucket (written by SageMaker and Airflow)."
  type        = string
}

variable "data_bucket_arn" {
  description = "Training and evaluation data bucket (read by SageMaker)."
  type        = string
}

variable "ecr_repository_arns" {
  description = "The model repositories, the only ones the roles may pull from or push to."
  type        = list(string)
}

variable "sns_topic_arn" {
  description = "The notification topic, the only one Airflow may publish to."
  type        = string
}

variable "mwaa_environment_name" {
  description = "MWAA environment the execution role serves."
  type        = string
}

variable "model_metrics_namespace" {
  description = "CloudWatch namespace of the model metrics the pipeline publishes."
  type        = string
}

variable "alarm_name_prefix" {
  description = "Prefix of the rollback alarms Airflow may read."
  type        = string
}

variable "trigger_function_name" {
  description = "Trigger Lambda the CI role may invoke."
  type        = string
}

variable "gitlab_oidc_provider_arn" {
  description = "IAM OIDC provider of GitLab; empty: no CI role."
  type        = string
  default     = ""
}

variable "gitlab_oidc_audience" {
  description = "aud claim of GitLab's ID tokens."
  type        = string
  default     = "https://gitlab.com"
}

variable "gitlab_subjects" {
  description = "sub claims (StringLike patterns) allowed to assume the CI role."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.gitlab_subjects : s != "*" && startswith(s, "project_path:")])
    error_message = "Each subject names a GitLab project path (project_path:<group>/<project>:...); a bare \"*\" would let any GitLab project in."
  }
}
