# Roles of one environment, each scoped to this environment's buckets, repositories, topic and
# key. No IAM users: people use SSO, CI assumes a role through GitLab's OIDC tokens.
#
#   mwaa_execution       Airflow's tasks: drive SageMaker, read/write S3, publish to SNS.
#   sagemaker_execution  Training/processing jobs and endpoints: read data, write artifacts,
#                        pull model images, write logs and metrics.
#   ci (optional)        GitLab CI of model repositories: push images, publish configs,
#                        invoke the trigger Lambda.

locals {
  arn_prefix       = "arn:${var.partition}"
  sagemaker_prefix = "${local.arn_prefix}:sagemaker:${var.region}:${var.account_id}"
  logs_prefix      = "${local.arn_prefix}:logs:${var.region}:${var.account_id}:log-group"

  mwaa_environment_arn = "${local.arn_prefix}:airflow:${var.region}:${var.account_id}:environment/${var.mwaa_environment_name}"
  trigger_function_arn = "${local.arn_prefix}:lambda:${var.region}:${var.account_id}:function:${var.trigger_function_name}"

  # Model images only, never other repositories of the account.
  ecr_repository_arns = length(var.ecr_repository_arns) > 0 ? var.ecr_repository_arns : ["${local.arn_prefix}:ecr:${var.region}:${var.account_id}:repository/none"]

  create_ci_role = var.gitlab_oidc_provider_arn != ""
  gitlab_host    = local.create_ci_role ? element(split("oidc-provider/", var.gitlab_oidc_provider_arn), 1) : ""
}

# --- MWAA execution role -------------------------------------------------------------------

resource "aws_iam_role" "mwaa_execution" {
  name               = "${var.name_prefix}-mwaa-execution"
  description        = "Airflow tasks of ${var.mwaa_environment_name}"
  assume_role_policy = data.aws_iam_policy_document.mwaa_trust.json
}

data "aws_iam_policy_document" "mwaa_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["airflow.amazonaws.com", "airflow-env.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role_policy" "mwaa_execution" {
  name   = "mwaa-execution"
  role   = aws_iam_role.mwaa_execution.id
  policy = data.aws_iam_policy_document.mwaa_execution.json
}

