"""
The FastAPI app behind the MLOps views, mounted by Airflow's api-server at ``/mlops``.

Every route needs an Airflow login (the UI's ``_token`` cookie, or ``Authorization: Bearer``),
checked by Airflow's own ``get_user``; without one the answer is 401 and nothing else. A model
is shown only to a user whom Airflow's auth manager lets read all of the model's DAGs
(:data:`.data.MODEL_DAG_KINDS`); anyone else gets 404 for it, as if it did not exist.

Models are found the way the DAG loader finds them (``$MLOPS_CONFIG_PATH``, else ``mlops/``
in the dags folder), each read from its own registry (:func:`runtime.registry_for`).

Routes (below ``/mlops``):

- ``GET /models``: the Models page; ``GET /api/models``: the same as JSON.
- ``GET /dag/{dag_id}``: the Model tab of a DAG (``?a=&b=`` compares, ``?card=`` picks the card).
- ``GET /api/models/{project}/{model}/versions``: versions and metric series as JSON.
- ``GET /api/models/{project}/{model}/compare?a=&b=``: a comparison as JSON.
- ``GET /models/{project}/{model}/card/{version}.md``: the model card as Markdown.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from airflow_provider_mlops import runtime
from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.exceptions import InputError, MlopsError
from airflow_provider_mlops.registry.base import ModelVersion
from airflow_provider_mlops.ui import data, pages
from airflow_provider_mlops.ui.card import card_markdown, model_card

log = logging.getLogger(__name__)


async def current_user(request: Request) -> Any:
    """The Airflow user of the request, through Airflow's own ``get_user`` (401 without a valid login)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


User = Annotated[Any, Depends(current_user)]


def _dags_folder() -> str | None:
    from airflow.configuration import conf

    return conf.get("core", "dags_folder", fallback=None)


def visible_models(user: Any) -> tuple[list[LoadedConfig], int]:
    """The models ``user`` may read (all their DAGs), and how many configs failed to load."""
    from airflow.api_fastapi.app import get_auth_manager

    models, errors = data.find_models(data.model_roots(_dags_folder()))
    wanted = {d for m in models for d in data.model_dag_ids(m)}
    allowed = get_auth_manager().filter_authorized_dag_ids(dag_ids=wanted, user=user, method="GET") if wanted else set()
    return [m for m in models if set(data.model_dag_ids(m)) <= allowed], len(errors)


def _model(user: Any, project: str, model: str) -> LoadedConfig:
    try:
        return data.model_by_ref(visible_models(user)[0], project, model)
    except InputError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def _versions(loaded: LoadedConfig) -> list[ModelVersion]:
    try:
        return data.ordered(runtime.registry_for(loaded).list_versions(runtime.group_of(loaded)))
    except MlopsError as exc:
        raise HTTPException(status_code=502, detail=f"the registry of {data.model_ref(loaded)} failed: {exc}") from None


def _summary(loaded: LoadedConfig) -> dict[str, Any]:
    try:
        versions = runtime.registry_for(loaded).list_versions(runtime.group_of(loaded))
    except MlopsError as exc:  # one unreachable registry must not hide the other models
        log.warning("MLOps Models page: the registry of %s failed: %s", data.model_ref(loaded), exc)
        return {**data.model_summary(loaded, []), "error": f"registry unavailable: {exc}"}
    return data.model_summary(loaded, versions)


def _pick(versions: list[ModelVersion], semver: str | None, ref: str) -> ModelVersion:
    try:
        return data.find_version(versions, semver or "", ref)
    except InputError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def airflow_base(request: Request) -> str:
    """The Airflow UI's base path (empty at the root), from where the api-server mounted this app."""
    root = str(request.scope.get("root_path", ""))
    return root[: -len(pages.URL_PREFIX)] if root.endswith(pages.URL_PREFIX) else ""


def create_app() -> FastAPI:
    """The app the plugin hands to the api-server (``fastapi_apps``)."""
    app = FastAPI(title="MLOps", description="Models, versions, metrics and model cards of airflow-provider-mlops")

    @app.get("/api/models")
    def api_models(user: User) -> list[dict[str, Any]]:
        return [_summary(m) for m in visible_models(user)[0]]

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request, user: User) -> str:
        models, errors = visible_models(user)
        return pages.models_page([_summary(m) for m in models], airflow_base(request), errors)

    @app.get("/api/models/{project}/{model}/versions")
    def api_versions(project: str, model: str, user: User) -> dict[str, Any]:
        loaded = _model(user, project, model)
        versions = _versions(loaded)
        primary = data.primary_metric(loaded)
        return {"model": data.model_ref(loaded), "primary_metric": primary,
                "versions": [data.version_row(v, primary) for v in versions], "series": data.metric_series(versions)}

    @app.get("/api/models/{project}/{model}/compare")
    def api_compare(project: str, model: str, a: str, b: str, user: User) -> dict[str, Any]:
        loaded = _model(user, project, model)
        versions = _versions(loaded)
        ref = data.model_ref(loaded)
        return data.compare_versions(_pick(versions, a, ref), _pick(versions, b, ref))

    @app.get("/models/{project}/{model}/card/{version}.md", response_class=PlainTextResponse)
    def card_export(project: str, model: str, version: str, user: User) -> PlainTextResponse:
        loaded = _model(user, project, model)
        chosen = _pick(_versions(loaded), version, data.model_ref(loaded))
        name = f"model-card-{project}-{model}-{chosen.semver}.md"
        return PlainTextResponse(card_markdown(model_card(loaded, chosen)), media_type="text/markdown; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/dag/{dag_id}", response_class=HTMLResponse)
    def model_tab(request: Request, dag_id: str, user: User, a: str | None = None, b: str | None = None,
                  card: str | None = None) -> str:
        from airflow.api_fastapi.core_api.security import requires_access_dag

        requires_access_dag("GET")(request, user)  # Airflow's own check of this DAG (403 when denied)
        loaded = data.model_of_dag(visible_models(user)[0], dag_id)
        if loaded is None:
            return pages.page("MLOps", f"<h1>Model</h1><p class=\"empty\">{escape(dag_id)} is not the DAG of an MLOps "
                              "model you may read: the Model tab shows only on mlops__PROJECT__MODEL__* DAGs.</p>")
        versions = _versions(loaded)
        ref, primary = data.model_ref(loaded), data.primary_metric(loaded)
        semvers = [v.semver for v in versions]
        comparison = None
        if a and b:
            comparison = data.compare_versions(_pick(versions, a, ref), _pick(versions, b, ref))
        elif len(versions) > 1:
            comparison = data.compare_versions(versions[-2], versions[-1])
        production = next((v.semver for v in reversed(versions) if v.stage == "production"), None)
        card_version = card or production or (semvers[-1] if semvers else None)
        chosen = _pick(versions, card_version, ref) if card_version else None
        root = str(request.scope.get("root_path", ""))
        project, model = loaded.config.project, loaded.config.model
        return pages.model_tab_page(
            ref=ref, dag_id=dag_id, primary=primary, rows=[data.version_row(v, primary) for v in versions],
            series=data.metric_series(versions), comparison=comparison,
            card=model_card(loaded, chosen) if chosen else None, action=f"{root}/dag/{dag_id}",
            export_href=f"{root}/models/{project}/{model}/card/{chosen.semver if chosen else ''}.md",
        )

    return app
