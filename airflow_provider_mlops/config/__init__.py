"""mlops.yaml: the typed schema, the layered loader, and the JSON Schema export. Imports no Airflow."""

from airflow_provider_mlops.config.loader import (
    CONFIG_FILENAME,
    DEFAULTS_FILENAME,
    LoadedConfig,
    config_roots,
    discover_configs,
    load_all,
    load_config,
)
from airflow_provider_mlops.config.models import KNOWN_METRICS, MlopsConfig

__all__ = [
    "CONFIG_FILENAME",
    "DEFAULTS_FILENAME",
    "KNOWN_METRICS",
    "LoadedConfig",
    "MlopsConfig",
    "config_roots",
    "discover_configs",
    "load_all",
    "load_config",
]
