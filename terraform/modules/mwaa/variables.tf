variable "name" {
  description = "Environment name (the trigger Lambda's MLOPS_MWAA_ENVIRONMENT)."
  type        = string
}

variable "airflow_version" {
  description = "Airflow version of the MWAA image."
  type        = string
}

variable "environment_class" {
  description = "MWAA environment class."
  type        = string
  default     = "mw1.small"
}

variable "min_workers" {
  description = "Minimum workers."
  type        = number
  default     = 1
}

variable "max_workers" {
  description = "Maximum workers."
  type        = number
  default     = 5
}

variable "schedulers" {
  description = "Number of schedulers."
  type        = number
  default     = 2
}

variable "log_level" {
  description = "Log level of every MWAA component."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"], var.log_level)
    error_message = "log_level is one of CRITICAL, ERROR, WARNING, INFO, DEBUG."
  }
}

variable "execution_role_arn" {
  description = "Role the environment runs as."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the environment and of the objects it reads."
  type        = string
}

variable "dags_bucket_arn" {
  description = "Source bucket ARN."
  type        = string
}

variable "dags_bucket_name" {
  description = "Source bucket name."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the environment."
  type        = string
}

variable "subnet_ids" {
  description = "Two private subnets."
  type        = list(string)
}

variable "plugins_zip_path" {
  description = "plugins.zip that holds the provider wheel."
  type        = string
}

variable "provider_wheel_file" {
  description = "File name of the provider wheel inside plugins.zip."
  type        = string
}

variable "provider_extras" {
  description = "Extras of the provider to install."
  type        = list(string)
  default     = ["aws", "slack"]
}

variable "extra_requirements" {
  description = "More requirement lines."
  type        = list(string)
  default     = []
}

variable "dags_source_dir" {
  description = "Local folder of the DAG loader (*.py and .airflowignore are uploaded to dags/)."
  type        = string
}

variable "airflow_configuration_options" {
  description = "Airflow configuration overrides (section.key = value)."
  type        = map(string)
  default     = {}
}

variable "weekly_maintenance_window_start" {
  description = "Start of the weekly maintenance window (DAY:HH:MM, UTC)."
  type        = string
  default     = "SUN:03:00"
}
