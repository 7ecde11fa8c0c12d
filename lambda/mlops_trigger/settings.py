"""
The Lambda's settings, read from its environment once per cold start.

==================================  ===========================================================
variable                            meaning
==================================  ===========================================================
``MLOPS_TRIGGER_TARGET``            ``mwaa`` or ``airflow``; inferred from the two below if unset
``MLOPS_MWAA_ENVIRONMENT``          MWAA environment name (target ``mwaa``)
``MLOPS_AIRFLOW_API_URL``           self-hosted api-server, e.g. ``https://airflow.internal:8080``
``MLOPS_AIRFLOW_SECRET_ID``         Secrets Manager secret: ``{"username","password"}`` or ``{"token"}``
``MLOPS_AIRFLOW_USERNAME``          or credentials straight from the environment ...
``MLOPS_AIRFLOW_PASSWORD``          ... (encrypted Lambda environment variables)
``MLOPS_AIRFLOW_TOKEN``             ... or a ready JWT
``MLOPS_AIRFLOW_TIMEOUT_SECONDS``   per request, default 10
``MLOPS_ECR_REGISTRY``              ``<account>.dkr.ecr.<region>.amazonaws.com``; default: the
                                    function's own account and region
``MLOPS_ECR_REPOSITORY_PREFIX``     optional prefix before ``<project>/<model>``
``MLOPS_AIRFLOW_UI_URL``            the Airflow UI that status answers link to (``<url>/dags/<dag>/runs/<run>``);
                                    default: ``MLOPS_AIRFLOW_API_URL`` (an Airflow 3 api-server serves
                                    the UI too). On MWAA set it to ``https://<WebserverUrl>``, or
                                    status answers carry no link
==================================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mlops_trigger.errors import ConfigurationError

TARGETS = ("mwaa", "airflow")


@dataclass(frozen=True)
class Settings:
    target: str
    ecr_registry: str
    repository_prefix: str = ""
    mwaa_environment: str | None = None
    airflow_url: str | None = None
    airflow_secret_id: str | None = None
    airflow_username: str | None = None
    airflow_password: str | None = field(default=None, repr=False)
    airflow_token: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    ui_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], function_arn: str | None = None) -> Settings:
        mwaa = env.get("MLOPS_MWAA_ENVIRONMENT") or None
        url = (env.get("MLOPS_AIRFLOW_API_URL") or "").rstrip("/") or None
        target = env.get("MLOPS_TRIGGER_TARGET") or ("mwaa" if mwaa and not url else "airflow" if url else "")
        if target not in TARGETS:
            raise ConfigurationError(
                f"MLOPS_TRIGGER_TARGET is {target!r}: set it to mwaa (with MLOPS_MWAA_ENVIRONMENT) "
                "or airflow (with MLOPS_AIRFLOW_API_URL)"
            )
        if target == "mwaa" and not mwaa:
            raise ConfigurationError("target mwaa needs MLOPS_MWAA_ENVIRONMENT, the MWAA environment name")
        if target == "airflow":
            if not url or not url.startswith(("http://", "https://")):
                raise ConfigurationError("target airflow needs MLOPS_AIRFLOW_API_URL, an http(s) URL")
            if "@" in url.split("/")[2]:
                raise ConfigurationError(
                    "MLOPS_AIRFLOW_API_URL must not hold credentials: use MLOPS_AIRFLOW_SECRET_ID"
                )
            has_login = env.get("MLOPS_AIRFLOW_USERNAME") and env.get("MLOPS_AIRFLOW_PASSWORD")
            if not (env.get("MLOPS_AIRFLOW_SECRET_ID") or env.get("MLOPS_AIRFLOW_TOKEN") or has_login):
                raise ConfigurationError(
                    "target airflow needs credentials: MLOPS_AIRFLOW_SECRET_ID (Secrets Manager), "
                    "MLOPS_AIRFLOW_TOKEN, or MLOPS_AIRFLOW_USERNAME and MLOPS_AIRFLOW_PASSWORD"
                )
        ui_url = (env.get("MLOPS_AIRFLOW_UI_URL") or "").rstrip("/") or None
        if ui_url is not None and (
            not ui_url.startswith(("http://", "https://")) or "@" in ui_url.split("/")[2] or "?" in ui_url
        ):
            raise ConfigurationError(
                "MLOPS_AIRFLOW_UI_URL must be the Airflow UI's http(s) address, without credentials or a "
                "query, for example https://airflow.example.com"
            )
        try:
            timeout = float(env.get("MLOPS_AIRFLOW_TIMEOUT_SECONDS") or 10)
        except ValueError:
            raise ConfigurationError("MLOPS_AIRFLOW_TIMEOUT_SECONDS must be a number of seconds") from None
        return cls(
            target=target,
            ecr_registry=(env.get("MLOPS_ECR_REGISTRY") or registry_from_arn(function_arn)).lower(),
            repository_prefix=env.get("MLOPS_ECR_REPOSITORY_PREFIX", ""),
            mwaa_environment=mwaa,
            airflow_url=url,
            airflow_secret_id=env.get("MLOPS_AIRFLOW_SECRET_ID") or None,
            airflow_username=env.get("MLOPS_AIRFLOW_USERNAME") or None,
            airflow_password=env.get("MLOPS_AIRFLOW_PASSWORD") or None,
            airflow_token=env.get("MLOPS_AIRFLOW_TOKEN") or None,
            timeout=timeout,
            ui_url=ui_url or (url if target == "airflow" else None),
        )


def registry_from_arn(function_arn: str | None) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>`` -> the account's ECR registry host."""
    parts = (function_arn or "").split(":")
    if len(parts) < 7 or parts[0] != "arn" or not parts[4].isdigit():
        raise ConfigurationError(
            "MLOPS_ECR_REGISTRY is not set and the function ARN does not name an account: "
            "set MLOPS_ECR_REGISTRY to <account>.dkr.ecr.<region>.amazonaws.com"
        )
    partition, region, account = parts[1], parts[3], parts[4]
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"
