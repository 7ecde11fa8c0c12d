# stage: one AWS account. Apply with
#   terraform -chdir=terraform init -backend-config=envs/stage.s3.tfbackend
#   terraform -chdir=terraform apply -var-file=envs/stage.tfvars
# Replace the placeholder account, VPC, subnet and OIDC values with the real ones.

environment    = "stage"
aws_region     = "eu-west-1"
aws_account_id = "222222222222"

# "<project>/<model>" of every model this environment serves (examples/ holds these two).
models = [
  "demo/breast-cancer",
  "demo/diabetes",
]

vpc_id             = "vpc-0200000000000000a"
private_subnet_ids = ["subnet-020000000000000a1", "subnet-020000000000000b2"]

airflow_version        = "3.3.2"
mwaa_environment_class = "mw1.medium"
mwaa_min_workers       = 1
mwaa_max_workers       = 5
mwaa_schedulers        = 2

endpoint_5xx_threshold        = 2
endpoint_latency_threshold_ms = 1500

notification_emails = []

gitlab_oidc_provider_arn = "arn:aws:iam::222222222222:oidc-provider/gitlab.com"
gitlab_subjects          = ["project_path:ml/*:ref_type:branch:ref:main"]

tags = {
  "cost-center" = "ml-platform"
}
