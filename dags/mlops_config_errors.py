"""Shows every invalid mlops.yaml as an Airflow import error (this file holds no DAGs).

Kept apart from mlops_dags.py because Airflow hides the DAGs of a file that has an import
error: here, a bad config names its file, line and field, and every good model still loads.
"""

import airflow.sdk  # noqa: F401  (the dag processor only parses files that mention airflow and dag)

from airflow_provider_mlops.factory import report_config_errors

report_config_errors(globals())
