"""
An in-memory compute backend for tests: jobs complete at once with scripted results.

It is a real implementation of the protocol, not a mock: it keeps jobs by name, so the
idempotency and re-attach rules can be tested without a subprocess.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_provider_mlops.backends.base import COMPLETED, IN_PROGRESS, STOPPED, JobSpec, JobState


class FakeComputeBackend:
    name = "fake"
    jobs: ClassVar[dict[str, JobState]] = {}
    submitted: ClassVar[list[str]] = []
    #: The state a newly submitted job takes; tests set it to IN_PROGRESS or FAILED.
    next_state: ClassVar[dict[str, Any]] = {"status": COMPLETED, "metrics": {"f1": 0.9}}

    def __init__(self, **_: Any) -> None:
        pass

    @classmethod
    def reset(cls) -> None:
        cls.jobs.clear()
        cls.submitted.clear()
        cls.next_state = {"status": COMPLETED, "metrics": {"f1": 0.9}}

    def serialize(self) -> dict[str, Any]:
        return {}

    def submit(self, spec: JobSpec) -> JobState:
        if spec.name not in self.jobs:
            self.submitted.append(spec.name)
            self.jobs[spec.name] = JobState(
                name=spec.name,
                model_uri=f"fake://{spec.name}/model" if spec.kind == "training" else None,
                output_uri=f"fake://{spec.name}/output",
                **self.next_state,
            )
        return self.jobs[spec.name]

    def poll(self, name: str) -> JobState:
        return self.jobs[name]

    def stop(self, name: str) -> None:
        state = self.jobs.get(name)
        if state is not None and state.status == IN_PROGRESS:
            self.jobs[name] = JobState(name=name, status=STOPPED, failure_reason="stopped on request")
