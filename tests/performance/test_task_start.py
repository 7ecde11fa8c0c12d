"""
A task start builds only its own DAG (Airflow's parsing context names it), from its own config
alone, and that DAG is exactly the one the full parse builds. When the config cannot be found
that way, the loader falls back to the full parse, and still builds only that DAG.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from configs import write_mlops_configs  # noqa: E402
from test_parse_cache import serialized  # noqa: E402

from airflow_provider_mlops.config import loader as config_loader  # noqa: E402
from airflow_provider_mlops.exceptions import ConfigError  # noqa: E402
from airflow_provider_mlops.factory import load_dags, loader, report_config_errors  # noqa: E402
from airflow_provider_mlops.factory.cache import CACHE_DIR_ENV  # noqa: E402
from airflow_provider_mlops.factory.shards import shard_of, write_shard_files  # noqa: E402

MODELS = 12
#: proj-0000/model-00003 and proj-0001/model-00011: one per project, every DAG kind between them.
WANTED = [f"mlops__proj-0000__model-00003__{kind}" for kind in ("train", "deploy", "retrain")] + [
    "mlops__proj-0001__model-00011__deploy"
]
CONTEXT_ENV = "_AIRFLOW_PARSING_CONTEXT_DAG_ID"  # what the Task SDK sets around a task's parse


@contextmanager
def task_parsing_context(dag_id: str, task_id: str) -> Iterator[None]:
    """Airflow's own context manager, as the task runner uses it; it leaves the variables set, so unset them."""
    from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager

    try:
        with _airflow_parsing_context_manager(dag_id=dag_id, task_id=task_id):
            yield
    finally:
        os.environ.pop(CONTEXT_ENV, None)
        os.environ.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    write_mlops_configs(root, MODELS)
    return root


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "parse-cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder


def forbid_full_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, fail the test if the loader plans every config (the task path must not)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the task path parsed every config")

    monkeypatch.setattr(loader, "plan_all", refuse)


def build(
    configs: Path, dag_id: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None, **kwargs: Any
) -> tuple[dict[str, Any], Any]:
    """Run the loader; with ``dag_id``, as a task start (the parsing context set, as the Task SDK does)."""
    namespace: dict[str, Any] = {"__file__": str(configs.parent / "mlops_dags.py")}
    if dag_id is None:
        return namespace, load_dags(namespace, config_path=str(configs), **kwargs)
    assert monkeypatch is not None
    with monkeypatch.context() as patch:
        patch.setenv(CONTEXT_ENV, dag_id)
        report = load_dags(namespace, config_path=str(configs), **kwargs)
    return namespace, report


