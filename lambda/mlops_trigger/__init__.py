"""
The trigger Lambda: starts ``mlops__<project>__<model>__<action>`` DAG runs from CI events, and
answers how a run it started is doing (the status query).

Standalone by design: it imports neither Airflow nor ``airflow_provider_mlops``, and boto3 only
when the MWAA target or Secrets Manager is used, so its cold start stays small.

==============  ===========================================================
module          what it holds
==============  ===========================================================
``event``       the event contract: validation, DAG id, run id, conf
``status``      the status query: validation, and the answer (state, tasks, failures)
``tasklog``     the tail of a failed task's log that a status answer carries
``settings``    the Lambda's environment variables
``targets``     the target protocol, and self-hosted Airflow (REST API v2)
``mwaa``        MWAA (``InvokeRestApi``, CloudWatch task logs)
``credentials`` Airflow credentials from Secrets Manager or the environment
``app``         one invocation, from event to answer
``logs``        JSON log lines
``errors``      the answers that are refusals
==============  ===========================================================
"""
