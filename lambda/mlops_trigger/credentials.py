"""
Credentials for a self-hosted Airflow: from Secrets Manager, or from the Lambda's environment.

A secret is JSON, ``{"username": ..., "password": ...}`` or ``{"token": ...}``. It is read once
per container and read again only when Airflow answers 401 (the secret was rotated). Values are
never logged, and error messages name the secret, never its content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlops_trigger.errors import ConfigurationError
from mlops_trigger.settings import Settings
from mlops_trigger.targets import Credentials


def credentials_provider(settings: Settings, client: Any = None) -> Callable[[bool], Credentials]:
    """Return ``get(refresh)``, which gives the Airflow credentials the settings point to."""
    if not settings.airflow_secret_id:
        fixed = Credentials(settings.airflow_username, settings.airflow_password, settings.airflow_token)

        def from_environment(refresh: bool = False) -> Credentials:
            return fixed

        return from_environment

    cache: dict[str, Credentials] = {}
    secret_id = settings.airflow_secret_id

    def get(refresh: bool = False) -> Credentials:
        if refresh or "value" not in cache:
            cache["value"] = read_secret(secret_id, client)
        return cache["value"]

    return get


def read_secret(secret_id: str, client: Any = None) -> Credentials:
    if client is None:
        import boto3

        client = boto3.client("secretsmanager")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError, KeyError) as exc:
        code = (
            exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        )
        raise ConfigurationError(
            f"cannot read the Airflow credentials secret {secret_id!r} ({code}): check "
            "MLOPS_AIRFLOW_SECRET_ID and the Lambda role's secretsmanager:GetSecretValue"
        ) from None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("token"), str):
        return Credentials(token=value["token"])
    if (
        isinstance(value, dict)
        and isinstance(value.get("username"), str)
        and isinstance(value.get("password"), str)
    ):
        return Credentials(username=value["username"], password=value["password"])
    raise ConfigurationError(
        f"the secret {secret_id!r} must be JSON with 'username' and 'password', or with 'token'"
    )