def full_parse(configs: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    """The dag-processor's parse (no parsing context): every DAG, serialized; it writes the model index."""
    monkeypatch.delenv(CONTEXT_ENV, raising=False)
    namespace, report = build(configs, **kwargs)
    assert not report.errors and report.for_dag_id is None
    return serialized(namespace)


def test_task_start_builds_one_identical_dag(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = full_parse(configs, monkeypatch)
    assert len(everything) == 3 * MODELS
    assert list(cache_dir.glob("index-*.json")), "a full parse writes the model index"
    forbid_full_parse(monkeypatch)
    for dag_id in WANTED:
        namespace, report = build(configs, dag_id, monkeypatch)
        assert report.for_dag_id == dag_id and report.dag_ids == [dag_id] and not report.errors
        assert serialized(namespace) == {dag_id: everything[dag_id]}


def test_task_start_reads_only_its_config_and_defaults(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_parse(configs, monkeypatch)
    # An unrelated config goes bad after the full parse: the task start must not even read it.
    broken = configs / "proj-0000" / "model-00004" / "mlops.yaml"
    broken.write_text("project: [unclosed\n")
    read: list[Path] = []
    real_read = config_loader._read
    monkeypatch.setattr(config_loader, "_read", lambda path: read.append(Path(path)) or real_read(path))
    namespace, report = build(configs, WANTED[0], monkeypatch)
    assert report.dag_ids == [WANTED[0]] and not report.errors
    root = configs.resolve()
    assert sorted(read) == sorted(
        [
            root / "mlops-defaults.yaml",
            root / "proj-0000" / "mlops-defaults.yaml",
            root / "proj-0000" / "model-00003" / "mlops.yaml",
        ]
    )


def test_found_by_layout_without_an_index(configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, "off")  # no parse cache, so no model index: the layout finds it
    expected = full_parse(configs, monkeypatch)
    forbid_full_parse(monkeypatch)
    namespace, report = build(configs, WANTED[1], monkeypatch)
    assert report.dag_ids == [WANTED[1]] and not report.errors
    assert serialized(namespace) == {WANTED[1]: expected[WANTED[1]]}


def test_missing_index_and_layout_falls_back(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    full_parse(configs, monkeypatch)
    # The config moves out of the <root>/<project>/<model> layout: the index is stale, the layout empty.
    moved = configs / "proj-0000" / "team-a" / "churn"
    moved.parent.mkdir()
    shutil.move(configs / "proj-0000" / "model-00003", moved)
    expected = full_parse(configs, monkeypatch)
    for index in cache_dir.glob("index-*.json"):
        index.unlink()  # and no index either (a worker that cannot see the dag-processor's cache)

    with caplog.at_level(logging.WARNING, logger="airflow_provider_mlops.factory.task_start"):
        namespace, report = build(configs, WANTED[0], monkeypatch)
    assert report.dag_ids == [WANTED[0]] and not report.errors
    assert serialized(namespace) == {WANTED[0]: expected[WANTED[0]]}
    assert "parses every config" in caplog.text and "no model index" in caplog.text

    # The fallback wrote the index: the next task start of the moved model needs no full parse.
    forbid_full_parse(monkeypatch)
    namespace, report = build(configs, WANTED[2], monkeypatch)
    assert serialized(namespace) == {WANTED[2]: expected[WANTED[2]]}


def test_stale_index_is_verified_not_trusted(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = full_parse(configs, monkeypatch)
    # The index now points proj-0000/model-00003 at another model's config (a config replaced in place).
    (index,) = cache_dir.glob("index-*.json")
    data = json.loads(index.read_text())
    data["models"]["proj-0000/model-00003"] = data["models"]["proj-0000/model-00005"]
    index.write_text(json.dumps(data))
    namespace, report = build(configs, WANTED[0], monkeypatch)
    assert serialized(namespace) == {WANTED[0]: everything[WANTED[0]]}, "the layout finds the real one"

    # The index and the layout both name a config that no longer defines that model: full parse, no DAG.
    config = configs / "proj-0000" / "model-00003" / "mlops.yaml"
    config.write_text(config.read_text().replace("model: model-00003", "model: renamed"))
    namespace, report = build(configs, WANTED[0], monkeypatch)
    assert namespace.keys() == {"__file__"} and report.dag_ids == [] and not report.errors


@pytest.mark.parametrize(
    "dag_id",
    ["some_other_dag", "mlops__proj-0000__no-such-model__train", "mlops__proj-0000__model-00003__nope"],
)
def test_unknown_dag_id_builds_nothing(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, dag_id: str
) -> None:
    full_parse(configs, monkeypatch)
    namespace, report = build(configs, dag_id, monkeypatch)
    assert namespace.keys() == {"__file__"} and report.dag_ids == [] and not report.errors


def test_invalid_config_of_the_task(configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full_parse(configs, monkeypatch)
    config = configs / "proj-0000" / "model-00003" / "mlops.yaml"
    config.write_text(config.read_text().replace("approval: auto", "approval: sometimes"))
    namespace, report = build(configs, WANTED[0], monkeypatch)
    assert report.dag_ids == [] and [e.field for e in report.errors] == ["deployment.approval"]


@pytest.mark.parametrize("with_index", [True, False])
def test_sharded_files_build_only_their_own_models(
    configs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_index: bool
) -> None:
    count = 3
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "parse-cache") if with_index else "off")
    everything: dict[str, Any] = {}
    for index in range(count):
        everything.update(full_parse(configs, monkeypatch, shard=(index, count)))
    assert len(everything) == 3 * MODELS
    root = configs.resolve()
    forbid_full_parse(monkeypatch)
    for dag_id in WANTED:
        project, model = dag_id.split("__")[1:3]
        own = shard_of(root / project / model / "mlops.yaml", root, count)
        for index in range(count):
            namespace, report = build(configs, dag_id, monkeypatch, shard=(index, count))
            assert not report.errors
            if index == own:
                assert serialized(namespace) == {dag_id: everything[dag_id]}
            else:
                assert report.dag_ids == [], f"shard {index} built {dag_id} of shard {own}"


def test_config_errors_file_does_nothing_at_task_start(
    configs: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = configs / "proj-0000" / "model-00002" / "mlops.yaml"
    bad.write_text(bad.read_text().replace("approval: manual", "approval: sometimes"))
    namespace = {"__file__": str(configs / "mlops_config_errors.py")}
    with pytest.raises(ConfigError, match="deployment.approval"):
        report_config_errors(namespace, config_path=str(configs))
    forbid_full_parse(monkeypatch)
    monkeypatch.setenv(CONTEXT_ENV, WANTED[0])
    report_config_errors(namespace, config_path=str(configs))


def test_airflow_task_parse_builds_one_dag(
    configs: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Airflow itself: the dag bag the task runner builds, inside the Task SDK's parsing context."""
    from airflow.dag_processing.dagbag import BundleDagBag, DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "mlops_dags.py", dags / "mlops_dags.py")
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    everything = DagBag(str(dags / "mlops_dags.py"))  # the dag-processor's parse writes the model index
    assert len(everything.dags) == 3 * MODELS and not everything.import_errors
    with task_parsing_context(WANTED[3], "deploy"):  # as airflow.sdk.execution_time.task_runner.parse does
        bag = BundleDagBag(
            dag_folder=str(dags / "mlops_dags.py"),
            safe_mode=False,
            load_op_links=False,
            bundle_path=dags,
            bundle_name="dags-folder",
        )
    assert list(bag.dags) == [WANTED[3]] and not bag.import_errors
    assert "deploy" in bag.dags[WANTED[3]].task_dict


def test_shard_files_written_by_the_cli_work_at_task_start(
    configs: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    assert len(write_shard_files(dags, 4)) == 4
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    assert len(DagBag(str(dags)).dags) == 3 * MODELS
    with task_parsing_context(WANTED[1], "deploy"):
        bag = DagBag(str(dags))  # every shard file, as `airflow dags test` parses the folder
    assert list(bag.dags) == [WANTED[1]] and not bag.import_errors
