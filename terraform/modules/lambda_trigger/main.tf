# The trigger Lambda: GitLab CI invokes it with {action, project, model, version, image,
# commit, requested_by}; it starts mlops__<project>__<model>__<action> on MWAA through
# InvokeRestApi. Its role can do exactly that, on this environment only, and write its logs.

locals {
  # InvokeRestApi is authorised per Airflow role of one environment:
  # arn:aws:airflow:<region>:<account>:role/<environment>/<airflow role>.
  invoke_rest_api_arn = "arn:${var.partition}:airflow:${var.region}:${var.account_id}:role/${var.mwaa_environment_name}/${var.airflow_rbac_role}"

  # The names lambda/mlops_trigger/settings.py and logs.py read.
  environment_variables = {
    MLOPS_TRIGGER_TARGET   = "mwaa"
    MLOPS_MWAA_ENVIRONMENT = var.mwaa_environment_name
    MLOPS_ECR_REGISTRY     = var.ecr_registry
    MLOPS_AIRFLOW_UI_URL   = var.airflow_ui_url
    MLOPS_LOG_LEVEL        = var.log_level
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-lambda"
  description        = "Trigger Lambda ${var.function_name}: InvokeRestApi on ${var.mwaa_environment_name}, own logs"
  assume_role_policy = data.aws_iam_policy_document.trust.json
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "trigger"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.permissions.json
}

data "aws_iam_policy_document" "permissions" {
  statement {
    sid       = "InvokeAirflowRestApiOnThisEnvironment"
    actions   = ["airflow:InvokeRestApi"]
    resources = [local.invoke_rest_api_arn]
  }

  # The status query's log tail of a failed task (CI prints it); only this environment's task logs.
  statement {
    sid       = "ReadMwaaTaskLogsForStatusQueries"
    actions   = ["logs:GetLogEvents"]
    resources = ["arn:${var.partition}:logs:${var.region}:${var.account_id}:log-group:airflow-${var.mwaa_environment_name}-Task:log-stream:*"]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_117:The function calls only the public MWAA InvokeRestApi and CloudWatch Logs APIs; a VPC would add ENI permissions to a role meant to hold InvokeRestApi and logs only.
  # checkov:skip=CKV_AWS_116:CI invokes the function synchronously (RequestResponse) and reads the error from the response; a DLQ only ever receives asynchronous failures.
  # checkov:skip=CKV_AWS_272:The zip is built and deployed by this repository's own pipeline from reviewed code; Signer code signing needs a signing job and S3-staged artifacts that this stack does not run.
  function_name                  = var.function_name
  description                    = "Triggers mlops__ DAGs on MWAA environment ${var.mwaa_environment_name}"
  role                           = aws_iam_role.this.arn
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  handler                        = "handler.handler"
  runtime                        = var.runtime
  timeout                        = var.timeout_seconds
  memory_size                    = var.memory_mb
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.environment_variables
  }

  tracing_config {
    mode = "PassThrough"
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}
