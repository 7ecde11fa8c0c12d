variable "repositories" {
  description = "Repository names, one per \"<project>/<model>\"."
  type        = set(string)
}

variable "kms_key_arn" {
  description = "Key that encrypts the images."
  type        = string
}

variable "max_images" {
  description = "Images kept per repository."
  type        = number
  default     = 100
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images expire."
  type        = number
  default     = 7
}
