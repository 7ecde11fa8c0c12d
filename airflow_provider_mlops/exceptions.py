"""
The one exception hierarchy of airflow-provider-mlops.

Every error this package raises on purpose derives from :class:`MlopsError`, so callers can
catch the whole family, or one branch of it::

    MlopsError
    ├── ConfigError *          an mlops.yaml (or a defaults file, or release.json) is invalid
    │   └── ConfigErrors *     several configs are invalid; ``.errors`` holds each one
    ├── InputError *           a CLI argument, DAG run conf or event is invalid
    ├── MissingFileError *     a file or folder a config or run names does not exist
    ├── BackendError           a compute job could not be submitted, failed or was stopped
    │   └── BackendNotAvailableError *   the backend is configured but not usable here
    ├── RegistryError          the model registry refused an operation
    │   ├── VersionNotFoundError *   no such model version, or no version trained from a release
    │   └── ApprovalConflictError *  the version was already decided (approved, rejected): one decision wins
    ├── ApprovalRefusedError *       this person may not make this decision (approvers, override, reason)
    ├── DeploymentError        an endpoint could not be created, updated or health-checked
    │   └── DeployRefusedError *     the version may not be deployed (gate failed, Rejected, ...)
    └── NotificationSetupError *     a notification channel can't be used here (a missing extra)

``*``: :attr:`MlopsError.retryable` is False: no retry can fix it, so an operator fails its
task at once, without retries (``AirflowFailException``, see ``operators/base.py``).

Messages follow one rule: they name the file, DAG or object, the field, the bad value, what is
allowed, and the fix.
"""

from __future__ import annotations


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


class BackendError(MlopsError):
    """A compute job could not be submitted, failed, or was stopped."""


class BackendNotAvailableError(BackendError):
    """The configured backend cannot be used in this installation (yet)."""

    retryable = False


class RegistryError(MlopsError):
    """The model registry refused an operation."""


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


class NotificationSetupError(MlopsError):
    """A notification channel can't be used in this installation (a missing extra); retrying would not help."""

    retryable = False
