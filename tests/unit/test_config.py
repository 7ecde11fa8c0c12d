"""mlops.yaml: the schema, layered defaults, and errors that name the file, line and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from airflow_provider_mlops.config.loader import DEFAULTS_FILENAME, load_all, load_config
from airflow_provider_mlops.config.schema import json_schema_text
from airflow_provider_mlops.exceptions import ConfigError, ConfigErrors

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "fixtures" / "bad_configs"
CASES = sorted(p.name for p in BAD.iterdir() if (p / "mlops.yaml").exists())


def _expectation(folder: Path) -> tuple[Path, str, int | None]:
    """(file that holds the bad value, expected field, expected line) from the case's markers."""
    for name in (DEFAULTS_FILENAME, "mlops.yaml"):
        path = folder / name
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        field = lines[0].removeprefix("# expect-field:").strip()
        marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("# <-")]
        if marked or name == "mlops.yaml":
            return path, field, marked[0] if marked else None
    raise AssertionError(folder)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES)
def test_bad_config_error_names_file_line_and_field(case: str) -> None:
    folder = BAD / case
    holder, field, line = _expectation(folder)
    with pytest.raises(ConfigError) as info:
        load_config(folder / "mlops.yaml", root=folder)
    errors = info.value.errors if isinstance(info.value, ConfigErrors) else [info.value]
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert error.path == str(holder), str(error)
    assert (error.field or "") == field, str(error)
    if line is not None:
        assert error.line == line, str(error)
    text = str(error)
    assert str(holder) in text and (not field or field in text)
    assert "Fix:" in text, text


def test_example_configs_are_valid() -> None:
    loaded, errors = load_all([REPO / "examples"])
    assert errors == []
    names = {(c.config.project, c.config.model) for c in loaded}
    assert ("demo", "breast-cancer") in names and ("demo", "diabetes") in names


def test_layered_defaults_nearest_wins(tmp_path: Path) -> None:
    (tmp_path / DEFAULTS_FILENAME).write_text("owner: org\ntags: [org]\nevaluation:\n  gate:\n    f1: {min: 0.5}\n")
    team = tmp_path / "team"
    model = team / "model-a"
    model.mkdir(parents=True)
    (team / DEFAULTS_FILENAME).write_text("owner: team\nevaluation:\n  gate:\n    recall: {min: 0.6}\n")
    (model / "mlops.yaml").write_text("project: p\nmodel: model-a\nversion: '2.1'\ntags: [mine]\n")
    loaded = load_config(model / "mlops.yaml", root=tmp_path)
    cfg = loaded.config
    assert cfg.owner == "team"  # nearest defaults file wins over the org's
    assert cfg.tags == ["mine"]  # the model's own file wins, lists replace
    assert set(cfg.evaluation.gate) == {"f1", "recall"}  # mappings merge key by key
    assert loaded.layers == (tmp_path / DEFAULTS_FILENAME, team / DEFAULTS_FILENAME)


def test_version_is_kept_as_written(tmp_path: Path) -> None:
    (tmp_path / "mlops.yaml").write_text("project: p\nmodel: m\nversion: 1.10\n")
    assert load_config(tmp_path / "mlops.yaml", root=tmp_path).config.version == "1.10"


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "mlops.yaml").write_text("project: P\nmodel: m\nversion: x\nbogus: 1\n")
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path / "mlops.yaml", root=tmp_path)
    assert {e.field for e in info.value.errors} == {"project", "version", "bogus"}
    assert {e.line for e in info.value.errors} == {1, 3, 4}


def test_mixed_folder_loads_every_good_model(tmp_path: Path) -> None:
    for case in ("missing-model", "yaml-syntax", "bad-backend"):
        shutil.copytree(BAD / case, tmp_path / case)
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("data"))
    loaded, errors = load_all([tmp_path])
    examples, _ = load_all([REPO / "examples"])
    assert {(c.config.project, c.config.model) for c in loaded} == {(c.config.project, c.config.model) for c in examples}
    assert len(examples) >= 2
    assert sorted(Path(e.path).parent.name for e in errors) == ["bad-backend", "missing-model", "yaml-syntax"]


