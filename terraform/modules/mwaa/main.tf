# The MWAA environment: Airflow 3 with a private webserver, its DAG loader, requirements,
# plugins (the provider wheel) and startup script in the DAGs bucket. Its metadata is
# disposable: models, versions, images and artifacts live in the registry, ECR and S3, so a
# new environment can replace this one blue/green.

locals {
  requirement = "airflow-provider-mlops${length(var.provider_extras) > 0 ? "[${join(",", var.provider_extras)}]" : ""} @ file:///usr/local/airflow/plugins/${var.provider_wheel_file}"

  requirements_txt = join("\n", concat(
    ["# Managed by terraform/modules/mwaa. The provider wheel ships in plugins.zip."],
    [local.requirement],
    var.extra_requirements,
    [""],
  ))

  # MWAA keeps the variables a startup script exports. The DAG loader reads the configs that
  # CI publishes to s3://<dags bucket>/dags/mlops/<project>/<model>/mlops.yaml from here.
  startup_sh = <<-EOT
    #!/bin/sh
    # Managed by terraform/modules/mwaa.
    export MLOPS_CONFIG_PATH=/usr/local/airflow/dags/mlops
  EOT

  airflow_configuration_options = merge({
    "core.load_examples"                       = "False"
    "core.dagbag_import_timeout"               = "120"
    "dag_processor.dag_file_processor_timeout" = "180"
  }, var.airflow_configuration_options)

  dag_files = setunion(fileset(var.dags_source_dir, "*.py"), fileset(var.dags_source_dir, ".airflowignore"))
}

resource "aws_security_group" "this" {
  name        = "${var.name}-mwaa"
  description = "MWAA ${var.name}: its own components and VPC endpoints talk to each other; out to AWS APIs over HTTPS"
  vpc_id      = var.vpc_id

  ingress {
    description = "MWAA components and their VPC endpoints (MWAA requires a self-referencing rule)"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    description = "MWAA components, metadata database and VPC endpoints"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  egress {
    description = "AWS APIs (S3, SageMaker, SNS, CloudWatch, ECR) over HTTPS through NAT or VPC endpoints"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_s3_object" "requirements" {
  bucket       = var.dags_bucket_name
  key          = "requirements.txt"
  content      = local.requirements_txt
  content_type = "text/plain"
  kms_key_id   = var.kms_key_arn
}

resource "aws_s3_object" "plugins" {
  bucket      = var.dags_bucket_name
  key         = "plugins.zip"
  source      = var.plugins_zip_path
  source_hash = filemd5(var.plugins_zip_path)
  kms_key_id  = var.kms_key_arn
}

resource "aws_s3_object" "startup" {
  bucket       = var.dags_bucket_name
  key          = "startup.sh"
  content      = local.startup_sh
  content_type = "text/x-sh"
  kms_key_id   = var.kms_key_arn
}

resource "aws_s3_object" "dag_loader" {
  for_each = local.dag_files

  bucket      = var.dags_bucket_name
  key         = "dags/${each.value}"
  source      = "${var.dags_source_dir}/${each.value}"
  source_hash = filemd5("${var.dags_source_dir}/${each.value}")
  kms_key_id  = var.kms_key_arn
}

resource "aws_mwaa_environment" "this" {
  name              = var.name
  airflow_version   = var.airflow_version
  environment_class = var.environment_class
  min_workers       = var.min_workers
  max_workers       = var.max_workers
  schedulers        = var.schedulers

  execution_role_arn    = var.execution_role_arn
  kms_key               = var.kms_key_arn
  webserver_access_mode = "PRIVATE_ONLY"

  source_bucket_arn                = var.dags_bucket_arn
  dag_s3_path                      = "dags"
  requirements_s3_path             = aws_s3_object.requirements.key
  requirements_s3_object_version   = aws_s3_object.requirements.version_id
  plugins_s3_path                  = aws_s3_object.plugins.key
  plugins_s3_object_version        = aws_s3_object.plugins.version_id
  startup_script_s3_path           = aws_s3_object.startup.key
  startup_script_s3_object_version = aws_s3_object.startup.version_id

  airflow_configuration_options   = local.airflow_configuration_options
  weekly_maintenance_window_start = var.weekly_maintenance_window_start

  network_configuration {
    security_group_ids = [aws_security_group.this.id]
    subnet_ids         = var.subnet_ids
  }

  logging_configuration {
    dag_processing_logs {
      enabled   = true
      log_level = var.log_level
    }

    scheduler_logs {
      enabled   = true
      log_level = var.log_level
    }

    task_logs {
      enabled   = true
      log_level = var.log_level
    }

    webserver_logs {
      enabled   = true
      log_level = var.log_level
    }

    worker_logs {
      enabled   = true
      log_level = var.log_level
    }
  }

  depends_on = [aws_s3_object.dag_loader]
}
