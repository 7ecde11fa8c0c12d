"""
One invocation: validate the event, pick the DAG and run id, create the run, answer.

::

    answer = {"statusCode": 201 | 200, "ok": true, "created": bool, "dag_id", "dag_run_id", "target", "state"}
           | {"statusCode": 4xx | 5xx, "ok": false, "error": "<code>", "message", "field"?}

201 is a new run; 200 is a retried event whose run already exists (same run id). Every
answer is logged as one JSON line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mlops_trigger.errors import EventError, TriggerError
from mlops_trigger.event import parse_event
from mlops_trigger.settings import Settings
from mlops_trigger.targets import Target


def handle(
    raw_event: Any, context: Any, *, settings: Settings, target: Target, logger: logging.Logger
) -> dict[str, Any]:
    started = time.perf_counter()
    fields: dict[str, Any] = {"request_id": getattr(context, "aws_request_id", None), "target": target.name}
    try:
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


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