data "aws_iam_policy_document" "mwaa_execution" {
  statement {
    sid       = "PublishAirflowMetrics"
    actions   = ["airflow:PublishMetrics"]
    resources = [local.mwaa_environment_arn]
  }

  statement {
    sid       = "ReadDagsRequirementsPlugins"
    actions   = ["s3:GetObject*", "s3:GetBucket*", "s3:ListBucket"]
    resources = [var.dags_bucket_arn, "${var.dags_bucket_arn}/*"]
  }

  statement {
    sid = "ReadWriteArtifactsAndData"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListBucket",
      "s3:GetBucketLocation",
    ]
    resources = [
      var.artifacts_bucket_arn,
      "${var.artifacts_bucket_arn}/*",
      var.data_bucket_arn,
      "${var.data_bucket_arn}/*",
    ]
  }

  statement {
    sid       = "MwaaChecksAccountPublicAccessBlock"
    actions   = ["s3:GetAccountPublicAccessBlock"]
    resources = ["*"]
  }

  statement {
    sid = "AirflowLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:CreateLogGroup",
      "logs:PutLogEvents",
      "logs:GetLogEvents",
      "logs:GetLogRecord",
      "logs:GetLogGroupFields",
      "logs:GetQueryResults",
      "logs:DescribeLogGroups",
    ]
    resources = [
      "${local.logs_prefix}:airflow-${var.mwaa_environment_name}-*",
      "${local.logs_prefix}:airflow-${var.mwaa_environment_name}-*:log-stream:*",
    ]
  }

  statement {
    sid       = "ReadSageMakerJobLogs"
    actions   = ["logs:GetLogEvents", "logs:DescribeLogStreams", "logs:FilterLogEvents"]
    resources = ["${local.logs_prefix}:/aws/sagemaker/*", "${local.logs_prefix}:/aws/sagemaker/*:log-stream:*"]
  }

  statement {
    sid       = "PutMetricsInOwnNamespaces"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["AmazonMWAA", var.model_metrics_namespace]
    }
  }

  statement {
    sid       = "ReadRollbackAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = ["${local.arn_prefix}:cloudwatch:${var.region}:${var.account_id}:alarm:${var.alarm_name_prefix}-*"]
  }

  statement {
    sid = "CeleryQueue"
    actions = [
      "sqs:ChangeMessageVisibility",
      "sqs:DeleteMessage",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:ReceiveMessage",
      "sqs:SendMessage",
    ]
    # MWAA's Celery queue lives in an account AWS owns, hence the account wildcard.
    resources = ["${local.arn_prefix}:sqs:${var.region}:*:airflow-celery-*"]
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*", "kms:Encrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values = [
        "sqs.${var.region}.amazonaws.com",
        "s3.${var.region}.amazonaws.com",
        "sns.${var.region}.amazonaws.com",
        "logs.${var.region}.amazonaws.com",
      ]
    }
  }

  statement {
    sid = "SageMakerJobs"
    actions = [
      "sagemaker:CreateTrainingJob",
      "sagemaker:DescribeTrainingJob",
      "sagemaker:StopTrainingJob",
      "sagemaker:CreateProcessingJob",
      "sagemaker:DescribeProcessingJob",
      "sagemaker:StopProcessingJob",
      "sagemaker:AddTags",
      "sagemaker:ListTags",
    ]
    resources = [
      "${local.sagemaker_prefix}:training-job/*",
      "${local.sagemaker_prefix}:processing-job/*",
    ]
  }

  statement {
    sid = "SageMakerModelRegistry"
    actions = [
      "sagemaker:CreateModelPackageGroup",
      "sagemaker:DescribeModelPackageGroup",
      "sagemaker:CreateModelPackage",
      "sagemaker:DescribeModelPackage",
      "sagemaker:UpdateModelPackage",
      "sagemaker:ListModelPackages",
      "sagemaker:AddTags",
      "sagemaker:ListTags",
    ]
    resources = [
      "${local.sagemaker_prefix}:model-package-group/*",
      "${local.sagemaker_prefix}:model-package/*",
    ]
  }

  statement {
    sid = "SageMakerServing"
    actions = [
      "sagemaker:CreateModel",
      "sagemaker:DescribeModel",
      "sagemaker:DeleteModel",
      "sagemaker:CreateEndpointConfig",
      "sagemaker:DescribeEndpointConfig",
      "sagemaker:DeleteEndpointConfig",
      "sagemaker:CreateEndpoint",
      "sagemaker:UpdateEndpoint",
      "sagemaker:UpdateEndpointWeightsAndCapacities",
      "sagemaker:DescribeEndpoint",
      "sagemaker:DeleteEndpoint",
      "sagemaker:InvokeEndpoint",
      "sagemaker:AddTags",
      "sagemaker:ListTags",
    ]
    resources = [
      "${local.sagemaker_prefix}:model/*",
      "${local.sagemaker_prefix}:endpoint-config/*",
      "${local.sagemaker_prefix}:endpoint/*",
    ]
  }

  statement {
    sid = "SageMakerListings"
    actions = [
      "sagemaker:ListTrainingJobs",
      "sagemaker:ListProcessingJobs",
      "sagemaker:ListModelPackageGroups",
      "sagemaker:ListEndpoints",
      "sagemaker:ListEndpointConfigs",
      "sagemaker:ListModels",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "PassOnlyTheSageMakerRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.sagemaker_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid       = "DescribeModelImages"
    actions   = ["ecr:DescribeImages", "ecr:BatchGetImage"]
    resources = local.ecr_repository_arns
  }

  statement {
    sid       = "NotifyTopic"
    actions   = ["sns:Publish"]
    resources = [var.sns_topic_arn]
  }
}

# --- SageMaker execution role ----------------------------------------------------------------

