"""
Registry integrity: an emptied, missing or corrupt registry.db, or a home that cannot be written,
is one clear error naming the file and the fix; never a silent new registry that numbers
versions from x.y.0 again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_mlops.exceptions import RegistryError, RegistryStorageError
from airflow_provider_mlops.registry.base import PENDING
from airflow_provider_mlops.registry.local import LocalModelRegistry

REPO = Path(__file__).resolve().parents[2]


def _register(registry: LocalModelRegistry, key: str) -> str:
    version = registry.register("demo--m", "1.0", idempotency_key=key, artifact_uri="file:///m", metrics={},
                                gate={"passed": True}, lineage={}, status=PENDING)
    return version.semver


def test_an_emptied_database_is_refused_not_renumbered(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    assert _register(registry, "a") == "1.0.0"
    (tmp_path / "registry.db").write_bytes(b"")  # truncated, as a full disk or a bad copy leaves it
    for name in ("registry.db-wal", "registry.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(RegistryError, match=r"empty \(0 bytes\).*renumber"):
        LocalModelRegistry(tmp_path)


def test_a_deleted_database_is_refused_until_the_marker_is_removed_on_purpose(tmp_path: Path) -> None:
    LocalModelRegistry(tmp_path)
    for name in ("registry.db", "registry.db-wal", "registry.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(RegistryError, match="missing"):
        LocalModelRegistry(tmp_path)
    (tmp_path / "registry.json").unlink()
    assert _register(LocalModelRegistry(tmp_path), "b") == "1.0.0"


def test_a_corrupt_database_names_the_file_and_the_fix(tmp_path: Path) -> None:
    LocalModelRegistry(tmp_path)
    for name in ("registry.db-wal", "registry.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "registry.db").write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises(RegistryError, match=r"registry\.db.*(not a database|damaged).*backup"):
        LocalModelRegistry(tmp_path)


def test_a_home_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    # Under a regular file no folder can be made, as root too (chmod alone does not stop root).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(RegistryStorageError, match=r"cannot create the registry home .*MLOPS_HOME") as caught:
        LocalModelRegistry(blocker / "home")
    assert caught.value.path == str(blocker / "home") and not caught.value.retryable


def test_mlops_versions_on_a_corrupt_registry_is_one_line_and_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    LocalModelRegistry(home)
    (home / "registry.db").write_bytes(b"garbage" * 1000)
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_mlops.cli", "versions", "demo/breast-cancer",
         "--config", str(REPO / "examples" / "breast-cancer" / "mlops.yaml")],
        env={**os.environ, "MLOPS_HOME": str(home)}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and str(home / "registry.db") in result.stderr, result.stderr
    assert result.stderr.startswith("mlops: error: ") and "backup" in result.stderr and result.stderr.count("\n") == 1
