"""
Config snapshots (issue 13): a snapshot rebuilds the very config it was taken from without reading
a file, the content digest is stable, a damaged snapshot is an error, and how a task of a DAG run
finds the run's config (its upstream's snapshot, else the file; never the file once upstream ran).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from task_fakes import FakeTaskInstance, context

from airflow_provider_mlops import runtime
from airflow_provider_mlops.config.loader import load_all, load_config
from airflow_provider_mlops.config.snapshot import (
    SNAPSHOT_FORMAT,
    PinnedConfig,
    restore_snapshot,
    short_digest,
    take_snapshot,
)
from airflow_provider_mlops.exceptions import ConfigError
from airflow_provider_mlops.operators.base import CONFIG_SNAPSHOT_KEY

REPO = Path(__file__).resolve().parents[2]
EXAMPLES, _ = load_all([REPO / "examples"])
FIX = "clear the run from its first task"


def _model(tmp_path: Path) -> Path:
    """The breast-cancer example under an organisation defaults layer, with a registry home of its own."""
    root = tmp_path / "models"
    model = root / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "examples" / "mlops-defaults.yaml", root / "mlops-defaults.yaml")
    config = yaml.safe_load((model / "mlops.yaml").read_text())
    config["registry"] = {"home": "registry"}
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    return model / "mlops.yaml"


def _through_xcom(snapshot: dict[str, Any]) -> Any:
    """What comes back from XCom: JSON."""
    return json.loads(json.dumps(snapshot))


@pytest.mark.parametrize("loaded", EXAMPLES, ids=lambda loaded: loaded.path.parent.name)
def test_a_snapshot_rebuilds_the_loaded_config_of_every_example(loaded: Any) -> None:
    pinned = PinnedConfig(loaded, "train", "2026-01-01T00:00:00+00:00")
    restored = restore_snapshot(_through_xcom(take_snapshot(pinned)), source="a test", fix=FIX)
    assert restored == pinned
    assert restored.loaded == loaded and restored.loaded.layers == loaded.layers and restored.loaded.layers


def test_a_restored_config_reads_no_file_and_resolves_paths_from_the_config_folder(tmp_path: Path) -> None:
    config = _model(tmp_path)
    loaded = load_config(config, root=config.parent.parent)
    snapshot = _through_xcom(take_snapshot(PinnedConfig(loaded, "train", "2026-01-01T00:00:00+00:00")))
    for file in (config, *loaded.layers):
        file.unlink()  # unpublished mid-run: the snapshot alone must do

    restored = restore_snapshot(snapshot, source="a test", fix=FIX).loaded
    assert restored == loaded
    assert restored.resolve("data/train") == str(config.parent / "data" / "train")
    assert runtime.inside_model_folder(restored, "data/train", "training.channels.train") == str(config.parent / "data" / "train")
    assert runtime.mlops_home(restored) == config.parent / "registry"
    assert restored.resolve("s3://bucket/data") == "s3://bucket/data"


def test_the_digest_is_the_content_of_the_config_and_its_layers(tmp_path: Path) -> None:
    config = _model(tmp_path)
    root = config.parent.parent
    first = load_config(config, root=root)
    assert re.fullmatch(r"[0-9a-f]{64}", first.digest)
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", short_digest(first.digest))
    assert short_digest(first.digest) == short_digest(f"sha256:{first.digest}") == f"sha256:{first.digest[:12]}"

    # The same bytes give the same digest, whenever and however often they are read or written.
    os.utime(config, (0, 0))
    config.write_bytes(config.read_bytes())
    assert load_config(config, root=root).digest == first.digest
    assert runtime.config_at(str(config), str(root)).digest == first.digest
    pinned = PinnedConfig(first, "train", "2026-01-01T00:00:00+00:00")
    assert restore_snapshot(_through_xcom(take_snapshot(pinned)), source="a test", fix=FIX).loaded.digest == first.digest

    # A change anywhere, even in a defaults layer or a comment, is a new digest.
    defaults = root / "mlops-defaults.yaml"
    defaults.write_text(defaults.read_text() + "# reviewed\n")
    layered = load_config(config, root=root).digest
    assert layered != first.digest
    config.write_text(config.read_text() + "# reviewed\n")
    assert load_config(config, root=root).digest not in (first.digest, layered)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda s: s["config"]["evaluation"]["gate"]["f1"].update(min=0.999), "was changed after it was taken"),
    (lambda s: s.update(format=SNAPSHOT_FORMAT + 1), f"has format {SNAPSHOT_FORMAT + 1}; this provider reads format 1"),
    (lambda s: s.pop("config"), "is not one; it must have the keys"),
])
def test_a_damaged_snapshot_is_an_error_never_another_config(damage: Any, message: str) -> None:
    loaded = next(e for e in EXAMPLES if e.path.parent.name == "breast-cancer")
    snapshot = _through_xcom(take_snapshot(PinnedConfig(loaded, "train", "2026-01-01T00:00:00+00:00")))
    damage(snapshot)
    with pytest.raises(ConfigError) as failed:
        restore_snapshot(snapshot, source="XCom 'mlops_config' of task train", fix=FIX)
    assert message in str(failed.value) and "XCom 'mlops_config' of task train" in str(failed.value)
    assert str(failed.value).endswith(f"Fix: {FIX}") and not failed.value.retryable


def test_something_else_than_a_snapshot_is_an_error() -> None:
    with pytest.raises(ConfigError, match="is not one; it must have the keys .* \\(got 'list'\\)"):
        restore_snapshot([], source="XCom", fix=FIX)


# -- how a task of a run finds the run's config ------------------------------------------------


class RunTaskInstance(FakeTaskInstance):
    """A task instance of one DAG run: XComs shared by the run's tasks, and their states."""

    def __init__(self, dag_id: str, task_id: str, xcoms: dict[tuple[str, str], Any], states: dict[str, str]) -> None:
        super().__init__(dag_id, task_id)
        self.xcoms = xcoms
        self.states = states
        self.map_index = -1
        self.asked_states: list[list[str]] = []

    def get_task_states(self, dag_id: str, task_ids: list[str], run_ids: list[str], **_: Any) -> dict[str, Any]:
        self.asked_states.append(task_ids)
        return {run_ids[0]: {t: self.states[t] for t in task_ids if t in self.states}}


