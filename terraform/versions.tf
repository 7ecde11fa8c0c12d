terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }

  # Partial configuration: each environment passes its own state location, so dev, stage and
  # prod live in their own accounts and state files:
  #   terraform init -backend-config=envs/dev.s3.tfbackend
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  # Refuse to plan against the wrong account: dev, stage and prod are separate accounts.
  allowed_account_ids = [var.aws_account_id]

  default_tags {
    tags = local.tags
  }
}
