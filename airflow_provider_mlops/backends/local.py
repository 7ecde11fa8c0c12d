"""
The local compute backend: a job is a subprocess on this machine.

Each job gets a run folder, ``<home>/jobs/<job name>/``, laid out as SageMaker lays out a
container (``input/config/hyperparameters.json``, ``input/data/<channel>``, ``model/``,
``output/data/``), with the same ``SM_*`` environment variables, so the same entrypoint runs
here, on SageMaker and on Kubernetes.

The job runs under :mod:`airflow_provider_mlops.backends.local_runner`, a detached wrapper that
records the exit status in ``status.json``; the wrapper leads a process group of its own, and
stopping the job, or finding the wrapper dead, ends the whole group.

Attempts: a task's job name is fixed per DAG run and task. A retried task re-attaches to that
job while it runs or once it completed; after it failed or was stopped the retry starts the next
attempt, ``<name>-a2``, ``-a3``, ...: retries mean something, and a task never has two live jobs.
A half-written folder (setup interrupted, unreadable state files) is closed as failed and the
next attempt starts: never a dead end. Creating an attempt's folder is the lock.

A job gets only what it declares, as on SageMaker and Kubernetes: ``PATH``, ``HOME``, the
locale, the training-toolkit variables and ``training.environment``; never the worker's own
environment (Airflow connections, AWS keys, the metadata DB's URL). Job folders are ``0700``
and logs ``0600``: readable by the worker's user only.

This is the ``process`` runtime. ``local.runtime: container`` runs the same jobs, with the same
folders and attempt rules, in the model's image
(:mod:`airflow_provider_mlops.backends.local_container`); only :meth:`LocalComputeBackend._launch`
and the reading of a running job's state differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from airflow_provider_mlops._proc import pid_alive, spawn_detached, write_json_atomic
from airflow_provider_mlops.backends.base import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    LOG_BYTES_PER_POLL,
    LOG_LINES_PER_POLL,
    STOPPED,
    JobSpec,
    JobState,
    LogBatch,
    newest_lines,
    parse_metrics,
)
from airflow_provider_mlops.exceptions import BackendError, MissingFileError
from airflow_provider_mlops.naming import MAX_ATTEMPTS, attempt_name


def command_for(entrypoint: str) -> list[str]:
    """``train.py`` runs with this Python; anything else is a command line."""
    parts = shlex.split(entrypoint)
    if parts and parts[0].endswith(".py"):
        return [sys.executable, *parts]
    return parts


def _read_state(path: Path) -> dict[str, Any] | None:
    """A state file's JSON; ``None`` when missing, ``{"unreadable": ...}`` when torn or corrupt."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"unreadable": f"{path.name}: {exc}"}
    return data if isinstance(data, dict) else {"unreadable": f"{path.name} is not a JSON object"}


#: What a local job inherits from the worker: where programs are, the user's home, the locale.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
#: Set for the runner only: where this package is, when it is not installed (MWAA's plugins).
RUNNER_PATH_ENV = "MLOPS_RUNNER_PYTHONPATH"


