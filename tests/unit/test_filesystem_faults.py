"""
Filesystem faults through the real ``mlops`` command (issue 13): a read-only home, a full disk, a
damaged registry.db or router.json. Each is one line on stderr, ``mlops: error: ...`` naming the
path and the fix, exit code 1 and no traceback; ``--debug`` adds the traceback. A read-only home
still serves read commands such as ``mlops versions``.

The faults are real: a read-only bind mount (root ignores chmod), a small tmpfs filled up, bytes
written over the files. The tests run as root, as CI does; a mount that cannot be made fails the
test, it never skips it. Every mount is undone in ``finally``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from airflow_provider_mlops.exceptions import RegistryStorageError
from airflow_provider_mlops.registry.local import LocalModelRegistry

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "breast-cancer" / "mlops.yaml"
GROUP = "demo--breast-cancer"
MLOPS = Path(sys.executable).with_name("mlops")


def _sh(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{' '.join(argv)} failed (these tests need root, as CI has): {result.stderr}"


@contextmanager
def _mounted(*argv: str, target: Path) -> Iterator[Path]:
    _sh("mount", *argv, str(target))
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True, timeout=30).returncode:
            _sh("umount", "-l", str(target))


def _read_only(folder: Path) -> AbstractContextManager[Path]:
    return _mounted("--bind", "-o", "ro", str(folder), target=folder)


def _mlops(*argv: str, home: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert MLOPS.is_file(), f"{MLOPS} is missing: install the package into the venv (pip install -e .)"
    env = {**os.environ, **({"MLOPS_HOME": str(home)} if home else {})}
    return subprocess.run([str(MLOPS), *argv], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, exactly one stderr line, 'mlops: error: ...' holding every needle, no traceback."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("mlops: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _debug_shows_the_traceback(argv: list[str], home: Path | None = None) -> None:
    result = _mlops("--debug", *argv, home=home)
    assert result.returncode == 1 and "Traceback (most recent call last)" in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith("mlops: error: "), result.stderr


def _registered(home: Path, count: int = 1) -> LocalModelRegistry:
    registry = LocalModelRegistry(home)
    for key in range(count):
        registry.register(GROUP, "1.0", idempotency_key=f"run-{key}", artifact_uri="file:///m" + "x" * 200,
                          metrics={"f1": 0.95}, gate={"passed": True}, lineage={})
    return registry


APPROVE = ["approve", "demo/breast-cancer", "1.0.0", "--config", str(CONFIG), "--by", "carol", "--registry-only"]
VERSIONS = ["versions", "demo/breast-cancer", "--config", str(CONFIG)]


# --- a read-only home ------------------------------------------------------------------------


def test_a_read_only_home_still_lists_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _registered(home, count=2)
    with _read_only(home):
        result = _mlops(*VERSIONS, home=home)
        assert result.returncode == 0, result.stderr
        assert "1.0.0      PendingManualApproval" in result.stdout and "1.0.1" in result.stdout
        assert sorted(p.name for p in home.iterdir()) == ["registry.db", "registry.json"]


def test_a_read_only_home_reads_changes_still_in_the_write_ahead_log(tmp_path: Path) -> None:
    # A process that died before SQLite copied its changes into registry.db leaves them in registry.db-wal.
    source, home = tmp_path / "source", tmp_path / "home"
    _registered(source)
    holder = sqlite3.connect(source / "registry.db")  # keeps the -wal file from being checkpointed away
    try:
        holder.execute("SELECT COUNT(*) FROM model_versions").fetchone()  # opens the database and its -shm
        _registered(source, count=2)
        shutil.copytree(source, home)
    finally:
        holder.close()
    assert (home / "registry.db-wal").stat().st_size > 0
    with _read_only(home):
        result = _mlops(*VERSIONS, home=home)
    assert result.returncode == 0, result.stderr
    assert "1.0.1" in result.stdout


def test_a_write_on_a_read_only_home_names_the_folder_and_the_setting(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _registered(home)
    with _read_only(home):
        _one_line_error(_mlops(*APPROVE, home=home), f"({home})", "read-only", "MLOPS_HOME", "registry.home")
        _debug_shows_the_traceback(APPROVE, home=home)
    assert LocalModelRegistry(home).get(GROUP, "1.0.0").status == "PendingManualApproval"


def test_operators_do_not_retry_a_read_only_home_but_do_retry_a_full_disk(tmp_path: Path) -> None:
    # MlopsError.retryable decides whether an operator spends its retries (operators/base.py).
    home, disk = tmp_path / "home", tmp_path / "disk"
    _registered(home)
    with _read_only(home):
        registry = LocalModelRegistry(home)
        assert registry.read_only == "the file system is read-only"
        assert registry.get(GROUP, "1.0.0").semver == "1.0.0"
        with pytest.raises(RegistryStorageError, match="cannot write the local registry") as caught:
            registry.set_approval(GROUP, "1.0.0", "Approved", by="carol")
        assert caught.value.path == str(home) and not caught.value.retryable
    disk.mkdir()
    with _mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs", target=disk):
        registry = _registered(disk)
        _fill(disk)
        with pytest.raises(RegistryStorageError, match="free space") as caught:
            registry.set_approval(GROUP, "1.0.0", "Approved", by="carol")
        assert caught.value.path == str(disk / "registry.db") and caught.value.retryable


def test_a_read_only_home_without_a_registry_yet(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with _read_only(home):
        _one_line_error(_mlops(*VERSIONS, home=home), f"({home})", "no registry.db", "MLOPS_HOME")
        _one_line_error(_mlops(*VERSIONS, home=home / "sub"), f"({home / 'sub'})", "Read-only", "MLOPS_HOME")


# --- a full disk -------------------------------------------------------------------------------


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def test_a_full_disk_names_the_registry_and_says_to_free_space(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs", target=disk):
        _registered(disk)
        _fill(disk)
        _one_line_error(_mlops(*APPROVE, home=disk), str(disk / "registry.db"), "free space", "0 bytes free")
        _debug_shows_the_traceback(APPROVE, home=disk)
        _one_line_error(_mlops(*VERSIONS, home=disk / "new"), str(disk / "new"), "free space")
        (disk / "filler").unlink()
        assert _mlops(*APPROVE, home=disk).returncode == 0  # space again: the registry is intact
        assert LocalModelRegistry(disk).get(GROUP, "1.0.0").approval["by"] == "carol"


def test_a_full_disk_while_writing_the_schema(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted("-t", "tmpfs", "-o", "size=8k", "tmpfs", target=disk):
        target = str(disk / "schema.json")
        _one_line_error(_mlops("schema", "-o", target), f"({target})", "No space left", "free space", str(disk))


# --- damaged files -----------------------------------------------------------------------------


def _not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not a SQLite database" * 100)


def _half_of_it(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _a_page_overwritten(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 4] = b"\xab" * 4096
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_not_a_database, _half_of_it, _a_page_overwritten])
def test_a_damaged_registry_names_the_file_and_the_backup(damage: Callable[[Path], None], tmp_path: Path) -> None:
    home = tmp_path / "home"
    _registered(home, count=100)
    assert (home / "registry.db").stat().st_size > 4096 * 4
    damage(home / "registry.db")
    line = _one_line_error(_mlops(*VERSIONS, home=home), str(home / "registry.db"), "backup")
    assert "not a database" in line or "malformed" in line or "quick_check" in line
    _debug_shows_the_traceback(VERSIONS, home=home)


def test_a_damaged_router_json_is_one_line_naming_it(tmp_path: Path) -> None:
    state = tmp_path / "home" / "endpoints" / "demo--breast-cancer"
    state.mkdir(parents=True)
    router = state / "router.json"
    router.write_text('{"pid": 12')  # cut short, as a full disk leaves a file
    result = _mlops("endpoint", "status", "demo--breast-cancer", "--home", str(tmp_path / "home"))
    # Serving may warn and carry on (it finds its processes by their command line) or refuse: either
    # way one line that names the file, and when it refuses, the CLI's error form and exit 1.
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and len(lines) == 1 and str(router) in lines[0], result.stderr
    if result.returncode:
        _one_line_error(result, str(router))


def test_writing_the_schema_into_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = str(folder / "schema.json")
    with _read_only(folder):
        _one_line_error(_mlops("schema", "-o", target), f"({target})", "Read-only file system", f"remount {folder}")
