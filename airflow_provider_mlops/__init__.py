"""
airflow-provider-mlops: the whole model lifecycle on Apache Airflow, from one mlops.yaml.

Importing this package imports no Airflow: the CLI, the Lambda tooling and the model server
stay light. Airflow finds the provider through ``get_provider_info``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata, read by ``airflow providers list``."""
    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": "Train, evaluate, gate, register, approve, deploy, notify and retrain models from one mlops.yaml.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLOps",
                "external-doc-url": "https://github.com/airflow-provider-mlops/airflow-provider-mlops",
                "tags": ["software"],
            }
        ],
        "operators": [
            {"integration-name": "MLOps", "python-modules": [
                "airflow_provider_mlops.operators.train",
                "airflow_provider_mlops.operators.register",
                "airflow_provider_mlops.operators.approve",
                "airflow_provider_mlops.operators.deploy",
                "airflow_provider_mlops.operators.smoke_test",
                "airflow_provider_mlops.operators.retrain",
                "airflow_provider_mlops.operators.notify",
            ]}
        ],
        "plugins": [
            {"name": "mlops", "plugin-class": "airflow_provider_mlops.ui.plugin.MlopsUiPlugin"}
        ],
        "triggers": [
            {"integration-name": "MLOps", "python-modules": ["airflow_provider_mlops.triggers.job"]}
        ],
    }
