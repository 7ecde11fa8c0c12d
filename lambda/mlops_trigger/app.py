"""
One invocation: validate the event, then create the run (a trigger event) or read it back (a
status query, ``status.py``), and answer.

::

    answer = {"statusCode": 201 | 200, "ok": true, "created": bool, "dag_id", "dag_run_id", "target", "state"}
           | {"statusCode": 4xx | 5xx, "ok": false, "error": "<code>", "message", "field"?}

201 is a new run; 200 is a retried event whose run already exists (same run id). A status
query answers 200 with the run's state, tasks and failures. Every answer is logged as one JSON
line.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from mlops_trigger.errors import EventError, TriggerError
from mlops_trigger.event import decode_payload, is_http_event, parse_event
from mlops_trigger.settings import Settings
from mlops_trigger.status import is_status_query, parse_status_query, read_status
from mlops_trigger.targets import Target


def handle(
    raw_event: Any, context: Any, *, settings: Settings, target: Target, logger: logging.Logger
) -> dict[str, Any]:
    """
    Answer one invocation. A direct ``Invoke`` (CI) gets the answer object itself; a function URL
    or API Gateway request gets it as an HTTP response, the JSON answer in its ``body``, so an
    HTTP caller sees the error's code, field and message too.
    """
    answer = _answer(raw_event, context, settings=settings, target=target, logger=logger)
    if is_http_event(raw_event):
        return {
            "statusCode": answer.get("statusCode", 500),
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(answer, sort_keys=True),
        }
    return answer


def _answer(
    raw_event: Any, context: Any, *, settings: Settings, target: Target, logger: logging.Logger
) -> dict[str, Any]:
    started = time.perf_counter()
    fields: dict[str, Any] = {"request_id": getattr(context, "aws_request_id", None), "target": target.name}
    try:
        payload = decode_payload(raw_event)
        if is_status_query(payload):
            return _status(
                payload, settings=settings, target=target, logger=logger, fields=fields, started=started
            )
        # The raw event, not the payload: parse_event decodes it itself, exactly as before status queries.
        event = parse_event(
            raw_event, ecr_registry=settings.ecr_registry, repository_prefix=settings.repository_prefix
        )
        fields.update(event.log_fields(), dag_id=event.dag_id, dag_run_id=event.run_id)
        result = target.trigger(event.dag_id, event.run_id, event.conf)
    except TriggerError as exc:
        answer = exc.as_response()
        fields.update(
            status=exc.status,
            error=exc.code,
            field=exc.field,
            duration_ms=_ms(started),
            outcome="rejected" if isinstance(exc, EventError) else "failed",
        )
        level = logging.WARNING if exc.status < 500 else logging.ERROR
        logger.log(level, exc.message, extra={"fields": fields})
        return answer
    except Exception:  # an answer, not a Lambda crash that the caller would retry blindly
        fields.update(status=500, error="internal_error", duration_ms=_ms(started), outcome="failed")
        logger.exception("unexpected error", extra={"fields": fields})
        return {
            "statusCode": 500,
            "ok": False,
            "error": "internal_error",
            "message": f"the trigger failed unexpectedly; see its logs for request {fields['request_id']}",
        }
    answer = {
        "statusCode": 201 if result.created else 200,
        "ok": True,
        "created": result.created,
        "dag_id": event.dag_id,
        "dag_run_id": event.run_id,
        "target": target.name,
        "state": result.state,
    }
    fields.update(
        status=answer["statusCode"],
        created=result.created,
        state=result.state,
        duration_ms=_ms(started),
        outcome="created" if result.created else "existing",
    )
    logger.info("dag run created" if result.created else "dag run already existed", extra={"fields": fields})
    return answer


def _status(
    payload: Any,
    *,
    settings: Settings,
    target: Target,
    logger: logging.Logger,
    fields: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """Answer a status query; a :class:`TriggerError` goes up to :func:`handle`, which answers it."""
    query = parse_status_query(payload)
    fields.update(query.log_fields(), dag_id=query.dag_id, dag_run_id=query.dag_run_id)
    answer = read_status(target, query, ui_url=settings.ui_url)
    fields.update(
        status=answer["statusCode"],
        state=answer["state"],
        waiting_for_approval=answer["waiting_for_approval"],
        failed_tasks=[failure["task_id"] for failure in answer["failed"]],
        duration_ms=_ms(started),
        outcome="status",
    )
    logger.info("dag run status", extra={"fields": fields})
    return answer


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
