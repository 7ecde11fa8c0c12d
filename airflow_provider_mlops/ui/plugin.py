"""
The Airflow plugin of the MLOps views, registered through the ``airflow.plugins`` entry point
(and the provider info's ``plugins``, for ``lazy_discover_providers = False``).

- ``fastapi_apps``: :func:`.app.create_app`, mounted by the api-server at ``/mlops``.
- ``external_views``: **Models** in the navigation (``destination: nav``), and a **Model** tab on
  every DAG page (``destination: dag``; the UI fills in ``{DAG_ID}``), each shown in the UI's
  plugin frame.

Every Airflow component loads plugins, so this module stays light: the app's routes import the
auth and registry code they need when a request comes, never at import.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_mlops.ui.app import create_app
from airflow_provider_mlops.ui.pages import MODEL_TAB_ROUTE, MODELS_ROUTE, URL_PREFIX

EXTERNAL_VIEWS: list[dict[str, Any]] = [
    {"name": "Models", "href": f"{URL_PREFIX}/models", "url_route": MODELS_ROUTE, "destination": "nav",
     "nav_top_level": True},
    {"name": "Model", "href": f"{URL_PREFIX}/dag/{{DAG_ID}}", "url_route": MODEL_TAB_ROUTE, "destination": "dag"},
]


class MlopsUiPlugin(AirflowPlugin):
    """The Models page and the Model tab of airflow-provider-mlops."""

    name = "mlops"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "MLOps"}]
    external_views = EXTERNAL_VIEWS
