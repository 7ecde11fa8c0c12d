"""
:class:`~.messages.Message` → what each channel sends: Slack Block Kit, and SNS text with attributes.

Pure functions. The gate table and the confusion matrix are fixed-width text, so they line up in
Slack's preformatted blocks and in a plain-text email alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_mlops.notifications.messages import Message

STATUS_EMOJI = {"success": ":white_check_mark:", "info": ":hourglass_flowing_sand:", "warning": ":warning:", "failure": ":x:"}

# Slack's limits (https://api.slack.com/reference/block-kit/blocks): a header is 150 characters
# of plain text, a section's text 3,000, a section 10 fields of 2,000, an actions block 25 elements.
SLACK_HEADER_CHARS = 150
SLACK_TEXT_CHARS = 3000
SLACK_FIELDS = 10
SLACK_BUTTONS = 25
# SNS: a subject is under 100 ASCII characters with no line breaks.
SNS_SUBJECT_CHARS = 99

TABLE_HEADER = ("metric", "candidate", "production", "delta", "rules", "result")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _grid(rows: Sequence[Sequence[str]]) -> str:
    columns = max(len(row) for row in rows)
    padded = [list(row) + [""] * (columns - len(row)) for row in rows]
    widths = [max(len(row[i]) for row in padded) for i in range(columns)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in padded)


def gate_table_text(message: Message) -> str:
    """The gate table, candidate against production, as fixed-width text (``*`` marks the primary metric)."""
    if not message.gate_rows:
        return ""
    rows = [TABLE_HEADER] + [
        (r.metric, r.candidate, r.production, r.delta, r.rules, r.result) for r in message.gate_rows
    ]
    return _grid(rows)


def confusion_matrix_text(matrix: Mapping[str, Any] | None) -> str:
    """``{"labels", "matrix"}`` as a fixed-width grid: rows are the actual class, columns the predicted one."""
    if not matrix or not matrix.get("matrix"):
        return ""
    values = matrix["matrix"]
    labels = [str(x) for x in (matrix.get("labels") or range(len(values)))]
    rows = [["actual \\ predicted", *labels]] + [[label, *(str(v) for v in row)] for label, row in zip(labels, values, strict=False)]
    return _grid(rows)


def _gate_heading(message: Message) -> str:
    fields = dict(message.fields)
    verdict = {True: "PASSED", False: "FAILED"}.get(message.gate_passed, "not run")  # type: ignore[arg-type]
    champion = fields.get("Champion")
    if not champion or champion.startswith("none"):
        return f"Gate {verdict}: first model, no production model to compare with"
    return f"Gate {verdict}: candidate {fields.get('Version', '?')} against production {champion}"


def slack_payload(message: Message) -> dict[str, Any]:
    """
    The Slack message: ``{"text": fallback, "blocks": [...]}``.

    Blocks: a header, the summary, the fields, the gate table and the confusion matrix (both
    preformatted), an error summary for failures, then link buttons.
    """
    emoji = STATUS_EMOJI.get(message.status, "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(message.title, SLACK_HEADER_CHARS), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"{emoji} {_esc(message.summary)}".strip(), SLACK_TEXT_CHARS)}},
    ]
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _clip(f"*{_esc(label)}*\n{_esc(value)}", 2000)}
                    for label, value in message.fields[:SLACK_FIELDS]
                ],
            }
        )
    table = gate_table_text(message)
    if table:
        text = f"*{_gate_heading(message)}*\n```{_esc(table)}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_CHARS)}})
    matrix = confusion_matrix_text(message.confusion_matrix)
    if matrix:
        text = f"*Confusion matrix* (rows: actual, columns: predicted)\n```{_esc(matrix)}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SLACK_TEXT_CHARS)}})
    if message.detail:
        text = f"*Error*\n```{_clip(_esc(message.detail), SLACK_TEXT_CHARS - 20)}```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if message.links:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": _clip(label, 75)}, "url": url}
                    for label, url in message.links[:SLACK_BUTTONS]
                ],
            }
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"airflow-provider-mlops · event `{message.event}`"}]}
    )
    return {"text": _clip(f"{message.title}: {message.summary}", SLACK_TEXT_CHARS), "blocks": blocks}


def sns_subject(message: Message) -> str:
    """The title as a valid SNS subject: ASCII, one line, under 100 characters."""
    ascii_title = message.title.encode("ascii", "replace").decode().replace("\n", " ").replace("\r", " ")
    return _clip(ascii_title, SNS_SUBJECT_CHARS).replace("…", "~")


def sns_body(message: Message) -> str:
    """A readable plain-text body (email subscribers see it as is)."""
    parts = [message.title, "=" * min(len(message.title), 78), "", message.summary, ""]
    if message.fields:
        width = max(len(label) for label, _ in message.fields)
        parts += [f"{label + ':':<{width + 1}} {value}" for label, value in message.fields] + [""]
    table = gate_table_text(message)
    if table:
        parts += [_gate_heading(message), "(* primary metric; delta is in the metric's good direction)", "", table, ""]
    matrix = confusion_matrix_text(message.confusion_matrix)
    if matrix:
        parts += ["Confusion matrix (rows: actual, columns: predicted)", "", matrix, ""]
    if message.detail:
        parts += ["Error:", "", message.detail, ""]
    if message.links:
        parts += ["Links:"] + [f"- {label}: {url}" for label, url in message.links] + [""]
    parts.append(f"-- airflow-provider-mlops, event {message.event}")
    return "\n".join(parts)


def sns_attributes(message: Message) -> dict[str, str]:
    """Message attributes for SNS subscription filter policies."""
    attributes = {"project": message.project, "model": message.model, "event": message.event, "status": message.status}
    if message.version:
        attributes["version"] = message.version
    return attributes
