"""dag-factory 1.1.0 over the same DAGs, as its documentation shows (its YAML lives outside the dags folder)."""

import os

import airflow.sdk  # noqa: F401  (the dag processor only parses files that mention airflow and dag)
from dagfactory import load_yaml_dags

_FOLDER = os.environ["DAGFACTORY_CONFIG_PATH"]
load_yaml_dags(globals_dict=globals(), dags_folder=_FOLDER, defaults_config_path=_FOLDER)
