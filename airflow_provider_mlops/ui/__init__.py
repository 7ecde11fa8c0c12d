"""
The MLOps views in the Airflow UI: a **Models** page in the navigation and a **Model** tab on
each model's DAG pages, served by a FastAPI app that the api-server mounts at ``/mlops``.

- :mod:`.data`: what the views show, as JSON-ready dicts (models, versions, series, comparisons).
- :mod:`.svg`: the charts, drawn on the server (no script, no CDN).
- :mod:`.card`: the model card, as data and as Markdown (also ``mlops card``).
- :mod:`.pages`: the HTML pages.
- :mod:`.app`: the FastAPI app and Airflow's auth; :mod:`.plugin`: the Airflow plugin.

Only :mod:`.app` and :mod:`.plugin` import Airflow, and only the api-server builds the app.
"""
