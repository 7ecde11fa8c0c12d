# dev: one AWS account. Apply with
#   terraform -chdir=terraform init -backend-config=envs/dev.s3.tfbackend
#   terraform -chdir=terraform apply -var-file=envs/dev.tfvars
# Replace the placeholder account, VPC, subnet and OIDC values with the real ones.

environment    = "dev"
aws_region     = "eu-west-1"
aws_account_id = "111111111111"

# "<project>/<model>" of every model this environment serves (examples/ holds these two).
models = [
  "demo/breast-cancer",
  "demo/diabetes",
]

vpc_id             = "vpc-0100000000000000a"
private_subnet_ids = ["subnet-010000000000000a1", "subnet-010000000000000b2"]

airflow_version        = "3.3.2"
mwaa_environment_class = "mw1.small"
mwaa_min_workers       = 1
mwaa_max_workers       = 3
mwaa_schedulers        = 2

endpoint_5xx_threshold        = 5
endpoint_latency_threshold_ms = 2000

notification_emails = []

gitlab_oidc_provider_arn = "arn:aws:iam::111111111111:oidc-provider/gitlab.com"
gitlab_subjects          = ["project_path:ml/*:ref_type:branch:ref:*"]

tags = {
  "cost-center" = "ml-platform"
}
