variable "name_prefix" {
  description = "Prefix of the bucket names (the account id is added, as bucket names are global)."
  type        = string
}

variable "account_id" {
  description = "Account that owns the buckets."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the buckets' default SSE-KMS encryption."
  type        = string
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted object version is kept."
  type        = number
  default     = 90
}

variable "artifacts_infrequent_access_days" {
  description = "Days after which artifacts move to STANDARD_IA and data to INTELLIGENT_TIERING."
  type        = number
  default     = 30
}

variable "access_log_retention_days" {
  description = "Days server access logs are kept."
  type        = number
  default     = 365
}
