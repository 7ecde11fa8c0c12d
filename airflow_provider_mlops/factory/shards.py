"""
Shards: split the models over several loader files, so no file nears Airflow's import timeout.

Every file in the dags folder is parsed under ``dagbag_import_timeout`` (30 s by default), and
one file for all models puts them all under one timeout. ``load_dags(globals(), shard=(i, n))``
builds only the models whose folder hashes to shard ``i`` of ``n``: a stable hash (SHA-256 of
the config's folder relative to its root, not Python's salted ``hash``), so every model lands in
exactly one shard, in every process, and stays there while its folder does.
``mlops shards write --count N`` writes the ``N`` loader files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SHARD_FILE = "mlops_dags_{index}.py"
_MARKER = "# mlops-shard-file"

SHARD_TEMPLATE = '''"""Shard {index} of {count} of every model's DAGs; written by `mlops shards write --count {count}`."""

{marker}
# Named so that Airflow's dag processor pre-imports them once, not in every parse (docs/performance.md).
import airflow.providers.standard.operators.empty  # noqa: F401
import airflow.providers.standard.operators.hitl  # noqa: F401
import airflow.providers.standard.operators.trigger_dagrun  # noqa: F401
import airflow.sdk  # noqa: F401

from airflow_provider_mlops.factory import load_dags

load_dags(globals(), shard=({index}, {count}))
'''


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    """Return ``shard`` as ``(index, count)``; raise ``ValueError`` unless ``0 <= index < count``."""
    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and count >= 1 and 0 <= index < count):
        raise ValueError(f"shard {shard!r} must be (index, count) with 0 <= index < count, for example (0, 4)")
    return index, count


def shard_of(config_path: Path, root: Path, count: int) -> int:
    """The shard (``0 .. count-1``) of the model whose ``mlops.yaml`` is ``config_path`` under ``root``."""
    if count == 1:
        return 0
    try:
        name = config_path.parent.relative_to(root).as_posix()
    except ValueError:
        name = config_path.parent.as_posix()
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count


ERRORS_FILE = "mlops_config_errors_{index}.py"

ERRORS_TEMPLATE = '''"""Shard {index} of {count} of the config errors; written by `mlops shards write --error-files {count}`.

Holds no DAGs: it raises every invalid config of its shard as this file's import error.
"""

{marker}
import airflow.sdk  # noqa: F401  (the dag processor only parses files that mention airflow and dag)

from airflow_provider_mlops.factory import report_config_errors

report_config_errors(globals(), shard=({index}, {count}))
'''


def write_shard_files(dags_folder: Path, count: int, error_files: int = 1) -> list[Path]:
    """
    Write ``count`` shard loader files into ``dags_folder``, and ``error_files`` shards of the
    config-errors file when that is more than one; remove the shard files of an earlier count.

    With one error file, ``mlops_config_errors.py`` (not written here) reports every config.
    More than one splits the validation after a cold cache over several files; a project/model
    pair defined twice is then only found when both land in the same error shard (``mlops
    validate`` in CI always finds it).
    """
    check_shard((0, count))
    check_shard((0, error_files))
    dags_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(count):
        path = dags_folder / SHARD_FILE.format(index=index)
        path.write_text(SHARD_TEMPLATE.format(index=index, count=count, marker=_MARKER))
        written.append(path)
    for index in range(error_files if error_files > 1 else 0):
        path = dags_folder / ERRORS_FILE.format(index=index)
        path.write_text(ERRORS_TEMPLATE.format(index=index, count=error_files, marker=_MARKER))
        written.append(path)
    for pattern in (SHARD_FILE, ERRORS_FILE):
        for stale in dags_folder.glob(pattern.format(index="*")):
            if stale not in written and _MARKER in stale.read_text(encoding="utf-8", errors="replace"):
                stale.unlink()
    return written