def job_env(run_dir: Path, spec: JobSpec, worker_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The whole environment of a local job: :data:`INHERITED_ENV` from the worker, then
    :func:`container_env` (the training-toolkit variables and the spec's declared environment).
    """
    worker_env = os.environ if worker_env is None else worker_env
    env = {key: worker_env[key] for key in INHERITED_ENV if key in worker_env}
    env.setdefault("PATH", os.defpath)
    env.update(container_env(run_dir, spec))
    return env


def _runner_env(env: dict[str, str]) -> dict[str, str]:
    """The job's environment plus, for the runner process alone, the path that imports this package."""
    package_root = str(Path(__file__).resolve().parents[2])
    declared = env.get("PYTHONPATH")
    return {**env, RUNNER_PATH_ENV: package_root,
            "PYTHONPATH": os.pathsep.join(p for p in (package_root, declared) if p)}


def container_env(run_dir: Path, spec: JobSpec) -> dict[str, str]:
    """The SageMaker training-toolkit environment for ``spec``, rooted at ``run_dir``."""
    env = {
        "SM_MODEL_DIR": str(run_dir / "model"),
        "SM_OUTPUT_DATA_DIR": str(run_dir / "output" / "data"),
        "SM_OUTPUT_DIR": str(run_dir / "output"),
        "SM_INPUT_DIR": str(run_dir / "input"),
        "SM_INPUT_CONFIG_DIR": str(run_dir / "input" / "config"),
        "SM_HPS": json.dumps(spec.hyperparameters),
        "SM_CHANNELS": json.dumps(sorted(spec.channels)),
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": json.dumps(["algo-1"]),
        "MLOPS_JOB_NAME": spec.name,
        "MLOPS_JOB_KIND": spec.kind,
    }
    for channel in spec.channels:
        env[f"SM_CHANNEL_{channel.upper().replace('-', '_')}"] = str(run_dir / "input" / "data" / channel)
    for key, value in spec.hyperparameters.items():
        env[f"SM_HP_{key.upper()}"] = str(value)
    env.update(spec.environment)
    return env


class LocalComputeBackend:
    """
    Runs jobs as local subprocesses under ``<home>/jobs``.

    :param home: the MLOps home folder (``$MLOPS_HOME``).
    """

    name = "local"
    default_poll_interval = 0.5

    def __init__(self, home: str | Path) -> None:
        self.home = Path(home)
        self.jobs_dir = self.home / "jobs"

    def serialize(self) -> dict[str, Any]:
        return {"home": str(self.home)}

    def run_dir(self, name: str) -> Path:
        return self.jobs_dir / name

    def submit(self, spec: JobSpec) -> JobState:
        """Start the job, or re-attach to its running or completed attempt; a failed one gets a successor."""
        self.jobs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(self.jobs_dir, 0o700)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            attempt_spec = replace(spec, name=attempt_name(spec.name, attempt))
            run_dir = self.run_dir(attempt_spec.name)
            try:
                run_dir.mkdir(mode=0o700)
            except FileExistsError:
                state = self._existing_attempt(attempt_spec, run_dir)
                if state is not None:
                    return state
                continue
            return self._start(attempt_spec, run_dir)
        raise BackendError(
            f"local job {spec.name} failed {MAX_ATTEMPTS} attempts (folders {spec.name}, {spec.name}-a2, ... under "
            f"{self.jobs_dir}); read their stdout.log, fix the cause, then remove them to start again"
        )

    def _start(self, spec: JobSpec, run_dir: Path) -> JobState:
        _owner_only(run_dir, 0o700)
        try:
            self._lay_out(run_dir, spec)
            write_json_atomic(run_dir / "spec.json", spec.to_dict())
            log_path = run_dir / "stdout.log"
            os.close(os.open(log_path, os.O_CREAT | os.O_WRONLY, 0o600))
            job = self._launch(spec, run_dir, log_path)
        except BaseException as exc:
            # Close the attempt, so the next try starts a fresh one instead of finding a dead end.
            with contextlib.suppress(OSError):
                write_json_atomic(run_dir / "status.json", {"status": FAILED, "failure_reason": f"setup failed: {exc}"})
            if isinstance(exc, OSError):
                raise BackendError(f"local job {spec.name} could not start: {exc}") from exc
            raise
        write_json_atomic(run_dir / "job.json", job)
        return self.poll(spec.name)

    def _launch(self, spec: JobSpec, run_dir: Path, log_path: Path) -> dict[str, Any]:
        """Start the laid-out job; what ``job.json`` records to find it again (here: the runner's pid)."""
        process = spawn_detached(
            [sys.executable, "-m", "airflow_provider_mlops.backends.local_runner", str(run_dir)],
            log_path=log_path,
            cwd=spec.source_dir,
            env=_runner_env(job_env(run_dir, spec)),
        )
        return {"pid": process.pid}

    def _existing_attempt(self, spec: JobSpec, run_dir: Path) -> JobState | None:
        """The state to re-attach to, or ``None`` when this attempt is over without success (try the next)."""
        status = _read_state(run_dir / "status.json") or {}
        job = _read_state(run_dir / "job.json")
        recorded = _read_state(run_dir / "spec.json")
        if status.get("status") in (FAILED, STOPPED):
            return None
        broken = next((d["unreadable"] for d in (status, job or {}, recorded or {}) if "unreadable" in d), None)
        if broken is None and (recorded is None or job is None) and status.get("status") != COMPLETED:
            broken = "its setup never finished (no spec.json or job.json)"
        if broken is not None:
            self._close_attempt(spec.name, run_dir, job, f"half-written job folder: {broken}")
            return None
        if recorded != spec.to_dict():
            raise BackendError(
                f"a local job named {spec.name} already exists in {run_dir} with a different spec; "
                "job names are per DAG run and task, so clear that folder only if you mean to retrain"
            )
        state = self.poll(spec.name)
        return None if state.status in (FAILED, STOPPED) else state

    def _close_attempt(self, name: str, run_dir: Path, job: dict[str, Any] | None, reason: str) -> None:
        pid = (job or {}).get("pid")
        if isinstance(pid, int):
            _kill_group(pid)
        write_json_atomic(run_dir / "status.json", {"status": FAILED, "failure_reason": reason})

    @staticmethod
    def _lay_out(run_dir: Path, spec: JobSpec) -> None:
        for sub in ("input/config", "input/data", "model", "output/data"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "input/config/hyperparameters.json", {k: str(v) for k, v in spec.hyperparameters.items()})
        write_json_atomic(
            run_dir / "input/config/inputdataconfig.json",
            {name: {"TrainingInputMode": "File"} for name in spec.channels},
        )
        for name, location in spec.channels.items():
            source = Path(location.removeprefix("file://"))
            if "://" in location.removeprefix("file://"):
                raise BackendError(
                    f"local job {spec.name}: channel {name!r} points at {location!r}; the local backend reads "
                    "local folders only (use a path, or backend: sagemaker for s3:// data)"
                )
            if not source.exists():
                raise MissingFileError(
                    f"local job {spec.name}: channel {name!r} folder {source} does not exist; "
                    "local channel paths resolve from the folder of mlops.yaml"
                )
            (run_dir / "input/data" / name).symlink_to(source.resolve(), target_is_directory=source.is_dir())

    def poll(self, name: str) -> JobState:
        run_dir = self.run_dir(name)
        status_file = run_dir / "status.json"
        status = _read_state(status_file) or {}
        if status.get("status") in (COMPLETED, FAILED, STOPPED):
            return self._final_state(name, run_dir, status)
        if not run_dir.is_dir():
            raise BackendError(f"no local job named {name} under {self.jobs_dir}")
        job = _read_state(run_dir / "job.json")
        broken = status.get("unreadable") or (job or {}).get("unreadable")
        if broken:
            self._close_attempt(name, run_dir, job, f"unreadable job state ({broken})")
            return self.poll(name)
        pid = (job or {}).get("pid")
        if pid is None:
            # submit() records the pid before anyone polls: without it, the setup never finished.
            self._close_attempt(name, run_dir, job, "half-written job folder: its setup never finished")
            return self.poll(name)
        if not pid_alive(int(pid)):
            # Re-read: the runner may have written its status between the two reads.
            current = _read_state(status_file) or {}
            if current.get("status") in (COMPLETED, FAILED, STOPPED):
                return self._final_state(name, run_dir, current)
            # The wrapper is gone: end whatever it started (its process group), then record it.
            _kill_group(int(pid))
            status = {"status": FAILED, "failure_reason": "the job's process died without recording an exit status"}
            write_json_atomic(status_file, status)
            return self._final_state(name, run_dir, status)
        return JobState(name=name, status=IN_PROGRESS, log_uri=str(run_dir / "stdout.log"))

    def _final_state(self, name: str, run_dir: Path, status: dict[str, Any]) -> JobState:
        spec = _read_state(run_dir / "spec.json") or {}
        log_path = run_dir / "stdout.log"
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        metrics = parse_metrics(log_text, spec.get("metric_definitions", []))
        for candidate in (run_dir / "output/data/metrics.json", run_dir / "model/metrics.json"):
            if candidate.exists():
                metrics.update({k: float(v) for k, v in json.loads(candidate.read_text()).items() if _number(v)})
        details: dict[str, Any] = {}
        evaluation = run_dir / "output/data/evaluation.json"
        if evaluation.exists():
            details["evaluation"] = json.loads(evaluation.read_text())
            metrics.update(
                {k: float(v) for k, v in details["evaluation"].get("metrics", {}).items() if _number(v)}
            )
        reason = status.get("failure_reason")
        failure_file = run_dir / "output/failure"
        if status["status"] == FAILED and failure_file.exists():
            reason = failure_file.read_text().strip()[:1000] or reason
        return JobState(
            name=name,
            status=status["status"],
            failure_reason=reason,
            metrics=metrics,
            model_uri=str(run_dir / "model") if spec.get("kind") == "training" else None,
            output_uri=str(run_dir / "output/data"),
            log_uri=str(log_path),
            details=details,
        )

    def logs_since(
        self, name: str, cursor: str | None, max_lines: int = LOG_LINES_PER_POLL, max_bytes: int = LOG_BYTES_PER_POLL
    ) -> LogBatch:
        """
        The job's ``stdout.log`` after the byte offset ``cursor``: whole lines only while it runs
        (a half-written line waits for the next read), everything once it has ended.
        """
        run_dir = self.run_dir(name)
        if not run_dir.is_dir():
            raise BackendError(f"no local job named {name} under {self.jobs_dir}")
        offset = int(cursor or 0)
        ended = (_read_state(run_dir / "status.json") or {}).get("status") in (COMPLETED, FAILED, STOPPED)
        try:
            with open(run_dir / "stdout.log", "rb") as log:
                size = os.fstat(log.fileno()).st_size
                if size <= offset:
                    return LogBatch([], str(offset))
                start, skipped = offset, 0
                if size - offset > max_bytes:  # read only the newest part; count the lines before it
                    start = size - max_bytes
                    skipped = _count_newlines(log, offset, start)
                log.seek(start - 1 if start > offset else start)
                before = log.read(1) if start > offset else b"\n"
                data = log.read(size - start)
        except FileNotFoundError:
            return LogBatch([], cursor)
        if before != b"\n" and b"\n" in data:  # the first line began before what was read: it counts as skipped
            cut = data.index(b"\n") + 1
            data, start, skipped = data[cut:], start + cut, skipped + 1
        if not ended and not data.endswith(b"\n") and b"\n" in data:
            data = data[: data.rindex(b"\n") + 1]  # a half-written line: read it whole next time
        elif not ended and not data.endswith(b"\n") and len(data) < max_bytes:
            return LogBatch([], str(start), skipped)
        text = data.decode("utf-8", errors="replace")
        lines, dropped = newest_lines((line.rstrip("\r") for line in text.splitlines()), max_lines, max_bytes)
        return LogBatch(lines, str(start + len(data)), skipped + dropped)

    def stop(self, name: str) -> None:
        """Stop the job's whole process group (the wrapper and what it started) and record it Stopped."""
        run_dir = self.run_dir(name)
        job = _read_state(run_dir / "job.json")
        if not job or not isinstance(job.get("pid"), int):
            return
        state = self.poll(name)
        if state.terminal:
            return
        write_json_atomic(run_dir / "status.json", {"status": STOPPED, "failure_reason": "stopped on request"})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(job["pid"]), signal.SIGTERM)


def _count_newlines(log: Any, start: int, end: int) -> int:
    """Lines that end in ``[start, end)`` of an open binary file, read in 1 MiB pieces."""
    log.seek(start)
    count, left = 0, end - start
    while left > 0:
        piece = log.read(min(left, 1 << 20))
        if not piece:
            break
        count += piece.count(b"\n")
        left -= len(piece)
    return count


def _kill_group(pgid: int) -> None:
    """SIGKILL a job's process group: its wrapper led it, so the group outlives a dead wrapper."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _owner_only(path: Path, mode: int) -> None:
    """Make ``path`` the owner's alone (a folder made by an older release, or under a loose umask)."""
    with contextlib.suppress(PermissionError):
        path.chmod(mode)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
