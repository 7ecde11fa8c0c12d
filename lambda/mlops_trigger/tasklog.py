"""
The tail of a failed task's log, short enough to print in a CI job.

Airflow 3 answers ``GET .../logs/{try}`` (``Accept: application/json``) with
``{"content": [entry, ...]}``: structured entries (``{"event", "level", "logger", "timestamp",
"error_detail"?, ...}``), or plain lines when a log could not be parsed. MWAA's CloudWatch
streams hold the same entries as JSON text. :func:`log_tail` keeps what a person needs to see:

- no ``::group::``/``::endgroup::`` markers, and inside a group (the API's "Log message source
  details", the task runner's "Pre Execute" and "Post Execute") only warnings and errors;
- no debug lines;
- an exception as Python prints it: the innermost frame, then ``Type: message``, cause first;
- the last :data:`MAX_LINES` lines, each at most :data:`MAX_LINE_CHARS`, at most
  :data:`MAX_CHARS` in all, with control characters (terminal escapes) removed.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_LINES = 15
MAX_CHARS = 1500
MAX_LINE_CHARS = 300
QUIET_LEVELS = ("debug", "trace")
LOUD_LEVELS = ("warning", "warn", "error", "critical", "fatal", "exception")
# Terminal escapes (colours: dropped whole), then C0/C1 controls but tab, and DEL: a log line
# must not move the cursor or colour a CI log.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def log_tail(entries: Any, *, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """The lines of ``entries`` that matter, the newest last, as one string."""
    lines: list[str] = []
    depth = 0
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str):
            entry = _parse_text(entry)
        if not isinstance(entry, dict):
            continue
        event = str(entry.get("event") or "")
        if event.startswith("::group::"):
            depth += 1
            continue
        if event.startswith("::endgroup::"):
            depth = max(0, depth - 1)
            continue
        level = str(entry.get("level") or "").lower()
        if level in QUIET_LEVELS or (depth and level not in LOUD_LEVELS):
            continue
        lines.extend(_render(event, level, entry.get("error_detail")))
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if len(kept) == max_lines or size + len(line) + 1 > max_chars:
            if not kept:  # one huge line: keep its end, where the error usually is
                kept.append("..." + line[-(max_chars - 3) :])
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(reversed(kept))


def _parse_text(text: str) -> Any:
    """A CloudWatch message or an unparsed line: JSON if it is a structured entry, else a plain line."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
    return {"event": stripped}


def _render(event: str, level: str, error_detail: Any) -> list[str]:
    prefix = f"{level.upper()} " if level else ""
    lines = [_clean(prefix + part) for part in event.splitlines() if part.strip()]
    # structlog's dict tracebacks list the raised exception first, then its causes.
    for exc in reversed(error_detail if isinstance(error_detail, list) else []):
        if not isinstance(exc, dict):
            continue
        frames = exc.get("frames")
        frame = frames[-1] if isinstance(frames, list) and frames and isinstance(frames[-1], dict) else None
        if frame:
            where = f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}'
            lines.append(_clean(where))
        value = str(exc.get("exc_value") or "")
        first, *rest = value.splitlines() or [""]
        exc_type = str(exc.get("exc_type") or "Exception")
        lines.append(_clean(f"{exc_type}: {first}" if first.strip() else exc_type))
        lines.extend(_clean(part) for part in rest if part.strip())
    return lines


def _clean(line: str) -> str:
    line = _CONTROL_RE.sub("", _ANSI_RE.sub("", line)).rstrip()
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."
