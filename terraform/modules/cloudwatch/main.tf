# The environment's dashboard and the per-endpoint alarms that SageMaker deployments use as
# auto-rollback alarms (mlops.yaml deployment.auto_rollback_alarms). The alarms use Metrics
# Insights over every variant of an endpoint, so they hold whatever the variants are called
# and across blue/green fleet swaps.

locals {
  endpoint_alarms = {
    for slug, endpoint in var.endpoints : slug => {
      endpoint = endpoint
      errors   = "${var.name_prefix}-${endpoint}-5xx"
      latency  = "${var.name_prefix}-${endpoint}-latency"
    }
  }

  sagemaker_schema = "SCHEMA(\"AWS/SageMaker\", EndpointName, VariantName)"

  widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title   = "Endpoint invocations"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [[{ id = "invocations", expression = "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"Invocations\"', 'Sum', 300)" }]]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title   = "Endpoint 5XX and 4XX errors"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [
          [{ id = "errors5xx", expression = "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"Invocation5XXErrors\"', 'Sum', 300)" }],
          [{ id = "errors4xx", expression = "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"Invocation4XXErrors\"', 'Sum', 300)" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title   = "Model latency p99 (microseconds)"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [[{ id = "latency", expression = "SEARCH('{AWS/SageMaker,EndpointName,VariantName} MetricName=\"ModelLatency\"', 'p99', 300)" }]]
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title   = "Model metrics published by the pipeline (${var.model_metrics_namespace})"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [[{ id = "modelmetrics", expression = "SEARCH('{${var.model_metrics_namespace},Project,Model}', 'Maximum', 3600)" }]]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 12, height = 6
      properties = {
        title   = "Training jobs: CPU and GPU utilisation per host"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [
          [{ id = "trainingcpu", expression = "SEARCH('{${var.sagemaker_log_group_prefix}/TrainingJobs,Host} MetricName=\"CPUUtilization\"', 'Average', 300)" }],
          [{ id = "traininggpu", expression = "SEARCH('{${var.sagemaker_log_group_prefix}/TrainingJobs,Host} MetricName=\"GPUUtilization\"', 'Average', 300)" }],
        ]
      }
    },
    {
      type = "log", x = 12, y = 12, width = 12, height = 6
      properties = {
        title  = "Recent training jobs"
        region = var.region
        view   = "table"
        query  = "SOURCE '${var.sagemaker_log_group_prefix}/TrainingJobs' | stats latest(@timestamp) as last_log, count(*) as lines by @logStream | sort last_log desc | limit 20"
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 12, height = 6
      properties = {
        title   = "Trigger Lambda"
        region  = var.region
        view    = "timeSeries"
        stacked = false
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.trigger_function_name, { stat = "Sum" }],
          ["AWS/Lambda", "Errors", "FunctionName", var.trigger_function_name, { stat = "Sum" }],
        ]
      }
    },
  ]

  # An alarm widget with no alarms is rejected by the API, so it appears with the first model.
  alarm_widgets = [
    for alarms in [concat(
      [for a in aws_cloudwatch_metric_alarm.endpoint_5xx : a.arn],
      [for a in aws_cloudwatch_metric_alarm.endpoint_latency : a.arn],
      )] : {
      type = "alarm", x = 12, y = 18, width = 12, height = 6
      properties = {
        title  = "Auto-rollback alarms"
        alarms = alarms
      }
    } if length(alarms) > 0
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({ widgets = concat(local.widgets, local.alarm_widgets) })
}

resource "aws_cloudwatch_metric_alarm" "endpoint_5xx" {
  for_each = local.endpoint_alarms

  alarm_name          = each.value.errors
  alarm_description   = "Endpoint ${each.value.endpoint} returns 5XX errors; a deployment that trips it rolls back."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.endpoint_5xx_threshold
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.sns_topic_arn]
  ok_actions          = [var.sns_topic_arn]

  metric_query {
    id          = "errors"
    label       = "Invocation5XXErrors of ${each.value.endpoint}, all variants"
    expression  = "SELECT SUM(Invocation5XXErrors) FROM ${local.sagemaker_schema} WHERE EndpointName = '${each.value.endpoint}'"
    period      = 60
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "endpoint_latency" {
  for_each = local.endpoint_alarms

  alarm_name          = each.value.latency
  alarm_description   = "Endpoint ${each.value.endpoint} answers slower than ${var.endpoint_latency_threshold_ms} ms on average; a deployment that trips it rolls back."
  comparison_operator = "GreaterThanThreshold"
  # ModelLatency is published in microseconds.
  threshold           = var.endpoint_latency_threshold_ms * 1000
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.sns_topic_arn]
  ok_actions          = [var.sns_topic_arn]

  metric_query {
    id          = "latency"
    label       = "ModelLatency of ${each.value.endpoint}, all variants"
    expression  = "SELECT AVG(ModelLatency) FROM ${local.sagemaker_schema} WHERE EndpointName = '${each.value.endpoint}'"
    period      = 60
    return_data = true
  }
}

resource "aws_cloudwatch_metric_alarm" "trigger_errors" {
  alarm_name          = "${var.name_prefix}-trigger-errors"
  alarm_description   = "The trigger Lambda failed: a model pipeline did not start its DAG."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.trigger_function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.sns_topic_arn]
}