resource "aws_iam_role" "sagemaker_execution" {
  name               = "${var.name_prefix}-sagemaker-execution"
  description        = "SageMaker jobs and endpoints started by ${var.mwaa_environment_name}"
  assume_role_policy = data.aws_iam_policy_document.sagemaker_trust.json
}

data "aws_iam_policy_document" "sagemaker_trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_iam_role_policy" "sagemaker_execution" {
  name   = "sagemaker-execution"
  role   = aws_iam_role.sagemaker_execution.id
  policy = data.aws_iam_policy_document.sagemaker_execution.json
}

data "aws_iam_policy_document" "sagemaker_execution" {
  statement {
    sid       = "ReadData"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.data_bucket_arn, "${var.data_bucket_arn}/*"]
  }

  statement {
    sid = "ReadWriteArtifacts"
    actions = [
      "s3:GetObject",
      "s3:GetObjectVersion",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListBucket",
      "s3:GetBucketLocation",
    ]
    resources = [var.artifacts_bucket_arn, "${var.artifacts_bucket_arn}/*"]
  }

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullModelImages"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = local.ecr_repository_arns
  }

  statement {
    sid = "JobAndEndpointLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = ["${local.logs_prefix}:/aws/sagemaker/*", "${local.logs_prefix}:/aws/sagemaker/*:log-stream:*"]
  }

  statement {
    sid       = "JobAndModelMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*", var.model_metrics_namespace]
    }
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey*"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values = [
        "s3.${var.region}.amazonaws.com",
        "ecr.${var.region}.amazonaws.com",
      ]
    }
  }
}

# --- GitLab CI role (OIDC) -------------------------------------------------------------------

resource "aws_iam_role" "ci" {
  count = local.create_ci_role ? 1 : 0

  name                 = "${var.name_prefix}-gitlab-ci"
  description          = "GitLab CI of model repositories: push images, publish configs, trigger DAGs"
  assume_role_policy   = data.aws_iam_policy_document.ci_trust[0].json
  max_session_duration = 3600

  lifecycle {
    precondition {
      condition     = length(var.gitlab_subjects) > 0
      error_message = "gitlab_subjects must name at least one GitLab project when gitlab_oidc_provider_arn is set."
    }
  }
}

data "aws_iam_policy_document" "ci_trust" {
  count = local.create_ci_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.gitlab_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.gitlab_host}:aud"
      values   = [var.gitlab_oidc_audience]
    }

    condition {
      test     = "StringLike"
      variable = "${local.gitlab_host}:sub"
      values   = var.gitlab_subjects
    }
  }
}

resource "aws_iam_role_policy" "ci" {
  count = local.create_ci_role ? 1 : 0

  name   = "gitlab-ci"
  role   = aws_iam_role.ci[0].id
  policy = data.aws_iam_policy_document.ci[0].json
}

data "aws_iam_policy_document" "ci" {
  count = local.create_ci_role ? 1 : 0

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushModelImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:InitiateLayerUpload",
      "ecr:UploadLayerPart",
      "ecr:CompleteLayerUpload",
      "ecr:PutImage",
      "ecr:BatchGetImage",
      "ecr:DescribeImages",
    ]
    resources = local.ecr_repository_arns
  }

  statement {
    sid = "PublishModelConfigs"
    # DeleteObject: the publish job removes the files its own earlier publish left and this one dropped.
    actions   = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${var.dags_bucket_arn}/dags/mlops/*"]
  }

  statement {
    sid       = "NotifyPipelineFailures"
    actions   = ["sns:Publish"]
    resources = [var.sns_topic_arn]
  }

  statement {
    sid       = "ListModelConfigs"
    actions   = ["s3:ListBucket"]
    resources = [var.dags_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["dags/mlops/*"]
    }
  }

  statement {
    sid       = "InvokeTrigger"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.trigger_function_arn]
  }

  statement {
    sid       = "UseEnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com", "ecr.${var.region}.amazonaws.com", "sns.${var.region}.amazonaws.com"]
    }
  }
}
