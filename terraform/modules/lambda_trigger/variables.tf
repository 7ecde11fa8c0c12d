variable "function_name" {
  description = "Name of the function (and of its role and log group)."
  type        = string
}

variable "zip_path" {
  description = "Deployment package made by lambda/build.sh (trigger_lambda.zip)."
  type        = string
}

variable "runtime" {
  description = "Lambda runtime, matching the Python the zip's wheels were built for."
  type        = string
  default     = "python3.11"
}

variable "timeout_seconds" {
  description = "Function timeout."
  type        = number
  default     = 30
}

variable "memory_mb" {
  description = "Function memory."
  type        = number
  default     = 256
}

variable "reserved_concurrency" {
  description = "Reserved (and maximum) concurrent executions."
  type        = number
  default     = 5
}

variable "account_id" {
  description = "Account of the function and of the MWAA environment."
  type        = string
}

variable "region" {
  description = "Region of the function and of the MWAA environment."
  type        = string
}

variable "partition" {
  description = "AWS partition."
  type        = string
  default     = "aws"
}

variable "mwaa_environment_name" {
  description = "MWAA environment the function triggers DAGs on (MLOPS_MWAA_ENVIRONMENT)."
  type        = string
}

variable "airflow_rbac_role" {
  description = "Airflow role the function acts as through InvokeRestApi."
  type        = string
  default     = "User"

  validation {
    condition     = contains(["Op", "User"], var.airflow_rbac_role)
    error_message = "Triggering DAG runs needs the Airflow role User or Op; Admin is more than the trigger needs."
  }
}

variable "ecr_registry" {
  description = "<account>.dkr.ecr.<region>.amazonaws.com; the function accepts images from this registry only (MLOPS_ECR_REGISTRY)."
  type        = string
}

variable "log_level" {
  description = "MLOPS_LOG_LEVEL of the function."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level is one of DEBUG, INFO, WARNING, ERROR."
  }
}

variable "kms_key_arn" {
  description = "Key that encrypts the environment variables and the log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 365
}

variable "airflow_ui_url" {
  description = "The Airflow UI that status answers link to (MLOPS_AIRFLOW_UI_URL): https://<MWAA webserver URL>."
  type        = string
  default     = ""
}
