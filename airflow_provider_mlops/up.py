"""
``mlops up PATH...``: your own models on a local Airflow, until Ctrl-C.

It validates the configs, writes a dags folder with the provider's loader files, and starts
Airflow's scheduler, dag-processor, triggerer and api-server (SQLite by default, a throw-away
PostgreSQL cluster with ``--postgres``), then prints the UI's address and the login. Everything
lives under ``--home`` (default ``.mlops-up``): Airflow's DB and logs, the registry, the jobs and
the endpoints, so a second ``mlops up`` finds the same models, versions and password.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_mlops.exceptions import InputError
from airflow_provider_mlops.factory.shards import _MARKER, ERRORS_TEMPLATE, SHARD_TEMPLATE

USER = "admin"


def config_folders(paths: Sequence[str]) -> list[Path]:
    """The folders to load configs from: each PATH, or the folder of a PATH that is an mlops.yaml."""
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw).resolve()
        if not path.exists():
            raise InputError(f"{raw} does not exist: pass a model folder (with mlops.yaml) or an mlops.yaml file")
        folder = path.parent if path.is_file() else path
        if folder not in folders:
            folders.append(folder)
    return folders


def write_dags_folder(folder: Path) -> Path:
    """The provider's two loader files: every model's DAGs, and every bad config as an import error."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlops_dags_0.py").write_text(SHARD_TEMPLATE.format(index=0, count=1, marker=_MARKER))
    (folder / "mlops_config_errors_0.py").write_text(ERRORS_TEMPLATE.format(index=0, count=1, marker=_MARKER))
    return folder


def _password(home: Path) -> str:
    """The admin password of this home: made once, kept (0600) so a restart keeps the login."""
    path = home / "admin-password"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def run_up(paths: Sequence[str], *, home: Path, port: int, postgres: bool, parallelism: int = 4) -> int:
    from airflow_provider_mlops.config.loader import load_all
    from airflow_provider_mlops.local_airflow import LocalAirflow, PostgresCluster

    folders = config_folders(paths)
    loaded, errors = load_all(folders)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        print(f"fix the config errors above (mlops validate {' '.join(paths)}), then run mlops up again", file=sys.stderr)
        return 1
    if not loaded:
        print(f"error: no mlops.yaml under {', '.join(map(str, folders))}", file=sys.stderr)
        return 1
    home = home.resolve()
    dags = write_dags_folder(home / "dags")
    cluster = None

    def stop_on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    airflow = LocalAirflow(home / "airflow", dags, folders, home / "mlops", port=port, users={USER: "admin"},
                           parallelism=parallelism, passwords={USER: _password(home)})
    try:
        if postgres:
            print("==> starting a throw-away PostgreSQL cluster", flush=True)
            cluster = PostgresCluster().start()
            airflow.database_url = cluster.url
        print(f"==> starting Airflow (scheduler, dag-processor, triggerer, api-server) in {home}; about 30 s", flush=True)
        airflow.start()
        models = ", ".join(f"{item.config.project}/{item.config.model}" for item in loaded)
        info = {"url": airflow.base_url, "username": USER, "password_file": str(home / "admin-password"),
                "mlops_home": str(airflow.mlops_home), "pid": os.getpid()}
        (home / "up.json").write_text(json.dumps(info, indent=2))
        print(
            f"\nAirflow is up: {airflow.base_url}\n"
            f"  login:     {USER} / {airflow.password}  (kept in {home / 'admin-password'})\n"
            f"  models:    {models}\n"
            f"  MLOps home: {airflow.mlops_home}  (registry, jobs, endpoints)\n"
            f"  logs:      {airflow.home / 'component-logs'}\n"
            "Train a model: open its __train DAG and press Trigger. Ctrl-C stops everything.",
            flush=True,
        )
        while True:
            airflow.check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        print("\n==> stopping Airflow", flush=True)
        return 0
    finally:
        airflow.stop()
        if cluster is not None:
            cluster.stop()
        _stop_endpoints(home / "mlops")


def _stop_endpoints(mlops_home: Path) -> None:
    """Endpoints the session deployed stop with it: nothing keeps serving unseen."""
    from airflow_provider_mlops.serving.local import LocalServing

    for state in (mlops_home / "endpoints").glob("*"):
        LocalServing(mlops_home).stop(state.name)
