variable "name_prefix" {
  description = "Dashboard name and alarm-name prefix."
  type        = string
}

variable "region" {
  description = "Region the dashboard widgets read."
  type        = string
}

variable "endpoints" {
  description = "Endpoint name per model key (\"<project>/<model>\" => \"<project>-<model>\")."
  type        = map(string)
  default     = {}
}

variable "sns_topic_arn" {
  description = "Topic the alarms notify."
  type        = string
}

variable "model_metrics_namespace" {
  description = "Namespace of the model metrics the pipeline publishes (dimensions Project, Model)."
  type        = string
}

variable "trigger_function_name" {
  description = "Trigger Lambda whose errors are alarmed."
  type        = string
}

variable "endpoint_5xx_threshold" {
  description = "5XX errors per minute that trip an endpoint's rollback alarm."
  type        = number
  default     = 1
}

variable "endpoint_latency_threshold_ms" {
  description = "Average model latency in milliseconds that trips an endpoint's rollback alarm."
  type        = number
  default     = 1000
}

variable "sagemaker_log_group_prefix" {
  description = "Prefix of SageMaker's log groups and job metric namespaces."
  type        = string
  default     = "/aws/sagemaker"
}
