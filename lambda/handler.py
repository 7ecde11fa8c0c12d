"""
AWS Lambda entry point (``handler.handler``): start an MLOps DAG run from a CI event, or answer
how a run it started is doing (``{"action": "status", ...}``).

See ``mlops_trigger`` for the event contract and ``docs/onboarding.md`` for the settings.
"""

from __future__ import annotations

import os
from typing import Any

from mlops_trigger.app import handle
from mlops_trigger.credentials import credentials_provider
from mlops_trigger.errors import ConfigurationError
from mlops_trigger.logs import get_logger
from mlops_trigger.mwaa import MwaaTarget
from mlops_trigger.settings import Settings
from mlops_trigger.targets import AirflowRestTarget, Target

# Settings and target live as long as the container, so a warm invocation reuses the boto3
# client, the secret and the Airflow token. They are rebuilt if the environment changes.
_RUNTIME: dict[tuple[Any, ...], tuple[Settings, Target]] = {}


def handler(event: Any, context: Any) -> dict[str, Any]:
    logger = get_logger()
    try:
        settings, target = runtime(os.environ, getattr(context, "invoked_function_arn", None))
    except ConfigurationError as exc:
        logger.error(
            exc.message,
            extra={
                "fields": {
                    "status": exc.status,
                    "error": exc.code,
                    "request_id": getattr(context, "aws_request_id", None),
                }
            },
        )
        return exc.as_response()
    return handle(event, context, settings=settings, target=target, logger=logger)


def runtime(env: Any, function_arn: str | None) -> tuple[Settings, Target]:
    key = (function_arn, *sorted((k, v) for k, v in env.items() if k.startswith("MLOPS_")))
    if key not in _RUNTIME:
        settings = Settings.from_env(env, function_arn)
        _RUNTIME.clear()
        _RUNTIME[key] = (settings, build_target(settings))
    return _RUNTIME[key]


def build_target(settings: Settings) -> Target:
    if settings.target == "mwaa":
        assert settings.mwaa_environment
        return MwaaTarget(settings.mwaa_environment)
    assert settings.airflow_url
    return AirflowRestTarget(settings.airflow_url, credentials_provider(settings), settings.timeout)
