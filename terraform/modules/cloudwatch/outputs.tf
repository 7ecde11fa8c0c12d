output "dashboard_name" {
  description = "Name of the dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "auto_rollback_alarms" {
  description = "Rollback alarm names per endpoint, for mlops.yaml deployment.auto_rollback_alarms."
  value       = { for slug, a in local.endpoint_alarms : a.endpoint => [a.errors, a.latency] }
}

output "trigger_errors_alarm_name" {
  description = "Alarm on trigger Lambda errors."
  value       = aws_cloudwatch_metric_alarm.trigger_errors.alarm_name
}
