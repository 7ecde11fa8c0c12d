# prod: one AWS account. Apply with
#   terraform -chdir=terraform init -backend-config=envs/prod.s3.tfbackend
#   terraform -chdir=terraform apply -var-file=envs/prod.tfvars
# Replace the placeholder account, VPC, subnet and OIDC values with the real ones.

environment    = "prod"
aws_region     = "eu-west-1"
aws_account_id = "333333333333"

# "<project>/<model>" of every model this environment serves (examples/ holds these two).
models = [
  "demo/breast-cancer",
  "demo/diabetes",
]

vpc_id             = "vpc-0300000000000000a"
private_subnet_ids = ["subnet-030000000000000a1", "subnet-030000000000000b2"]

airflow_version        = "3.3.2"
mwaa_environment_class = "mw1.large"
mwaa_min_workers       = 2
mwaa_max_workers       = 10
mwaa_schedulers        = 3

endpoint_5xx_threshold        = 1
endpoint_latency_threshold_ms = 1000

notification_emails = []

gitlab_oidc_provider_arn = "arn:aws:iam::333333333333:oidc-provider/gitlab.com"
gitlab_subjects          = ["project_path:ml/*:ref_type:tag:ref:v*"]

tags = {
  "cost-center" = "ml-platform"
}
