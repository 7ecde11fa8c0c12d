"""
Errors the trigger answers with. Each carries the HTTP-style status the caller sees.

::

    TriggerError                 any refusal or failure; ``status`` and ``code`` go in the response
    ├── EventError               4xx: the event is wrong; the caller must change it
    ├── ConfigurationError       500: the Lambda's own environment is wrong; the platform team fixes it
    └── TargetError              the Airflow side refused or failed (404, 409, 422, 502, 504)

Messages name the field, the bad value (shortened and escaped), what is allowed and the fix.
They never contain credentials.
"""

from __future__ import annotations


class TriggerError(Exception):
    """A refusal or failure, answered as ``{"statusCode": status, "error": code, ...}``."""

    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.field = field

    def as_response(self) -> dict[str, object]:
        body: dict[str, object] = {
            "statusCode": self.status,
            "ok": False,
            "error": self.code,
            "message": self.message,
        }
        if self.field is not None:
            body["field"] = self.field
        return body


class EventError(TriggerError):
    status = 400
    code = "invalid_event"


class ConfigurationError(TriggerError):
    status = 500
    code = "lambda_misconfigured"


class TargetError(TriggerError):
    status = 502
    code = "airflow_error"


def shown(value: object, limit: int = 60) -> str:
    """A short, escaped rendering of a caller's value, safe to put in a message or a log line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
