"""Every model's train, deploy and retrain DAGs, built from the published mlops.yaml files.

Configs are read from $MLOPS_CONFIG_PATH (os.pathsep-separated folders), else mlops/ here.
"""

# Named so that Airflow's dag processor pre-imports them once, not in every parse (docs/performance.md).
import airflow.providers.standard.operators.empty
import airflow.providers.standard.operators.hitl
import airflow.providers.standard.operators.trigger_dagrun
import airflow.sdk  # noqa: F401

from airflow_provider_mlops.factory import load_dags

load_dags(globals())
