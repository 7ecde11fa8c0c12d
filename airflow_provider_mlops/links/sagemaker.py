"""
URLs of SageMaker resources in the AWS console and of their CloudWatch logs.

Pure string building, no SDK: backends put these URLs in ``JobState.details["links"]`` and the
serving/registry results, and the operator links read them back from XCom.
"""

from __future__ import annotations

from urllib.parse import quote

_DOMAINS = {"aws": "aws.amazon.com", "aws-cn": "amazonaws.cn", "aws-us-gov": "amazonaws-us-gov.com"}


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _console(region: str) -> str:
    return f"https://console.{_DOMAINS[partition_of(region)]}"


def sagemaker_console_url(region: str, resource: str, name: str) -> str:
    """
    The console page of one SageMaker resource.

    :param region: the AWS region, for example ``us-east-1``.
    :param resource: ``jobs`` (training), ``processing-jobs``, ``endpoints`` or ``model-packages``
        (``name`` is then ``<group>/<version>``).
    :param name: the resource's name.
    :return: the URL.
    """
    if resource == "model-packages":
        group, _, version = name.partition("/")
        return (f"{_console(region)}/sagemaker/home?region={region}#/model-registry/model-package-groups/"
                f"{quote(group)}/versions/{quote(version)}")
    return f"{_console(region)}/sagemaker/home?region={region}#/{resource}/{quote(name)}"


def cloudwatch_logs_url(region: str, log_group: str, stream_prefix: str) -> str:
    """
    The CloudWatch Logs console, filtered to the streams of one job or endpoint.

    :param region: the AWS region.
    :param log_group: for example ``/aws/sagemaker/TrainingJobs``.
    :param stream_prefix: the job or endpoint name (its streams start with it).
    :return: the URL.
    """
    # The console's fragment uses its own escaping: '/' is '$252F' inside the log group name.
    group = log_group.replace("/", "$252F")
    return (f"{_console(region)}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}"
            f"$3FlogStreamNameFilter$3D{quote(stream_prefix)}")


LOG_GROUPS = {
    "training": "/aws/sagemaker/TrainingJobs",
    "processing": "/aws/sagemaker/ProcessingJobs",
    "endpoint": "/aws/sagemaker/Endpoints",
}
