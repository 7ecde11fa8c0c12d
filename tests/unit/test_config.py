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
