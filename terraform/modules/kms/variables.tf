variable "name" {
  description = "Key alias (alias/<name>) and description prefix."
  type        = string
}

variable "account_id" {
  description = "Account that owns and administers the key."
  type        = string
}

variable "region" {
  description = "Region of the key and of the log groups it encrypts."
  type        = string
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion completes."
  type        = number
  default     = 30
}
