"""
Structured logs: one JSON object a line on stdout, which CloudWatch Logs Insights queries as-is.

Only what the code passes in ``extra={"fields": {...}}`` is logged beside the message; the raw
event, request headers and credentials never are.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

LOGGER_NAME = "mlops_trigger"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=True)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time, so captured output in tests sees it too."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def get_logger() -> logging.Logger:
    """The trigger's logger: JSON to stdout, not through Lambda's text root handler; ``MLOPS_LOG_LEVEL``."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(handler, "_mlops_json", False) for handler in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        handler._mlops_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        level = os.environ.get("MLOPS_LOG_LEVEL", "INFO").upper()
        logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
        logger.propagate = False
    return logger