def test_duplicate_project_model_is_an_error(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mlops.yaml").write_text("project: p\nmodel: same\nversion: '1.0'\n")
    loaded, errors = load_all([tmp_path])
    assert len(loaded) == 1 and len(errors) == 1
    assert "already defined" in str(errors[0]) and errors[0].field == "model" and errors[0].line == 2


def test_committed_json_schema_is_current() -> None:
    committed = REPO / "airflow_provider_mlops" / "schema" / "mlops.schema.json"
    assert committed.read_text() == json_schema_text(), "run: make schema"
    schema = json.loads(committed.read_text())
    assert schema["additionalProperties"] is False
    assert {"project", "model", "version"} <= set(schema["required"])


def test_config_package_imports_no_airflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_mlops.config, airflow_provider_mlops.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('airflow','boto3','kubernetes','sklearn')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the files a config names (config/references.py) -----------------------------------------

EXAMPLE = REPO / "examples" / "breast-cancer"


def _example_copy(tmp_path: Path, name: str = "breast-cancer") -> Path:
    target = tmp_path / name
    shutil.copytree(REPO / "examples" / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))


def test_references_of_the_local_example_name_what_each_step_reads() -> None:
    from airflow_provider_mlops.config.references import config_references

    refs = {r.field: r for r in config_references(load_config(EXAMPLE / "mlops.yaml").config)}
    assert {f: (r.location, r.kind, r.reader) for f, r in refs.items()} == {
        "training.source_dir": (".", "folder", "local"),
        "training.entrypoint": ("train.py", "file", "local"),
        "evaluation.entrypoint": ("evaluate.py", "file", "local"),
        "deployment.inference_entrypoint": ("inference.py", "file", "local"),
        "training.channels.train": ("data/train", "data", "local"),
        "evaluation.data": ("data/test", "data", "local"),  # unset: the held-out channel's default
        "deployment.smoke_test.payload_file": ("smoke_payload.json", "file", "airflow"),
    }
    assert refs["evaluation.data"].value is None