def _train_dag(config: Path) -> Any:
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    spec = next(s for s in plan_model(load_config(config, root=config.parent.parent), str(config.parent.parent))
                if s.kind == "train")
    return render_dag(spec)


def _pin(dag: Any, task_id: str, xcoms: dict[tuple[str, str], Any], states: dict[str, str] | None = None) -> Any:
    ti = RunTaskInstance(dag.dag_id, task_id, xcoms, states or {})
    return dag.get_task(task_id).pin_config(context(ti)), ti


def _raise_the_gate(config: Path) -> None:
    data = yaml.safe_load(config.read_text())
    data["evaluation"]["gate"]["f1"]["min"] = 0.999
    config.write_text(yaml.safe_dump(data))


def test_the_first_task_reads_the_file_and_the_later_ones_its_snapshot(tmp_path: Path) -> None:
    config = _model(tmp_path)
    dag = _train_dag(config)
    xcoms: dict[tuple[str, str], Any] = {}
    first, _ = _pin(dag, "train", xcoms)
    snapshot = xcoms[("train", CONFIG_SNAPSHOT_KEY)]
    assert snapshot["pinned_by"] == "train" and snapshot["digest"] == first.digest

    _raise_the_gate(config)  # published mid-run
    gate, ti = _pin(dag, "gate", xcoms, {"train": "success", "evaluate": "success"})
    assert gate == first and gate.config.evaluation.gate["f1"].min == 0.9
    assert [k for k in xcoms if k[1] == CONFIG_SNAPSHOT_KEY] == [("train", CONFIG_SNAPSHOT_KEY)]
    assert ti.asked_states == [], "a snapshot found: no need to ask which tasks ran"
    # The first task resuming after its deferral (its XCom is kept) finds its own snapshot.
    config.unlink()
    resumed, _ = _pin(dag, "train", xcoms)
    assert resumed == first


def test_a_task_whose_upstream_ran_without_a_snapshot_fails_instead_of_reading_the_file(tmp_path: Path) -> None:
    config = _model(tmp_path)
    dag = _train_dag(config)
    with pytest.raises(ConfigError) as failed:
        _pin(dag, "register", {}, {"train": "success", "evaluate": "success", "gate": "failed"})
    message = str(failed.value)
    assert message.startswith(f"{config}: task register of run {FakeTaskInstance(dag.dag_id, 'x').run_id} of "
                              f"{dag.dag_id} found no snapshot")
    assert "upstream task(s) train, evaluate, gate already ran with it" in message
    assert message.endswith("Fix: clear the run manual__2026-01-01T00:00:00+00:00 of mlops__demo__breast-cancer__train "
                            "from its first task (train) with its downstream tasks, so that the whole run starts again "
                            "on one config")


def test_a_task_whose_upstream_never_ran_is_the_first_to_need_the_config(tmp_path: Path) -> None:
    config = _model(tmp_path)
    dag = _train_dag(config)
    xcoms: dict[tuple[str, str], Any] = {}
    loaded, ti = _pin(dag, "evaluate", xcoms, {"train": "skipped"})
    assert ti.asked_states == [["train"]]
    assert xcoms[("evaluate", CONFIG_SNAPSHOT_KEY)]["digest"] == loaded.digest


def test_an_operator_outside_a_dag_reads_the_file(tmp_path: Path) -> None:
    from airflow_provider_mlops.operators import MlopsGateOperator

    config = _model(tmp_path)
    operator = MlopsGateOperator(task_id="gate", config_path=str(config), config_root=str(config.parent.parent))
    xcoms: dict[tuple[str, str], Any] = {}
    loaded = operator.pin_config(context(RunTaskInstance("some_dag", "gate", xcoms, {})))
    assert loaded == load_config(config, root=config.parent.parent) and xcoms == {}


def test_a_task_s_notifiers_use_its_pinned_config(tmp_path: Path) -> None:
    from airflow_provider_mlops.notifications.callbacks import MlopsFailureNotifier

    config = _model(tmp_path)
    dag = _train_dag(config)
    xcoms: dict[tuple[str, str], Any] = {}
    first, _ = _pin(dag, "train", xcoms)
    _pin(dag, "gate", xcoms, {"train": "success", "evaluate": "success"})
    _raise_the_gate(config)  # published after the task pinned its config
    notifier = MlopsFailureNotifier(config_path=str(config), config_root=str(config.parent.parent))
    assert notifier._loaded({"task": dag.get_task("gate")}) == first  # type: ignore[arg-type]
    # A task that never pinned (it failed before) falls back to the file as it is now.
    assert notifier._loaded({"task": dag.get_task("register")}).config.evaluation.gate["f1"].min == 0.999  # type: ignore[arg-type]
