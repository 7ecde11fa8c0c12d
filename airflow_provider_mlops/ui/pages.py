"""
The HTML of the Models page and the Model tab: plain server-rendered pages (inline CSS and
SVG, no script), shown by the Airflow UI in its plugin frame. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from airflow_provider_mlops.ui.svg import confusion_matrix_svg, metric_chart

#: Where the api-server mounts the app, and the UI routes of the two views (see :mod:`.plugin`).
URL_PREFIX = "/mlops"
MODELS_ROUTE = "mlops-models"
MODEL_TAB_ROUTE = "mlops-model"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:14px;margin:16px;color:#1a202c}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;margin:4px 0 12px}th,td{border:1px solid #d8dee9;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f6fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.FAIL,.Rejected{color:#c53030;font-weight:600}.pass,.Approved{color:#1f7a45;font-weight:600}
.PendingManualApproval{color:#b7791f;font-weight:600}.production{font-weight:700}
.muted{color:#718096}.charts{display:flex;flex-wrap:wrap;gap:12px}.up{color:#1f7a45}.down{color:#c53030}
code{font-size:12px}form{margin:8px 0}
"""


def _e(value: Any) -> str:
    return "-" if value is None or value == "" else escape(str(value))


def _num(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def _signed(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return '<td class="num">-</td>'
    css = "up" if value > 0 else ("down" if value < 0 else "")
    return f'<td class="num delta {css}">{value:+.4f}</td>'


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def _table(header: Sequence[str], rows: Sequence[str], css: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _error(summary: Mapping[str, Any]) -> str:
    return f'<div class="FAIL">{_e(summary["error"])}</div>' if summary.get("error") else ""


def models_page(summaries: Sequence[Mapping[str, Any]], airflow_base: str, errors: int = 0) -> str:
    """Every model the user may see: production, latest, last gate, last deploy, pending approvals."""
    rows = []
    for s in summaries:
        tab = f"{airflow_base}/dags/{quote(s['dag_ids']['train'])}/plugin/{MODEL_TAB_ROUTE}"
        gate = s["last_gate"]
        deploy = s["last_deploy"]
        pending = s["pending_approvals"]
        pending_cell = (f'<a href="{airflow_base}/required_actions" target="_top">{len(pending)} waiting: '
                        f'{_e(", ".join(pending))}</a>' if pending else "none")
        rows.append(
            f'<tr class="model" data-model="{_e(s["ref"])}">'
            f'<td><a href="{tab}" target="_top">{_e(s["ref"])}</a><div class="muted">{_e(s["description"])}</div>'
            f'{_error(s)}</td>'
            f'<td>{_e(s["owner"])}</td><td class="production-version">{_e(s["production"])}</td>'
            f'<td class="latest-version">{_e(s["latest"])}</td><td class="num">{s["versions"]}</td>'
            f'<td class="last-gate">{_e(gate and gate["version"])} <span class="{_e(gate and gate["result"])}">'
            f'{_e(gate and gate["result"])}</span></td>'
            f'<td class="last-deploy">{_e(deploy and deploy["version"])} <span class="muted">{_e(deploy and deploy["at"])}'
            f'</span></td><td class="pending">{pending_cell}</td></tr>'
        )
    table = _table(("model", "owner", "production", "latest", "versions", "last gate", "last deploy",
                    "pending approvals"), rows, "models") if rows else \
        '<p class="empty">No models you may read. A model shows here once its mlops.yaml is published and you can read its DAGs.</p>'
    note = (f'<p class="muted">{errors} config(s) failed to load: see the DAG import errors.</p>' if errors else "")
    return page("MLOps models", f"<h1>Models</h1>{table}{note}")


def versions_table(rows: Sequence[Mapping[str, Any]], primary: str) -> str:
    out = []
    for r in rows:
        lineage = r["lineage"]
        lineage_text = " ".join(f"{k}={v}" for k, v in lineage.items() if k != "data")
        stage = r["stage"]
        out.append(
            f'<tr class="version {"production" if stage == "production" else ""}" data-version="{_e(r["semver"])}">'
            f'<td>{_e(r["semver"])}</td><td class="{_e(r["status"])}">{_e(r["status"])}</td><td>{_e(stage)}</td>'
            f'<td class="num">{_num(r["primary_metric"])}</td><td class="{_e(r["gate"])}">{_e(r["gate"])}</td>'
            f'<td>{_e(r["approver"])}<div class="muted">{_e(r["reason"])}</div></td><td>{_e(r["created"])}</td>'
            f"<td><code>{_e(lineage_text)}</code></td></tr>"
        )
    return _table(("version", "status", "stage", primary or "primary metric", "gate", "approver and reason",
                   "created", "lineage"), out, "versions")


def compare_section(comparison: Mapping[str, Any] | None, semvers: Sequence[str], action: str) -> str:
    """The form to pick two versions and, when picked, their side-by-side comparison (b against a)."""
    def select(name: str, chosen: str | None) -> str:
        options = "".join(f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(v)}</option>' for v in semvers)
        return f'<select name="{name}" aria-label="version {name}">{options}</select>'

    a = comparison["a"] if comparison else (semvers[-2] if len(semvers) > 1 else None)
    b = comparison["b"] if comparison else (semvers[-1] if semvers else None)
    form = (f'<form class="compare" method="get" action="{escape(action)}">{select("a", a)} against '
            f'{select("b", b)} <button type="submit">Compare</button></form>')
    if not comparison:
        return f"<h2>Compare two versions</h2>{form}"
    a_s, b_s = _e(comparison["a"]), _e(comparison["b"])
    metric_rows = [f'<tr data-metric="{_e(r["metric"])}"><td>{_e(r["metric"])}</td><td class="num">{_num(r["a"])}</td>'
                   f'<td class="num">{_num(r["b"])}</td>{_signed(r["delta"])}</tr>' for r in comparison["metrics"]]
    hp_rows = [f'<tr class="{"changed" if r["changed"] else ""}"><td>{_e(r["name"])}</td><td>{_e(r["a"])}</td>'
               f'<td>{_e(r["b"])}</td><td>{"changed" if r["changed"] else "same"}</td></tr>' for r in comparison["hyperparameters"]]
    lineage_rows = [f'<tr><td>{_e(r["field"])}</td><td><code>{_e(r["a"])}</code></td><td><code>{_e(r["b"])}</code></td>'
                    f'<td>{"changed" if r["changed"] else "same"}</td></tr>' for r in comparison["lineage"]]
    return (f"<h2>Compare two versions</h2>{form}<h3>Metrics: {b_s} against {a_s}</h3>"
            + _table(("metric", a_s, b_s, "delta"), metric_rows, "compare-metrics")
            + "<h3>Hyperparameters</h3>" + (_table(("name", a_s, b_s, ""), hp_rows, "compare-hyperparameters")
                                            if hp_rows else '<p class="muted">none recorded</p>')
            + "<h3>Data, image and code</h3>" + _table(("", a_s, b_s, ""), lineage_rows, "compare-lineage"))


def card_section(card: Mapping[str, Any], semvers: Sequence[str], action: str, export_href: str) -> str:
    options = "".join(f'<option value="{_e(v)}"{" selected" if v == card["version"]["semver"] else ""}>{_e(v)}</option>'
                      for v in semvers)
    about = "".join(f"<tr><th>{_e(k.replace('_', ' '))}</th><td>{_e(v)}</td></tr>" for k, v in card["about"].items())
    model = card["model"]
    facts = about + "".join(f"<tr><th>{_e(k)}</th><td>{_e(', '.join(v) if isinstance(v, list) else v)}</td></tr>"
                            for k, v in model.items())
    version = card["version"]
    facts += "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in version.items())
    training = "".join(f"<tr><th>{_e(k.replace('_', ' '))}</th><td><code>{_e(v)}</code></td></tr>"
                       for k, v in card["training"].items())
    approval = card["approval"]
    decided = (f'{_e(approval.get("status"))} by {_e(approval.get("by"))} at {_e(approval.get("at"))}: '
               f'{_e(approval.get("reason"))}' if approval else "not decided yet")
    matrix = card["confusion_matrix"]
    return (
        f'<h2>Model card</h2><form method="get" action="{escape(action)}"><select name="card" aria-label="card version">'
        f'{options}</select> <button type="submit">Show card</button> '
        f'<a class="export" href="{escape(export_href)}" download>Export as Markdown</a></form>'
        f'<div class="card" data-version="{_e(version["semver"])}"><table>{facts}</table>'
        + (f"<h3>Training</h3><table>{training}</table>" if training else "")
        + f'<h3>Gate</h3><p class="{_e(card["gate"]["result"])}">{_e(card["gate"]["result"])}'
        f' (champion: {_e(card["gate"]["champion"] or "none")})</p><h3>Approval</h3><p>{decided}</p>'
        + (f'<h3>Confusion matrix of {_e(version["semver"])}</h3>{confusion_matrix_svg(matrix)}' if matrix
           else '<h3>Confusion matrix</h3><p class="muted">not recorded by this version\'s evaluation</p>')
        + "</div>"
    )


def model_tab_page(*, ref: str, dag_id: str, primary: str, rows: Sequence[Mapping[str, Any]],
                   series: Mapping[str, Sequence[Mapping[str, Any]]], comparison: Mapping[str, Any] | None,
                   card: Mapping[str, Any] | None, action: str, export_href: str) -> str:
    """The Model tab of one of the model's DAGs: versions, charts, comparison, card."""
    if not rows:
        body = (f"<h1>{_e(ref)}</h1><p class=\"empty\">No versions registered yet: run "
                f"<code>{_e(dag_id.rsplit('__', 1)[0])}__train</code> to train the first one.</p>")
        return page(f"{ref}: model", body)
    semvers = [str(r["semver"]) for r in rows]
    charts = "".join(metric_chart(name, points) for name, points in series.items())
    body = (
        f"<h1>{_e(ref)}</h1><h2>Versions</h2>{versions_table(rows, primary)}"
        f'<h2>Metrics across versions</h2><p class="muted">The production version is the larger green point.</p>'
        f'<div class="charts">{charts}</div>'
        + compare_section(comparison, semvers, action)
        + (card_section(card, semvers, action, export_href) if card else "")
    )
    return page(f"{ref}: model", body)


def query(**params: str | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"?{urlencode(kept)}" if kept else ""