def test_a_wrong_entrypoint_channel_or_payload_is_an_error_that_names_file_line_and_fix(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import reference_errors

    config = _example_copy(tmp_path) / "mlops.yaml"
    _edit(config, "entrypoint: train.py", "entrypoint: trian.py")
    _edit(config, "train: data/train", "train: data/trian")
    _edit(config, "payload_file: smoke_payload.json", "payload_file: smoke.json")
    errors = reference_errors(load_config(config))
    assert [(e.field, e.value, e.path) for e in errors] == [
        ("training.entrypoint", "trian.py", str(config)),
        ("training.channels.train", "data/trian", str(config)),
        ("deployment.smoke_test.payload_file", "smoke.json", str(config)),
    ]
    lines = config.read_text().splitlines()
    for error in errors:
        assert error.line is not None and str(error.value) in lines[error.line - 1], str(error)
        assert "does not exist" in str(error) and "Fix:" in str(error)
    assert "did you mean 'train.py'?" in str(errors[0])
    assert "did you mean 'data/train'?" in str(errors[1])
    assert "did you mean 'smoke_payload.json'?" in str(errors[2])


def test_a_path_set_in_a_defaults_file_is_reported_there(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import reference_errors

    folder = _example_copy(tmp_path)
    (tmp_path / DEFAULTS_FILENAME).write_text("deployment:\n  smoke_test:\n    payload_file: org_payload.json\n")
    _edit(folder / "mlops.yaml", "  smoke_test:\n    payload_file: smoke_payload.json\n", "")
    [error] = reference_errors(load_config(folder / "mlops.yaml", root=tmp_path))
    assert (error.path, error.line, error.field) == (str(tmp_path / DEFAULTS_FILENAME), 3, "deployment.smoke_test.payload_file")


def test_entrypoints_in_the_image_of_a_remote_backend_are_not_looked_for(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import reference_errors

    # Alone in a folder: ../breast-cancer (its source_dir) is not there, and SageMaker does not care.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(REPO / "examples" / "breast-cancer-sagemaker" / "mlops.yaml", alone / "mlops.yaml")
    [error] = reference_errors(load_config(alone / "mlops.yaml", root=alone))
    assert error.field == "deployment.smoke_test.payload_file"  # the deploy task reads it on the worker
    # Kubernetes training, but a local endpoint: inference.py is read from source_dir on the worker.
    shutil.copy(REPO / "examples" / "breast-cancer-gpu" / "mlops.yaml", alone / "mlops.yaml")
    errors = reference_errors(load_config(alone / "mlops.yaml", root=alone))
    assert [e.field for e in errors] == ["deployment.inference_entrypoint", "deployment.smoke_test.payload_file"]


def test_a_command_entrypoint_is_not_a_file() -> None:
    from airflow_provider_mlops.config.models import MlopsConfig
    from airflow_provider_mlops.config.references import config_references

    config = MlopsConfig.model_validate(
        {"project": "p", "model": "m", "version": "1.0", "training": {"entrypoint": "python -m trainer --fast"},
         "evaluation": {"entrypoint": "score.py --full"}}
    )
    fields = {r.field: r.location for r in config_references(config)}
    assert "training.entrypoint" not in fields and fields["evaluation.entrypoint"] == "score.py"


def test_the_local_backend_cannot_read_a_uri(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import reference_errors

    config = _example_copy(tmp_path) / "mlops.yaml"
    _edit(config, "train: data/train", "train: s3://bucket/train")
    [error] = reference_errors(load_config(config))
    assert error.field == "training.channels.train" and "is a URI" in str(error)


def test_paths_that_leave_the_config_folder_are_refused_and_publish_finds_links_out(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import reference_errors

    folder = _example_copy(tmp_path)
    (tmp_path / "shared.json").write_text("{}")
    (folder / "outside.json").symlink_to(tmp_path / "shared.json")
    config = folder / "mlops.yaml"
    # What the worker reads must be the model's own: refused when the config loads, publish or not.
    for old, new, field, problem in (
        ("payload_file: smoke_payload.json", "payload_file: ../shared.json", "deployment.smoke_test.payload_file",
         "'../shared.json' is outside the model's folder"),
        ("train: data/train", f"train: {folder / 'data' / 'train'}", "training.channels.train", "is an absolute path"),
    ):
        _edit(config, old, new)
        with pytest.raises(ConfigError) as refused:
            load_config(config)
        assert refused.value.field == field and problem in str(refused.value)
        _edit(config, new, old)
    # A link out of the folder reads fine as written; publishing finds it.
    _edit(config, "payload_file: smoke_payload.json", "payload_file: outside.json")
    loaded = load_config(config)
    assert reference_errors(loaded) == []
    [error] = reference_errors(loaded, publish=True)
    assert "is a link to" in str(error) and error.field == "deployment.smoke_test.payload_file"


def test_files_to_publish_are_the_code_data_and_payload_without_clutter(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import files_to_publish

    folder = _example_copy(tmp_path)
    for clutter in (".git/config", "__pycache__/train.cpython-311.pyc", "stale.pyc", ".env", ".venv/lib/x.py",
                    "nested/mlops.yaml", "mlops-defaults.yaml"):
        (folder / clutter).parent.mkdir(parents=True, exist_ok=True)
        (folder / clutter).write_text("owner: team\n")
    (tmp_path / DEFAULTS_FILENAME).write_text("owner: org\n")
    published = [f.relative for f in files_to_publish(load_config(folder / "mlops.yaml", root=tmp_path))]
    assert published == sorted(p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*")
                               if p.is_file() and p.name != "mlops.yaml" and "__pycache__" not in p.parts)
    assert {"train.py", "data/train/train.csv", "data/test/test.csv", "smoke_payload.json"} <= set(published)


def test_a_remote_backend_publishes_only_the_payload(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import files_to_publish

    folder = tmp_path / "sm"
    folder.mkdir()
    shutil.copy(REPO / "examples" / "breast-cancer-sagemaker" / "mlops.yaml", folder / "mlops.yaml")
    (folder / "smoke_payload.json").write_text("{}")
    (folder / "train.py").write_text("# in the image, not published\n")
    assert [f.relative for f in files_to_publish(load_config(folder / "mlops.yaml", root=folder))] == ["smoke_payload.json"]


def test_files_to_publish_are_bounded(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import files_to_publish

    folder = _example_copy(tmp_path)
    (folder / "data" / "train" / "big.csv").write_bytes(b"0" * 300_000)
    with pytest.raises(ConfigError) as info:
        files_to_publish(load_config(folder / "mlops.yaml", root=folder), limit_bytes=200_000)
    assert "over the 0.2 MB limit" in str(info.value) and "data/train/big.csv" in str(info.value)
    assert "Fix:" in str(info.value)


# --- keys that would validate and then do nothing are refused (issue 13) ---------------------


def _line_of(path: Path, text: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().splitlines()) if text in line)


@pytest.mark.parametrize(("example", "channels", "location"), [
    ("breast-cancer-gpu", None, "pvc://mlops-data/breast-cancer/train"),  # as the Kubernetes example has it
    ("diabetes", "{train: data/train}", "gs://bucket/diabetes/train"),
])
def test_retrain_on_new_data_is_refused_for_a_channel_it_cannot_read(tmp_path: Path, example: str, channels: str | None,
                                                                     location: str) -> None:
    config = _example_copy(tmp_path, example) / "mlops.yaml"
    if channels:
        _edit(config, channels, f"{{train: {location}}}")
    config.write_text(config.read_text().rstrip("\n") + "\n  retrain_on_new_data: true\n")  # schedule: is last
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    error = refused.value
    assert (error.path, error.field) == (str(config), "schedule.retrain_on_new_data")
    assert error.line == _line_of(config, "retrain_on_new_data: true")
    text = str(error)
    assert f"training.channels.train is '{location}'" in text  # the value it cannot read
    assert "only read when local paths and s3:// prefixes last changed" in text  # what is allowed
    assert "Set retrain_on_new_data: false" in text and "move the channel to s3:// or a local path" in text


def test_retrain_on_new_data_set_false_or_unset_accepts_any_channel(tmp_path: Path) -> None:
    from airflow_provider_mlops.config.references import checks_data_freshness

    config = _example_copy(tmp_path, "breast-cancer-gpu") / "mlops.yaml"
    unset = load_config(config).config  # the example: pvc:// channels, retrain_on_new_data unset
    assert unset.schedule.retrain_on_new_data is None and not checks_data_freshness(unset)
    _edit(config, "  max_model_age_days: 30\n", "  max_model_age_days: 30\n  retrain_on_new_data: false\n")
    assert not checks_data_freshness(load_config(config).config)
    for example in ("breast-cancer", "diabetes"):  # local paths: checked, whether true or unset
        assert checks_data_freshness(load_config(REPO / "examples" / example / "mlops.yaml").config)
    sm = load_config(REPO / "examples" / "breast-cancer-sagemaker" / "mlops.yaml").config
    assert not checks_data_freshness(sm)  # s3:// is readable; the example says false
    assert checks_data_freshness(sm.model_copy(update={"schedule": sm.schedule.model_copy(update={"retrain_on_new_data": None})}))


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        ("strategy: all_at_once", "strategy: canary", "deployment.strategy", "'canary' is a SageMaker blue/green traffic shift"),
        ("strategy: all_at_once", "strategy: linear", "deployment.strategy", "'linear' is a SageMaker blue/green traffic shift"),
        ("strategy: all_at_once", "strategy: all_at_once\n  auto_rollback_alarms: [bc-5xx]", "deployment.auto_rollback_alarms",
         "['bc-5xx'] are CloudWatch alarms that SageMaker watches"),
    ],
)
def test_local_serving_refuses_sagemaker_deployment_guardrails(tmp_path: Path, old: str, new: str, field: str, problem: str) -> None:
    config = _example_copy(tmp_path) / "mlops.yaml"
    _edit(config, old, new)
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    error = refused.value
    assert (error.path, error.field) == (str(config), field)
    assert error.line == _line_of(config, new.splitlines()[-1].strip())
    assert problem in str(error) and "local serving has" in str(error)
    assert "serve on SageMaker (deployment.backend: sagemaker" in str(error)


def test_rollback_alarms_from_a_defaults_file_are_reported_there_with_the_override(tmp_path: Path) -> None:
    """Terraform publishes alarms per model as defaults: a locally served model is told how to opt out."""
    folder = _example_copy(tmp_path)
    defaults = tmp_path / DEFAULTS_FILENAME
    defaults.write_text("deployment:\n  auto_rollback_alarms: [mlops-dev-demo-breast-cancer-5xx]\n")
    with pytest.raises(ConfigError) as refused:
        load_config(folder / "mlops.yaml", root=tmp_path)
    assert (refused.value.path, refused.value.line) == (str(defaults), 2)
    assert "set auto_rollback_alarms: [] in this model's mlops.yaml" in str(refused.value)
    _edit(folder / "mlops.yaml", "strategy: all_at_once", "strategy: all_at_once\n  auto_rollback_alarms: []")
    assert load_config(folder / "mlops.yaml", root=tmp_path).config.deployment.auto_rollback_alarms == []


def test_the_sagemaker_example_keeps_its_canary_and_alarms() -> None:
    deployment = load_config(REPO / "examples" / "breast-cancer-sagemaker" / "mlops.yaml").config.deployment
    assert deployment.strategy == "canary" and deployment.auto_rollback_alarms == ["demo-breast-cancer-sm-5xx"]


def test_an_mlflow_registry_is_not_offered(tmp_path: Path) -> None:
    from airflow_provider_mlops.exceptions import BackendNotAvailableError
    from airflow_provider_mlops.registry import get_registry

    config = _example_copy(tmp_path, "diabetes") / "mlops.yaml"
    config.write_text(config.read_text() + "registry:\n  backend: mlflow\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    error = refused.value
    assert (error.field, error.value, error.line) == ("registry.backend", "mlflow", _line_of(config, "backend: mlflow"))
    assert "'local' or 'sagemaker'" in str(error)
    schema = json.loads((REPO / "airflow_provider_mlops" / "schema" / "mlops.schema.json").read_text())
    assert "mlflow" not in json.dumps(schema["$defs"]["Registry"])
    with pytest.raises(BackendNotAvailableError, match=r"unknown registry 'mlflow'; known: \['local', 'sagemaker'\]"):
        get_registry("mlflow")
