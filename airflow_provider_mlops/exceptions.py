"""
The one exception hierarchy of airflow-provider-mlops.

Every error this package raises on purpose derives from :class:`MlopsError`, so callers can
catch the whole family, or one branch of it::

    MlopsError
    ├── ConfigError *          an mlops.yaml (or a defaults file, or release.json) is invalid
    │   └── ConfigErrors *     several configs are invalid; ``.errors`` holds each one
    ├── InputError *           a CLI argument, DAG run conf or event is invalid
    ├── MissingFileError *     a file or folder a config or run names does not exist
    ├── StorageError *         a file or folder could not be read or written: read-only, full disk (retryable), damaged
    ├── BackendError           a compute job could not be submitted, failed or was stopped
    │   └── BackendNotAvailableError *   the backend is configured but not usable here
    ├── RegistryError          the model registry refused an operation
    │   ├── RegistryStorageError *   its database cannot be read or written (a StorageError too)
    │   ├── VersionNotFoundError *   no such model version, or no version trained from a release
    │   └── ApprovalConflictError *  the version was already decided (approved, rejected): one decision wins
    ├── ApprovalRefusedError *       this person may not make this decision (approvers, override, reason)
    ├── DeploymentError        an endpoint could not be created, updated or health-checked
    │   ├── DeployRefusedError *     the version may not be deployed (gate failed, Rejected, ...)
    │   └── RolledBackError *        the smoke test failed and the previous version serves again
    └── NotificationSetupError *     a notification channel can't be used here (a missing extra)

``*``: :attr:`MlopsError.retryable` is False: no retry can fix it, so an operator fails its
task at once, without retries (``AirflowFailException``, see ``operators/base.py``).

Messages follow one rule: they name the file, DAG or object, the field, the bad value, what is
allowed, and the fix.
"""

from __future__ import annotations

import errno
import os


class MlopsError(Exception):
    """Base class of every error raised by airflow-provider-mlops."""

    #: False when retrying the same task cannot succeed (a bad config, run conf or missing file):
    #: the operators then fail the task at once instead of spending its retries.
    retryable: bool = True


