# Offline tests of the composition root: a mocked AWS provider, so no credentials and no
# network. Run with each environment's tfvars:
#   terraform -chdir=terraform test -var-file=envs/dev.tfvars
# (scripts/check_infra.sh runs all three against the provider in /opt/tf-plugins).

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }

  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }

  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }

  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }

  # The provider validates ARNs even under mocks, so computed ARNs need a realistic shape.
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }

  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:mlops-test-notifications" }
  }

  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mlops-test-role" }
  }

  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mlops-test-bucket" }
  }

  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:eu-west-1:123456789012:repository/test/model" }
  }

  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/mlops-test-trigger" }
  }

  mock_resource "aws_lambda_function" {
    defaults = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:mlops-test-trigger" }
  }

  mock_resource "aws_mwaa_environment" {
    defaults = { arn = "arn:aws:airflow:eu-west-1:123456789012:environment/mlops-test" }
  }

  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mlops-test" }
  }
}

variables {
  lambda_zip_path  = "tests/fixtures/trigger_lambda.zip"
  plugins_zip_path = "tests/fixtures/plugins.zip"
  dags_source_dir  = "tests/fixtures/dags"
}

run "composition_applies_with_mocks" {
  command = apply

  assert {
    condition     = output.ecr_registry == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    error_message = "MLOPS_ECR_REGISTRY must be <account>.dkr.ecr.<region>.amazonaws.com"
  }

  assert {
    condition     = output.trigger_lambda_environment.MLOPS_TRIGGER_TARGET == "mwaa" && output.trigger_lambda_environment.MLOPS_MWAA_ENVIRONMENT == output.mwaa_environment_name && output.trigger_lambda_environment.MLOPS_ECR_REGISTRY == output.ecr_registry
    error_message = "The trigger Lambda must target this MWAA environment and registry"
  }

  assert {
    condition     = toset(keys(output.ecr_repository_urls)) == toset(var.models)
    error_message = "One ECR repository per <project>/<model>"
  }

  assert {
    condition     = alltrue([for m in var.models : length(output.auto_rollback_alarms[replace(m, "/", "-")]) == 2])
    error_message = "Every model endpoint gets a 5xx and a latency rollback alarm"
  }

  assert {
    condition     = toset(keys(module.mwaa.dag_loader_keys)) == toset(["dags/mlops_dags.py", "dags/.airflowignore"])
    error_message = "Only the loader's *.py files and .airflowignore are uploaded to dags/"
  }

  assert {
    condition     = strcontains(module.mwaa.requirements_txt, "airflow-provider-mlops[aws,slack] @ file:///usr/local/airflow/plugins/airflow_provider_mlops-")
    error_message = "requirements.txt must install the provider wheel from plugins.zip"
  }

  assert {
    condition     = yamldecode(aws_s3_object.org_config_defaults[0].content).aws.role_arn == output.sagemaker_execution_role_arn
    error_message = "The org-level mlops-defaults.yaml must carry the SageMaker role"
  }

  assert {
    condition     = alltrue([for k, o in aws_s3_object.model_config_defaults : o.key == "dags/mlops/${k}/mlops-defaults.yaml" && length(yamldecode(o.content).deployment.auto_rollback_alarms) == 2])
    error_message = "Each model folder gets its rollback alarms as a defaults layer"
  }
}

run "no_models_still_plans" {
  command = plan

  variables {
    models = []
  }

  assert {
    condition     = length(output.ecr_repository_urls) == 0 && length(aws_s3_object.model_config_defaults) == 0
    error_message = "An environment without models has no repositories and no per-model defaults"
  }
}

run "rejects_bad_model_names" {
  command = plan

  variables {
    models = ["Fraud/XGB"]
  }

  expect_failures = [var.models]
}

run "rejects_names_too_long_for_invoke_rest_api" {
  command = plan

  variables {
    models = ["a-rather-long-project/and-a-long-model-name"]
  }

  expect_failures = [var.models]
}
