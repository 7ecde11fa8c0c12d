"""
The local model registry: one SQLite file under the registry home.

Patch numbers come from SQLite's serialised write transactions: a registration inserts its row
and numbers it inside one ``BEGIN IMMEDIATE`` transaction, and a unique index on
``(group, series, patch)`` backs that up. Concurrent registrations, from threads or processes,
get distinct, consecutive versions. A registration carries an idempotency key (the DAG run and
task), so a retried register task returns the version its first try created.

Decisions are compare-and-set: ``set_approval`` reads the version's state and writes the
decision inside one ``BEGIN IMMEDIATE`` transaction, so of two racing decisions (threads or
processes) exactly one is recorded. Every decision, deploy, rollback and promotion is a row of
the ``events`` table: the audit log (``mlops audit``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_provider_mlops.exceptions import (
    ApprovalConflictError,
    RegistryError,
    RegistryStorageError,
)
from airflow_provider_mlops.registry.base import (
    APPROVAL_STATUSES,
    APPROVED,
    PENDING,
    REJECTED,
    ModelVersion,
    already_decided_message,
    decision_kind,
    is_decided,
    normalised_event,
    utcnow_iso,
    version_not_found,
)
from airflow_provider_mlops.versioning import parse_series

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    series TEXT NOT NULL,
    patch INTEGER,
    status TEXT NOT NULL,
    stage TEXT,
    created_at TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    metrics TEXT NOT NULL,
    gate TEXT NOT NULL,
    lineage TEXT NOT NULL,
    approval TEXT NOT NULL DEFAULT '{}',
    deployment TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_version ON model_versions (grp, series, patch);
CREATE UNIQUE INDEX IF NOT EXISTS ux_idem ON model_versions (grp, idempotency_key);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    grp TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


#: Written beside registry.db when it is created: a missing or empty database then means data loss.
MARKER = "registry.json"
_RESTORE = "restore registry.db from a backup (sqlite3 registry.db '.backup FILE' makes one while it is in use)"
_WRITABLE = "set MLOPS_HOME (or registry.home in mlops.yaml) to a writable folder"
_FULL_BELOW = 1 << 20  # bytes free under which a SQLite I/O error is put down to a full disk


def _explain(path: Path, exc: sqlite3.Error) -> RegistryStorageError:
    """One line for a SQLite fault: the file, what went wrong, and what to do."""
    text, folder = str(exc), path.parent
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        what, fix, retry = "cannot open the local registry", f"make {folder} writable by this user, or {_WRITABLE}", False
    elif ("disk I/O" in text or "full" in text) and ("full" in text or shutil.disk_usage(folder).free < _FULL_BELOW):
        what, fix, retry = "the disk is full", f"free space on the disk that holds {folder}, then retry", True
        text += f" ({shutil.disk_usage(folder).free} bytes free)"
    elif "not a database" in text or "malformed" in text:
        what, fix, retry = "the local registry is damaged", _RESTORE, False
    else:
        what, fix, retry = "the local registry failed", f"check the disk that holds {folder} (dmesg), then retry", True
    return RegistryStorageError(what, path=path, why=text, fix=fix, retryable=retry)


def _unwritable(home: Path, database: Path) -> str | None:
    """Why nothing can be written to the registry in ``home`` (SQLite writes files beside the database), or None."""
    if os.access(home, os.W_OK) and (not database.exists() or os.access(database, os.W_OK)):
        return None
    if os.statvfs(home).f_flag & os.ST_RDONLY:
        return "the file system is read-only"
    return f"{home if not os.access(home, os.W_OK) else database} is not writable by this user"


class LocalModelRegistry:
    """
    A model registry in ``<home>/registry.db``; in a home that cannot be written, a read-only one.

    :param home: the registry home folder; created when missing.
    """

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        self.path = self.home / "registry.db"
        self.marker = self.home / MARKER
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryStorageError.from_os_error(exc, "cannot create the registry home", fix=_WRITABLE) from exc
        #: Why this home cannot be written (a read-only mount, permissions), or None: reads still work.
        self.read_only = _unwritable(self.home, self.path)
        self._refuse_a_lost_registry()
        if self.read_only and not self.path.exists():
            raise RegistryStorageError("cannot create the local registry", path=self.home,
                                       why=f"{self.read_only}, and it holds no registry.db yet", fix=_WRITABLE)
        with self._connect() as conn:
            if not self.read_only:
                conn.executescript(_SCHEMA)
            if self.path.stat().st_size and (conn.execute("PRAGMA quick_check").fetchone() or ["?"])[0] != "ok":
                raise RegistryStorageError("the local registry is damaged", path=self.path,
                                           why="PRAGMA quick_check failed", fix=_RESTORE)
        if not self.read_only and not self.marker.exists():
            self._write_marker()

    def _write_marker(self) -> None:
        try:  # exclusive: of processes opening a new home at once, one writes it, the rest find it
            with open(self.marker, "x", encoding="utf-8") as out:
                json.dump({"created_at": utcnow_iso(), "database": self.path.name}, out)
        except FileExistsError:
            pass
        except OSError as exc:  # a full disk: no half-written marker stays behind
            self.marker.unlink(missing_ok=True)
            raise RegistryStorageError.from_os_error(exc, "cannot write the registry marker") from exc

    def _refuse_a_lost_registry(self) -> None:
        """
        A home that held a registry (its marker file says so) but whose database is missing or
        empty is an error, not a new registry: a new one would number versions from x.y.0 again
        and lose the production model.
        """
        if not self.marker.exists():
            return
        state = "missing" if not self.path.exists() else "empty (0 bytes)" if self.path.stat().st_size == 0 else None
        if state is not None:
            raise RegistryStorageError(
                "refusing to start a new local registry", path=self.path,
                why=f"it is {state}, but {self.marker} says this home held one; a new one would renumber versions",
                fix=f"{_RESTORE}, or delete {self.marker} to start an empty registry on purpose",
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection; SQLite's faults become one :class:`RegistryError` naming the file and the fix."""
        try:
            conn = sqlite3.connect(self._address(), uri=True, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from exc
        conn.row_factory = sqlite3.Row
        try:
            if not self.read_only:
                conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise _explain(self.path, exc) from exc
        finally:
            conn.close()

    def _address(self) -> str:
        """
        The database's URI. In a home that cannot be written SQLite cannot create its ``-shm``
        file: it reads through an existing, non-empty ``-wal`` file (changes not yet copied into
        the database), or else opens the file as immutable, which needs neither.
        """
        uri = self.path.absolute().as_uri()
        if not self.read_only:
            return uri
        wal = self.path.with_name(self.path.name + "-wal")
        return f"{uri}?mode=ro" if wal.exists() and wal.stat().st_size else f"{uri}?mode=ro&immutable=1"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise RegistryStorageError(
                "cannot write the local registry", path=self.home, why=f"{self.read_only} (reading it works)",
                fix=f"{_WRITABLE}, or make {self.home} writable",
            )
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _row(row: sqlite3.Row) -> ModelVersion:
        return ModelVersion(
            group=row["grp"], semver=f"{row['series']}.{row['patch']}", package_version=row["id"],
            status=row["status"], stage=row["stage"], created_at=row["created_at"], artifact_uri=row["artifact_uri"],
            **{column: json.loads(row[column]) for column in ("metrics", "gate", "lineage", "approval", "deployment")},
        )

    def register(
        self,
        group: str,
        series: str,
        *,
        idempotency_key: str,
        artifact_uri: str,
        metrics: dict[str, Any],
        gate: dict[str, Any],
        lineage: dict[str, Any],
        status: str = PENDING,
    ) -> ModelVersion:
        """Register a version and allocate its patch number atomically; idempotent per key."""
        parse_series(series)
        if status not in APPROVAL_STATUSES:
            raise RegistryError(f"status {status!r} is not one of {APPROVAL_STATUSES}")
        with self._write() as conn:
            existing = conn.execute(
                "SELECT * FROM model_versions WHERE grp = ? AND idempotency_key = ?", (group, idempotency_key)
            ).fetchone()
            if existing is not None:
                return self._row(existing)
            cursor = conn.execute(
                "INSERT INTO model_versions (grp, series, status, created_at, artifact_uri, idempotency_key,"
                " metrics, gate, lineage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (group, series, status, utcnow_iso(), artifact_uri, idempotency_key,
                 json.dumps(metrics), json.dumps(gate), json.dumps(lineage)),
            )
            new_id = cursor.lastrowid
            # The patch is this row's rank in the series, in the order of the atomic row ids.
            conn.execute(
                "UPDATE model_versions SET patch = (SELECT COUNT(*) FROM model_versions"
                " WHERE grp = ? AND series = ? AND id < ?) WHERE id = ?",
                (group, series, new_id, new_id),
            )
            row = conn.execute("SELECT * FROM model_versions WHERE id = ?", (new_id,)).fetchone()
            self._event(conn, group, "registered", {"version": f"{series}.{row['patch']}", "key": idempotency_key,
                                                    "by": lineage.get("requested_by") or ""})
        return self._row(row)

    def get(self, group: str, semver: str) -> ModelVersion:
        series, _, patch = semver.rpartition(".")
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM model_versions WHERE grp = ? AND series = ? AND patch = ?", (group, series, patch)
            ).fetchone()
        if row is None:
            raise version_not_found(group, semver)
        return self._row(row)

    def list_versions(self, group: str) -> list[ModelVersion]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM model_versions WHERE grp = ? ORDER BY id", (group,)).fetchall()
        return [self._row(r) for r in rows]

    def latest(self, group: str) -> ModelVersion | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM model_versions WHERE grp = ? ORDER BY id DESC LIMIT 1", (group,)
            ).fetchone()
        return self._row(row) if row else None

    def production(self, group: str) -> ModelVersion | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT * FROM model_versions WHERE grp = ? AND stage = 'production' ORDER BY id DESC LIMIT 1",
                (group,),
            ).fetchone()
        return self._row(row) if row else None

    def set_approval(
        self, group: str, semver: str, status: str, *, by: str, reason: str = "", override: bool = False,
        by_id: str | None = None,
    ) -> ModelVersion:
        """
        Record a decision on an undecided version, compare-and-set, with who, when and why.

        The read of the current state and the write are one ``BEGIN IMMEDIATE`` transaction:
        a second decision, or one racing this one, gets :class:`ApprovalConflictError`.
        """
        if status not in (APPROVED, REJECTED):
            raise RegistryError(f"a decision is {APPROVED} or {REJECTED}, not {status!r}")
        series, _, patch = semver.rpartition(".")
        approval: dict[str, Any] = {"status": status, "by": by, "at": utcnow_iso(), "reason": reason}
        if override:
            approval["override"] = True
        if by_id and by_id != by:
            approval["by_id"] = by_id
        with self._write() as conn:
            row = conn.execute(
                "SELECT * FROM model_versions WHERE grp = ? AND series = ? AND patch = ?", (group, series, patch)
            ).fetchone()
            if row is None:
                raise version_not_found(group, semver)
            current = self._row(row)
            if is_decided(current):
                raise ApprovalConflictError(already_decided_message(current, status))
            conn.execute(
                "UPDATE model_versions SET status = ?, approval = ? WHERE id = ?",
                (status, json.dumps(approval), current.package_version),
            )
            self._event(conn, group, decision_kind(status, by, override),
                        {"version": semver, "by": by, "reason": reason, "status": status})
        return self.get(group, semver)

    def promote(self, group: str, semver: str, *, deployment: dict[str, Any]) -> ModelVersion:
        """Make ``semver`` the production version; the previous one is archived."""
        current = self.get(group, semver)
        if current.status != APPROVED:
            raise RegistryError(
                f"model {group} version {semver} is {current.status}, not Approved: approve it before promoting"
            )
        with self._write() as conn:
            conn.execute(
                "UPDATE model_versions SET stage = 'archived' WHERE grp = ? AND stage = 'production' AND id != ?",
                (group, current.package_version),
            )
            conn.execute(
                "UPDATE model_versions SET stage = 'production', deployment = ? WHERE id = ?",
                (json.dumps({**deployment, "at": utcnow_iso()}), current.package_version),
            )
            self._event(conn, group, "promoted", {"version": semver, **deployment})
        return self.get(group, semver)

    def record_event(self, group: str, kind: str, detail: dict[str, Any]) -> None:
        with self._write() as conn:
            self._event(conn, group, kind, detail)

    def events(self, group: str, kind: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM events WHERE grp = ?" + (" AND kind = ?" if kind else "") + " ORDER BY id"
        with self._connect() as conn:
            rows = conn.execute(query, (group, kind) if kind else (group,)).fetchall()
        return [{"at": r["at"], "kind": r["kind"], **json.loads(r["detail"])} for r in rows]

    def audit_log(self, group: str) -> list[dict[str, Any]]:
        """Every event of ``group``, oldest first, with ``version`` (older rows said ``semver``)."""
        return [normalised_event(event) for event in self.events(group)]

    def adopt_legacy_group(self, group: str, legacy: str, dag_prefix: str) -> int:
        """
        Move this model's versions from the group name older releases gave it (``legacy``) to ``group``.

        The old name ``<project>-<model>`` could be two models' (``a-b/c`` and ``a/b-c``), so a
        row moves only when its lineage says this model's DAGs registered it (its ``dag_id``
        starts with ``dag_prefix``); other rows stay. Its events move with the last of its rows.
        Nothing moves once ``group`` has versions of its own.

        :return: how many versions moved.
        """
        with self._connect() as conn:  # the common case, nothing under the old name, takes no write lock
            if not conn.execute("SELECT 1 FROM model_versions WHERE grp = ? LIMIT 1", (legacy,)).fetchone():
                return 0
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM model_versions WHERE grp = ? LIMIT 1", (group,)).fetchone():
                return 0
            rows = conn.execute("SELECT id, series, patch, lineage FROM model_versions WHERE grp = ?", (legacy,)).fetchall()
            mine = [r for r in rows if str(json.loads(r["lineage"]).get("dag_id") or "").startswith(dag_prefix)]
            if not mine:
                return 0
            conn.executemany("UPDATE model_versions SET grp = ? WHERE id = ?", [(group, r["id"]) for r in mine])
            semvers = {f"{r['series']}.{r['patch']}" for r in mine}
            if len(mine) == len(rows):
                conn.execute("UPDATE events SET grp = ? WHERE grp = ?", (group, legacy))
            else:
                for event in conn.execute("SELECT id, detail FROM events WHERE grp = ?", (legacy,)).fetchall():
                    detail = json.loads(event["detail"])
                    if (detail.get("version") or detail.get("semver")) in semvers:
                        conn.execute("UPDATE events SET grp = ? WHERE id = ?", (group, event["id"]))
            self._event(conn, group, "migrated", {"from": legacy, "versions": sorted(semvers), "by": "mlops",
                                                  "reason": f"registry groups are <project>--<model> now; was {legacy}"})
        log.warning("Moved %d version(s) of %s from the registry group %s (the name before the '--' join): %s",
                    len(mine), group, legacy, ", ".join(sorted(semvers)))
        return len(mine)

    @staticmethod
    def _event(conn: sqlite3.Connection, group: str, kind: str, detail: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO events (grp, at, kind, detail) VALUES (?, ?, ?, ?)",
            (group, utcnow_iso(), kind, json.dumps(detail)),
        )
