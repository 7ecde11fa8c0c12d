"""
The model card of one version: what the model is (from mlops.yaml: description, owner,
project, model, tags, config path), what it was trained on and with (lineage), how it scored
(metrics, gate), and who decided on it (approval, deployment).

One dict (:func:`model_card`) feeds the Model tab and the Markdown export
(:func:`card_markdown`, also ``mlops card PROJECT/MODEL VERSION``). No Airflow import.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_mlops.config.loader import LoadedConfig
from airflow_provider_mlops.registry.base import ModelVersion
from airflow_provider_mlops.ui.data import (
    confusion_matrix,
    gate_word,
    model_ref,
    primary_metric,
    scalar_metrics,
)

#: mlops.yaml keys that describe the model, in the card's order (only those the config has).
ABOUT_KEYS = ("description", "owner", "intended_use")


def model_card(loaded: LoadedConfig, version: ModelVersion) -> dict[str, Any]:
    """The card of ``version`` of the model configured by ``loaded``."""
    cfg = loaded.config
    about = {key: getattr(cfg, key) for key in ABOUT_KEYS if getattr(cfg, key, None)}
    lineage = version.lineage
    return {
        "title": f"{model_ref(loaded)} {version.semver}",
        "about": about,
        "model": {"project": cfg.project, "model": cfg.model, "tags": list(cfg.tags), "config": str(loaded.path),
                  "registry": cfg.registry_backend, "series": cfg.version},
        "version": {"semver": version.semver, "status": version.status, "stage": version.stage or "-",
                    "created": version.created_at, "artifact": version.artifact_uri},
        "training": {key: lineage.get(key) for key in ("image", "image_version", "commit", "repository", "data",
                                                       "hyperparameters", "training_job", "run_id", "requested_by")
                     if lineage.get(key) not in (None, "", {}, [])},
        "primary_metric": primary_metric(loaded),
        "metrics": scalar_metrics(version),
        "confusion_matrix": confusion_matrix(version),
        "gate": {"result": gate_word(version), "champion": version.gate.get("champion_version"),
                 "rows": version.gate.get("rows") or []},
        "approval": dict(version.approval),
        "deployment": dict(version.deployment),
    }


def _md(value: Any) -> str:
    """A value in a Markdown table cell: one line, pipes escaped."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    lines += [f"| {' | '.join(_md(cell) for cell in row)} |" for row in rows]
    return [*lines, ""]


def card_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: headings and tables, fit for a README, a wiki or a review."""
    lines = [f"# Model card: {card['title']}", ""]
    about = card["about"]
    if about.get("description"):
        lines += [str(about["description"]), ""]
    facts = [(key.replace("_", " ").capitalize(), about[key]) for key in ABOUT_KEYS if key in about and key != "description"]
    model = card["model"]
    facts += [("Project", model["project"]), ("Model", model["model"]), ("Tags", ", ".join(model["tags"]) or "-"),
              ("Config", model["config"]), ("Registry", model["registry"])]
    version = card["version"]
    facts += [("Version", version["semver"]), ("Status", version["status"]), ("Stage", version["stage"]),
              ("Created", version["created"]), ("Artifact", version["artifact"])]
    lines += ["## Model", "", *_table(("", ""), facts)]
    if card["training"]:
        lines += ["## Training", "", *_table(("", ""), [(k.replace("_", " "), v) for k, v in card["training"].items()])]
    if card["metrics"]:
        primary = card["primary_metric"]
        rows = [(f"**{name}** (primary)" if name == primary else name, f"{value:.4f}") for name, value in card["metrics"].items()]
        lines += ["## Metrics", "", *_table(("metric", "value"), rows)]
    matrix = card["confusion_matrix"]
    if matrix:
        rows = [(label, *(f"{v:g}" for v in row)) for label, row in zip(matrix["labels"], matrix["matrix"], strict=False)]
        lines += ["## Confusion matrix", "", "Rows: actual class; columns: predicted class.", "",
                  *_table(("actual \\ predicted", *matrix["labels"]), rows)]
    gate = card["gate"]
    lines += ["## Gate", "", f"Result: **{gate['result']}** (champion: {gate['champion'] or 'none'})", ""]
    if gate["rows"]:
        gate_rows: list[tuple[Any, ...]] = [(r.get("metric"), r.get("candidate"), r.get("champion"), r.get("delta"),
                 ", ".join(str(c.get("rule")) for c in r.get("checks", [])), "pass" if r.get("passed") else "FAIL")
                for r in gate["rows"]]
        lines += _table(("metric", "candidate", "champion", "delta", "rules", "result"), gate_rows)
    approval = card["approval"]
    lines += ["## Approval", ""]
    if approval:
        lines += _table(("status", "by", "at", "reason"),
                        [(approval.get("status"), approval.get("by"), approval.get("at"), approval.get("reason") or "-")])
    else:
        lines += ["Not decided yet.", ""]
    if card["deployment"]:
        lines += ["## Deployment", "", *_table(("", ""), sorted(card["deployment"].items()))]
    return "\n".join(lines).rstrip() + "\n"
