variable "name" {
  description = "Topic name."
  type        = string
}

variable "account_id" {
  description = "Account whose principals and alarms may publish."
  type        = string
}

variable "partition" {
  description = "AWS partition."
  type        = string
  default     = "aws"
}

variable "kms_key_arn" {
  description = "Key that encrypts messages at rest."
  type        = string
}

variable "notification_emails" {
  description = "E-mail subscribers."
  type        = list(string)
  default     = []
}
