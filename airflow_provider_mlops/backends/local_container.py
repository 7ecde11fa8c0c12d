"""
The local backend's container mode (``local.runtime: container``): each job runs in the model's image.

The run folder, the attempt rules and the state files are the process mode's
(:class:`~airflow_provider_mlops.backends.local.LocalComputeBackend`); only the launch differs.
The container gets what SageMaker gives the image, taken from the SageMaker backend's own
CreateTrainingJob / CreateProcessingJob requests (entrypoint, arguments, environment), with the
run folder mounted where SageMaker puts its volumes:

- training: ``input/config`` at ``/opt/ml/input/config`` and each channel at
  ``/opt/ml/input/data/<channel>`` (read-only), ``model/`` at ``/opt/ml/model`` and ``output/`` at
  ``/opt/ml/output``;
- processing (evaluation): each channel, the trained model included, at
  ``/opt/ml/processing/input/<channel>`` (read-only), ``output/data`` at ``/opt/ml/processing/output``.

The container is named after the attempt (the job name, ``-a2`` for the second attempt) and
labelled with its run folder. Its environment is the declared one only, and ``resources.cpu`` and
``resources.memory`` become ``--cpus`` and ``--memory``. Polling reads the container's state and
exit code and copies its output to the run folder's ``stdout.log``; once the exit status is
recorded, the container is removed. ``stop`` stops it (SIGTERM, then SIGKILL).

Ownership: the image runs as its own ``USER`` (uid 1000 in the example). When the worker is root
(rootful podman or Docker), the folders the container writes (``model/``, ``output/``) and the
files it reads (``input/config``) are given to that uid, so nothing is made world-writable. A
worker that is not root cannot give files away: its containers run as the worker's own uid and gid
(``--user``), which owns the run folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow_provider_mlops._proc import write_json_atomic
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobSpec, JobState
from airflow_provider_mlops.backends.local import LocalComputeBackend, _read_state
from airflow_provider_mlops.engine import ContainerEngine, Mount, find_engine
from airflow_provider_mlops.exceptions import BackendError

logger = logging.getLogger(__name__)

#: The label that ties a container to its run folder (two MLOps homes never share a container).
RUN_DIR_LABEL = "mlops.run-dir"
#: States in which a container has not finished (docker's and podman's names).
_RUNNING = frozenset({"created", "configured", "initialized", "running", "paused", "restarting", "stopping"})
_TERMINAL = frozenset({COMPLETED, FAILED, STOPPED})
# Only the requests' layout is used: no AWS call is made, so the role and bucket are placeholders.
_LAYOUT_ROLE = "arn:aws:iam::000000000000:role/mlops-local-container"
_LAYOUT_BUCKET = "s3://mlops-local-container"
_UNITS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def cpu_limit(value: str | None) -> float | None:
    """``resources.cpu`` (``2``, ``0.5``, ``500m``) as ``--cpus``."""
    if not value:
        return None
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def memory_limit(value: str | None) -> str | None:
    """``resources.memory`` (``512Mi``, ``4Gi``, ``1G``, bytes) as ``--memory`` in bytes."""
    if not value:
        return None
    number = value.rstrip("KMGTi")
    return str(int(float(number) * _UNITS[value[len(number):]]))


class LocalContainerBackend(LocalComputeBackend):
    """
    Runs jobs in the model's image, with the run folder mounted as SageMaker mounts its volumes.

    :param home: the MLOps home folder (``$MLOPS_HOME``).
    """

    default_poll_interval = 1.0

    def serialize(self) -> dict[str, Any]:
        return {"home": str(self.home), "runtime": "container"}

    @cached_property
    def engine(self) -> ContainerEngine:
        return find_engine()

    # -- starting ----------------------------------------------------------------------------

    def _launch(self, spec: JobSpec, run_dir: Path, log_path: Path) -> dict[str, Any]:
        engine = self.engine
        if not spec.image:
            raise BackendError(
                f"local job {spec.name}: local.runtime: container needs an image, and the job has none; "
                "set 'image' in mlops.yaml to a tag the local engine has"
            )
        image = engine.image(spec.image)
        if image is None:
            raise BackendError(
                f"local job {spec.name}: the image {spec.image} (mlops.yaml 'image') is not among the {engine.name} "
                f"engine's local images; the local backend never pulls. Fix: `{engine.name} build -t {spec.image} "
                f"{spec.source_dir}`, or set 'image' to an image this machine has"
            )
        leftover = engine.container(spec.name)
        if leftover is not None:
            owner = (leftover.get("Config", {}).get("Labels") or {}).get(RUN_DIR_LABEL)
            if owner != str(run_dir):
                raise BackendError(
                    f"local job {spec.name}: a container of that name already exists for {owner or 'something else'}, "
                    f"not for {run_dir}. Fix: remove it (`{engine.name} rm -f {spec.name}`) if it is stale"
                )
            engine.remove(spec.name)  # this attempt's own, from a start that never recorded it
        entrypoint, arguments, env, mounts = self._container_plan(spec, run_dir)
        user = self._grant(spec, run_dir, (image.get("Config") or {}).get("User") or "")
        engine.start(
            spec.image, arguments, name=spec.name, entrypoint=entrypoint, env=env, mounts=mounts, user=user,
            cpus=cpu_limit(spec.resources.get("cpu")), memory=memory_limit(spec.resources.get("memory")),
            labels={RUN_DIR_LABEL: str(run_dir)},
        )
        return {"container": spec.name, "engine": engine.name, "image": spec.image}

    @staticmethod
    def _container_plan(spec: JobSpec, run_dir: Path) -> tuple[list[str], list[str], dict[str, str], list[Mount]]:
        """The entrypoint, arguments, environment and mounts SageMaker would give the image for ``spec``."""
        from airflow_provider_mlops.backends.sagemaker import SageMakerComputeBackend

        layout = SageMakerComputeBackend(role_arn=_LAYOUT_ROLE, artifacts_uri=_LAYOUT_BUCKET)
        channels = {name: (run_dir / "input" / "data" / name).resolve() for name in spec.channels}
        spec = replace(spec, channels={name: f"{_LAYOUT_BUCKET}/{name}" for name in spec.channels})  # mounted, not read
        if spec.kind == "training":
            request = layout.training_request(spec)
            algorithm = request["AlgorithmSpecification"]
            mounts = [Mount(run_dir / "input" / "config", "/opt/ml/input/config", read_only=True)]
            mounts += [Mount(source, f"/opt/ml/input/data/{name}", read_only=True) for name, source in channels.items()]
            mounts += [Mount(run_dir / "model", "/opt/ml/model"), Mount(run_dir / "output", "/opt/ml/output")]
            return algorithm["ContainerEntrypoint"], algorithm.get("ContainerArguments", []), request["Environment"], mounts
        request = layout.processing_request(spec)
        mounts = [Mount(channels[i["InputName"]], i["S3Input"]["LocalPath"], read_only=True) for i in request["ProcessingInputs"]]
        mounts += [Mount(run_dir / "output" / "data", o["S3Output"]["LocalPath"])
                   for o in request["ProcessingOutputConfig"]["Outputs"]]
        return request["AppSpecification"]["ContainerEntrypoint"], [], request["Environment"], mounts

    @staticmethod
    def _grant(spec: JobSpec, run_dir: Path, image_user: str) -> str | None:
        """Let the image's user write ``model/`` and ``output/`` and read ``input/config``; the ``--user`` to run as."""
        if os.geteuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"  # the folders' owner: nothing to give away
        uid_text, _, gid_text = image_user.partition(":")
        if not uid_text or uid_text in ("0", "root"):
            return None
        if not uid_text.isdigit() or (gid_text and not gid_text.isdigit()):
            raise BackendError(
                f"local job {spec.name}: the image {spec.image} runs as USER {image_user!r}, a name; allowed: a numeric "
                "uid (and gid), so the mounted folders can be given to it. Fix: `USER 1000` in the Dockerfile"
            )
        uid, gid = int(uid_text), int(gid_text or uid_text)
        for top in (run_dir / "model", run_dir / "output", run_dir / "input" / "config"):
            for folder, _dirs, files in os.walk(top):
                os.chown(folder, uid, gid)
                for file in files:
                    os.chown(os.path.join(folder, file), uid, gid)
        return None

    # -- state -------------------------------------------------------------------------------

    def poll(self, name: str) -> JobState:
        run_dir = self.run_dir(name)
        status_file = run_dir / "status.json"
        status = _read_state(status_file) or {}
        if status.get("status") in _TERMINAL:
            return self._final_state(name, run_dir, status)
        if not run_dir.is_dir():
            raise BackendError(f"no local job named {name} under {self.jobs_dir}")
        job = _read_state(run_dir / "job.json")
        broken = status.get("unreadable") or (job or {}).get("unreadable")
        if broken or not job or "container" not in job:
            reason = f"unreadable job state ({broken})" if broken else "half-written job folder: its setup never finished"
            self._close_attempt(name, run_dir, job, reason)
            return self.poll(name)
        record = self.engine.container(name)
        if record is not None:
            self._save_logs(name, run_dir)
            state = record.get("State") or {}
            if state.get("Running") or str(state.get("Status", "")).lower() in _RUNNING:
                return JobState(name=name, status=IN_PROGRESS, log_uri=str(run_dir / "stdout.log"))
        # Re-read: stop() records Stopped before it stops the container.
        current = _read_state(status_file) or {}
        if current.get("status") in _TERMINAL:
            status = current
        elif record is None:
            status = {"status": FAILED, "failure_reason": f"the container {name} disappeared without recording an exit status"}
        else:
            status = self._exit_status(name, run_dir, record.get("State") or {})
        write_json_atomic(status_file, status)
        if record is not None:
            self.engine.remove(name)
        final = self._final_state(name, run_dir, status)
        logger.info("container %s ended %s; its output is in %s", name, final.status, final.log_uri)
        return final

    @staticmethod
    def _exit_status(name: str, run_dir: Path, state: dict[str, Any]) -> dict[str, Any]:
        exit_code = int(state.get("ExitCode", -1))
        if exit_code == 0:
            return {"status": COMPLETED, "exit_code": 0}
        hint = "; it ran out of memory: raise resources.memory" if state.get("OOMKilled") else ""
        return {"status": FAILED, "exit_code": exit_code,
                "failure_reason": f"the container {name} exited with code {exit_code}{hint}; see {run_dir / 'stdout.log'}"}

    def _save_logs(self, name: str, run_dir: Path) -> None:
        """The container's output so far, into the run folder's ``stdout.log`` (its mode kept: ``0600``)."""
        text = self.engine.logs(name)
        if text:
            with open(run_dir / "stdout.log", "w", encoding="utf-8") as log:
                log.write(text)

    def _close_attempt(self, name: str, run_dir: Path, job: dict[str, Any] | None, reason: str) -> None:
        self.engine.remove(name)  # named after the attempt: found even when job.json was never written
        write_json_atomic(run_dir / "status.json", {"status": FAILED, "failure_reason": reason})

    def stop(self, name: str) -> None:
        """Stop the job's container (SIGTERM, then SIGKILL) and record it Stopped."""
        run_dir = self.run_dir(name)
        job = _read_state(run_dir / "job.json")
        if not job or "container" not in job:
            return
        if self.poll(name).terminal:
            return
        write_json_atomic(run_dir / "status.json", {"status": STOPPED, "failure_reason": "stopped on request"})
        self.engine.stop(name)
        self._save_logs(name, run_dir)
        self.engine.remove(name)
