"""
The gate: does a candidate model clear its absolute bounds and hold up against production?

Pure functions over plain dicts, so the operator, the notifications and the CLI render the same
table. The first model of a series has no champion; that is explicit in the result
(``champion_version`` is None and every ``min_delta`` row says ``no champion``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_mlops.config.models import Evaluation


def evaluate_gate(
    evaluation: Evaluation,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    champion_version: str | None = None,
) -> dict[str, Any]:
    """
    Compare ``candidate`` metrics with the gate rules and the ``champion`` (production) metrics.

    :return: a JSON-serialisable dict: ``passed``, ``champion_version``, ``first_model`` and
        ``rows``, one per metric, with the candidate and champion values, the delta in the
        metric's good direction, and each rule's outcome.
    """
    rows: list[dict[str, Any]] = []
    for metric in evaluation.metrics:
        better_up = bool(evaluation.direction(metric))
        value = candidate.get(metric)
        prod = champion.get(metric) if champion else None
        delta = None
        if value is not None and prod is not None:
            delta = (value - prod) if better_up else (prod - value)
        rule = evaluation.gate.get(metric)
        checks: list[dict[str, Any]] = []
        if rule is not None:
            if value is None:
                checks.append({"rule": "present", "passed": False, "detail": "metric missing from evaluation"})
            else:
                if rule.min is not None:
                    checks.append({"rule": f">= {rule.min:g}", "passed": value >= rule.min})
                if rule.max is not None:
                    checks.append({"rule": f"<= {rule.max:g}", "passed": value <= rule.max})
                if rule.min_delta is not None:
                    if delta is None:
                        checks.append({"rule": f"delta >= {rule.min_delta:g}", "passed": True, "detail": "no champion"})
                    else:
                        checks.append({"rule": f"delta >= {rule.min_delta:g}", "passed": delta >= rule.min_delta - 1e-12})
        rows.append(
            {
                "metric": metric,
                "greater_is_better": better_up,
                "candidate": value,
                "champion": prod,
                "delta": None if delta is None else round(delta, 6),
                "checks": checks,
                "passed": all(c["passed"] for c in checks),
                "primary": metric == evaluation.primary_metric,
            }
        )
    return {
        "passed": all(r["passed"] for r in rows),
        "champion_version": champion_version if champion else None,
        "first_model": champion is None,
        "rows": rows,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:+.4f}" if value < 0 or value > 0 else "+0.0000"
    return str(value)


def gate_table_markdown(result: Mapping[str, Any]) -> str:
    """The gate result as a Markdown table (the approval body, the Slack message, the CLI)."""
    champion = result.get("champion_version") or "none (first model)"
    lines = [
        f"**Gate: {'PASSED' if result['passed'] else 'FAILED'}** (champion: {champion})",
        "",
        "| metric | candidate | production | delta | rules | result |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        rules = ", ".join(
            c["rule"] + (f" ({c['detail']})" if c.get("detail") else "") for c in row["checks"]
        ) or "-"
        cand = "-" if row["candidate"] is None else f"{row['candidate']:.4f}"
        prod = "-" if row["champion"] is None else f"{row['champion']:.4f}"
        name = f"{row['metric']} (primary)" if row.get("primary") else row["metric"]
        verdict = "pass" if row["passed"] else "FAIL"
        lines.append(f"| {name} | {cand} | {prod} | {_fmt(row['delta'])} | {rules} | {verdict} |")
    return "\n".join(lines)
