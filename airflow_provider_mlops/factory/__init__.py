"""Configs → plans → DAGs. ``load_dags(globals())`` is the one call the dags folder makes."""

from airflow_provider_mlops.factory.loader import LoadReport, load_dags, report_config_errors

__all__ = ["LoadReport", "load_dags", "report_config_errors"]