class ConfigError(MlopsError):
    """
    One invalid mlops.yaml or defaults file (or the release.json published beside it).

    :param path: the file that holds the bad value.
    :param line: the 1-based line of the bad value in ``path``, when known.
    :param field: the dotted field path, for example ``evaluation.gate.f1.min``.
    :param value: the bad value as it was read.
    :param problem: what is wrong, and what is allowed.
    :param fix: how to fix it.
    """

    retryable = False

    def __init__(
        self,
        problem: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
        fix: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = self.path or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        parts = [where]
        if self.field:
            parts.append(f"field '{self.field}'")
        head = ": ".join(parts)
        text = f"{head}: {self.problem}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class ConfigErrors(ConfigError):
    """Several configuration errors, reported together (``validate`` lists all of them)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        lines = [f"{len(errors)} mlops config error(s):"] + [f"  - {e}" for e in errors]
        MlopsError.__init__(self, "\n".join(lines))
        self.path = errors[0].path if errors else None
        self.line = errors[0].line if errors else None
        self.field = errors[0].field if errors else None
        self.value = None
        self.problem = "\n".join(lines)
        self.fix = None

    def render(self) -> str:  # pragma: no cover - __init__ builds the text directly
        return self.problem


class InputError(MlopsError):
    """A CLI argument, DAG run conf or trigger event is invalid."""

    retryable = False


class MissingFileError(MlopsError):
    """A file or folder that a config or a run names (payload, data, entrypoint, config) does not exist."""

    retryable = False


#: errno -> the usual fix, for :meth:`StorageError.from_os_error`; ``{folder}`` is the file's folder.
_OS_FIXES: dict[int, str] = {
    errno.EROFS: "remount {folder} read-write, or use a writable folder (for the MLOps home: set MLOPS_HOME or "
                 "registry.home in mlops.yaml)",
    errno.EACCES: "make {folder} readable and writable by this user, or use a folder you own (for the MLOps home: "
                  "set MLOPS_HOME or registry.home in mlops.yaml)",
    errno.ENOSPC: "free space on the disk that holds {folder}, then retry",
    errno.EDQUOT: "free space or raise the quota for {folder}, then retry",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "check the path: a part of it is a file, not a folder",
}
_OS_FIXES[errno.EPERM] = _OS_FIXES[errno.EACCES]


class StorageError(MlopsError):
    """
    A file or folder could not be read or written: a read-only folder, a full disk, a damaged file.

    The message is one line, ``<what> (<path>): <why>; <fix>``.

    :param what: what could not be done, for example ``cannot write the local registry``.
    :param path: the file or folder.
    :param why: the cause as the system reported it.
    :param fix: what to do about it.
    :param retryable: whether a retry can succeed unchanged (a full disk someone may clear: yes).
    """

    retryable = False

    def __init__(self, what: str, *, path: str | os.PathLike[str], why: str, fix: str, retryable: bool = False) -> None:
        self.what, self.path, self.why, self.fix = what, os.fspath(path), why, fix
        self.retryable = retryable
        super().__init__(f"{what} ({self.path}): {why}; {fix}")

    @classmethod
    def from_os_error(
        cls, exc: OSError, what: str = "cannot use a file", *, path: str | os.PathLike[str] | None = None,
        fix: str | None = None,
    ) -> StorageError:
        """
        The one-line error for ``exc``, from its errno: the path, the cause and the usual fix.

        :param path: the file, when ``exc`` does not name it (a write that fills the disk does not).
        """
        name = exc.filename if exc.filename is not None else path
        if name is None:
            where, folder = "path not known: rerun with --debug", "that file"
        else:
            where = os.fsdecode(name)
            folder = os.path.dirname(os.path.abspath(where))
        default_fix = _OS_FIXES.get(exc.errno or 0, "check the file and its folder")
        return cls(what, path=where, why=exc.strerror or str(exc), fix=fix or default_fix.format(folder=folder),
                   retryable=exc.errno in (errno.ENOSPC, errno.EDQUOT))


class BackendError(MlopsError):
    """A compute job could not be submitted, failed, or was stopped."""


class BackendNotAvailableError(BackendError):
    """The configured backend cannot be used in this installation (yet)."""

    retryable = False


class RegistryError(MlopsError):
    """The model registry refused an operation."""


class RegistryStorageError(RegistryError, StorageError):
    """The registry's database cannot be opened, read or written: a read-only home, a full disk, a damaged file."""


class VersionNotFoundError(RegistryError):
    """The requested model version does not exist, or no version was trained from the requested release."""

    retryable = False


class ApprovalConflictError(RegistryError):
    """
    A decision (approve, reject, override) on a version that is already decided.

    Decisions are compare-and-set on the version's state: of two racing decisions exactly one
    is recorded, and the other gets this error naming the one that won.
    """

    retryable = False


class ApprovalRefusedError(MlopsError):
    """
    This person may not make this decision: not in ``deployment.approvers`` (or
    ``deployment.gate_override_by`` for an override), the version's own requester under
    ``deployment.forbid_self_approval``, or a reason is missing where one is required.
    """

    retryable = False


class DeploymentError(MlopsError):
    """An endpoint could not be created, updated, or health-checked."""


class DeployRefusedError(DeploymentError):
    """The version may not be deployed: its gate failed, it was Rejected, or it is not Approved."""

    retryable = False


class RolledBackError(DeploymentError):
    """The smoke test failed and the endpoint serves the previous version again: a retry would change nothing."""

    retryable = False


class NotificationSetupError(MlopsError):
    """A notification channel can't be used in this installation (a missing extra); retrying would not help."""

    retryable = False
