"""
The compute-backend protocol: ``submit``, ``poll`` and ``stop`` a job.

Operators never branch on the backend: they build a :class:`JobSpec`, ask
:func:`airflow_provider_mlops.backends.get_compute_backend` for the one the config names, and
drive it through this protocol. ``submit`` is idempotent: a job whose name already exists is
re-attached, never started twice.

A backend whose jobs' output can be read also implements :class:`JobLogSource`
(``logs_since(name, cursor)``): the operators and the trigger copy the new lines into the task log
at each poll, and a failed job's last lines into its failure message.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPED = "Stopped"
TERMINAL_STATES = frozenset({COMPLETED, FAILED, STOPPED})

JobKind = Literal["training", "processing"]

#: The most lines of job output one poll brings into the task log; older new lines are skipped, with a marker.
LOG_LINES_PER_POLL = 200
#: The most bytes of job output one poll brings into the task log.
LOG_BYTES_PER_POLL = 64 * 1024
#: A longer line of output is cut to this many characters (a progress bar without newlines).
LOG_LINE_CHARS = 4096


@dataclass(frozen=True)
class JobSpec:
    """
    One training or processing job, in the SageMaker container contract's terms.

    :param name: the deterministic job name (see :func:`airflow_provider_mlops.naming.job_name`).
    :param kind: ``training`` writes a model; ``processing`` (evaluation) writes an output.
    :param entrypoint: the script or command the container runs.
    :param source_dir: where the code lives, for backends that run it from source.
    :param image: the container image, for backends that run containers.
    :param hyperparameters: passed as ``hyperparameters.json`` and ``SM_HPS``.
    :param channels: input name → location; each becomes ``/opt/ml/input/data/<name>``.
    :param metric_definitions: ``{"name", "regex"}`` dicts matched against the job's log.
    :param resources: the config's resources block, as a dict.
    :param environment: extra environment variables.
    :param output_uri: where the backend keeps the job's model or output, when it is remote.
    """

    name: str
    kind: JobKind
    entrypoint: str
    source_dir: str = "."
    image: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    output_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobState:
    """Where a job stands. Terminal states carry the metrics and artifact locations."""

    name: str
    status: str
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    output_uri: str | None = None
    log_uri: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        return cls(**data)


class ComputeBackend(Protocol):
    """Runs jobs. Implementations: ``local``, ``sagemaker``, ``kubernetes``, and ``fake`` for tests."""

    name: str

    def submit(self, spec: JobSpec) -> JobState:
        """Start the job, or re-attach to the job of the same name; return its state."""

    def poll(self, name: str) -> JobState:
        """Return the job's current state."""

    def stop(self, name: str) -> None:
        """Ask the job to stop. Stopping a finished or unknown job is not an error."""

    def serialize(self) -> dict[str, Any]:
        """Primitive keyword arguments that rebuild this backend (for triggers)."""


@dataclass(frozen=True)
class LogBatch:
    """
    New lines of a job's output, oldest first, and where the next read starts.

    :param lines: the lines, without their line endings.
    :param cursor: an opaque string (a byte offset, a JSON of tokens, a timestamp) to pass to the
        next ``logs_since``; ``None`` when nothing has been read yet.
    :param skipped: lines left out before ``lines`` to keep within the limits of one read; ``-1``
        when some were left out but the backend cannot count them.
    """

    lines: list[str]
    cursor: str | None
    skipped: int = 0


@runtime_checkable
class JobLogSource(Protocol):
    """A backend whose jobs' output can be read in pieces (``local``, ``sagemaker``, ``kubernetes``)."""

    def logs_since(
        self, name: str, cursor: str | None, max_lines: int = LOG_LINES_PER_POLL, max_bytes: int = LOG_BYTES_PER_POLL
    ) -> LogBatch:
        """
        The job's output after ``cursor`` (from its start when ``None``), at most ``max_lines``
        lines and ``max_bytes`` bytes: the newest ones, with the older ones counted as skipped.
        So ``logs_since(name, None, 20, 4096)`` is the job's last 20 lines. A job with no output
        yet gives no lines; an unknown job raises ``BackendError``.
        """


def newest_lines(lines: Iterable[str], max_lines: int, max_bytes: int) -> tuple[list[str], int]:
    """
    The newest of ``lines`` within ``max_lines`` and ``max_bytes`` (UTF-8), each cut to
    :data:`LOG_LINE_CHARS`, and how many older ones were left out.
    """
    kept: deque[str] = deque()
    size = total = 0
    for line in lines:
        total += 1
        if len(line) > LOG_LINE_CHARS:
            line = line[:LOG_LINE_CHARS] + f" … ({len(line) - LOG_LINE_CHARS} characters cut)"
        kept.append(line)
        size += len(line.encode()) + 1
        while len(kept) > max_lines or (len(kept) > 1 and size > max_bytes):
            size -= len(kept.popleft().encode()) + 1
    return list(kept), total - len(kept)


def parse_metrics(log_text: str, definitions: list[dict[str, str]]) -> dict[str, float]:
    """Apply SageMaker-style metric definitions to a log; the last match of each metric wins."""
    metrics: dict[str, float] = {}
    for definition in definitions:
        pattern = re.compile(definition["regex"])
        for match in pattern.finditer(log_text):
            try:
                metrics[definition["name"]] = float(match.group(1))
            except (TypeError, ValueError):
                continue
    return metrics
