"""
Worker-slot occupancy: seconds a LocalExecutor worker slot is held per train pipeline run, against
the seconds the remote jobs took, on the real runtime (``runtime_latency.bench_world``: the
real-runtime suite's world, the four Airflow components as separate processes).

One train run (train → evaluate → gate → register → notify) per backend and round:

- **local**: the breast-cancer example, published as CI's publish job leaves it. Its jobs
  are local subprocesses; their seconds come from the job folder (``spec.json`` written at submit,
  ``status.json`` written when the job exited).
- **SageMaker (moto)**: the breast-cancer-sagemaker example (``aws.poll_interval_seconds: 1``),
  published the same way, on the world's moto server. moto completes jobs at once, so this process
  injects the wait into moto's state: each training and processing job is set ``InProgress`` on
  creation and ``Completed`` ``--hold`` seconds later (the processing job's ``evaluation.json`` is
  written to its S3 output as the container would). Those two instants are the remote seconds.
- **Kubernetes**: not measured. No cluster runs here, and the only stand-in the Kubernetes tests
  have (``FakePodsApi``, tests/kubernetes) is an in-memory object in the test process, which the
  runtime's worker and triggerer processes cannot reach. The table says so rather than showing a
  figure.

How slot time is measured: from what ran in a worker. A LocalExecutor worker slot runs one
workload at a time through Airflow's supervisor, which logs ``Workload finished ... duration=<s>
final_state=<state> workload_id=<task instance id>`` when it returns (the workers are the
scheduler's children, so this lands in the scheduler's log). A task that defers is two workloads:
one that submits and defers, one that resumes after the trigger fired. The supervisor's duration
covers the task process from its fork to its exit, so the sum of these durations over a run's
task instances is the slot-seconds (only the executor's hand-over of the workload to the worker
is outside it); each workload's interval is ``[end - duration, end]``. *While a job ran* is the
part of those intervals that overlaps a remote job's running interval: the goal is 0. The
triggerer's share is the span of each task's ``attempt=N.log.trigger.M.log``.

Run from the repository root::

    .venv/bin/python benchmarks/slot_occupancy.py [--runs 2] [--hold 20] [--timeout 900]

About 4 minutes with the defaults on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from runtime_latency import (  # noqa: E402
    DEFERRING_TASKS,
    EXAMPLE,
    bench_world,
    epoch,
    local_job_intervals,
    publish,
    task_instances,
    task_log_files,
    time_limit,
    wait_for_dags,
    wait_run,
    write_report,
)

SAGEMAKER_EXAMPLE = REPO / "examples" / "breast-cancer-sagemaker"
KUBERNETES_GAP = ("no cluster runs here; the Kubernetes tests' stand-in pods API is an in-memory object that "
                  "the runtime's worker and triggerer processes cannot reach")


# --- pure figures (tests/performance/test_benchmarks_smoke.py) ---------------------------------


WORKLOAD_FINISHED = re.compile(
    r"^(?P<end>\S+Z) \[info\s*\] Workload finished\s+\[supervisor\] duration=(?P<duration>[0-9.]+) "
    r".*?final_state=(?P<state>\S+) .*?workload_id=(?P<id>[0-9a-f-]+)"
)


def workloads(executor_log: str) -> dict[str, list[tuple[float, float, str]]]:
    """Task instance id -> (start, end, final state) of each workload a LocalExecutor worker's supervisor ran for it."""
    found: dict[str, list[tuple[float, float, str]]] = {}
    for line in executor_log.splitlines():
        match = WORKLOAD_FINISHED.match(line)
        if match:
            end = epoch(match["end"])
            found.setdefault(match["id"], []).append((end - float(match["duration"]), end, match["state"]))
    return found


def run_workloads(world: Any, tis: dict[str, dict[str, Any]], timeout: float = 60) -> dict[str, list[tuple[float, float, str]]]:
    """
    The workloads of a run's task instances, once every successful one's last workload is logged.

    A supervisor logs ``Workload finished`` after it reported the task's state, so a run can read
    success before its last workloads have freed their slots: wait for them (bounded).
    """
    log = world.airflow.log_path("scheduler")
    deadline = time.monotonic() + timeout
    while True:
        found = workloads(log.read_text(errors="replace"))
        missing = [task for task, ti in tis.items()
                   if ti["state"] == "success" and not any(state == "success" for *_, state in found.get(ti["id"], []))]
        if not missing:
            return found
        if time.monotonic() > deadline:
            raise SystemExit(f"tasks {missing} succeeded, but no worker reported finishing them within {timeout:.0f} s "
                             f"(no 'Workload finished ... final_state=success' for them in {log})")
        time.sleep(0.5)


def task_log_ends(log_text: str) -> list[float]:
    """The last timestamp of each block a worker's task runner wrote to ``attempt=N.log`` (one per workload)."""
    ends: list[float] = []
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not record.get("timestamp"):
            continue
        if record.get("event") == "::group::Pre Execute" or not ends:
            ends.append(epoch(record["timestamp"]))
        else:
            ends[-1] = max(ends[-1], epoch(record["timestamp"]))
    return ends


def until_last_line(blocks: list[tuple[float, float]], log_ends: list[float]) -> list[tuple[float, float]]:
    """Each workload cut at its task runner's last log line: the task's own part of the slot, without the supervisor's tail."""
    return [(start, min(end, last)) for (start, end), last in zip(blocks, log_ends, strict=False)]


def log_span(log_text: str) -> float:
    """First to last timestamp of a JSON-lines task log (a triggerer's wait)."""
    stamps = []
    for line in log_text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("timestamp"):
            stamps.append(epoch(record["timestamp"]))
    return max(stamps) - min(stamps) if stamps else 0.0


def overlap(blocks: list[tuple[float, float]], intervals: list[tuple[float, float]]) -> float:
    """Seconds of ``blocks`` that fall inside any of ``intervals`` (intervals must not overlap each other)."""
    return sum(max(0.0, min(b1, i1) - max(b0, i0)) for b0, b1 in blocks for i0, i1 in intervals)


def occupancy(blocks: list[tuple[float, float]], remote: list[tuple[float, float]]) -> dict[str, float]:
    slot = sum(last - first for first, last in blocks)
    remote_s = sum(end - start for start, end in remote)
    return {"slot_s": slot, "starts": float(len(blocks)), "remote_s": remote_s,
            "slot_while_waiting_s": overlap(blocks, remote),
            "slot_per_remote_s": slot / remote_s if remote_s > 0 else float("nan")}


# --- SageMaker on moto: jobs held InProgress ------------------------------------------------------


def hold_sagemaker_jobs(world: Any, hold: float) -> dict[str, tuple[float, float]]:
    """Patch the world's in-process moto: every job stays InProgress ``hold`` seconds; returns job → (start, end)."""
    from moto.s3.models import s3_backends
    from moto.sagemaker.models import SageMakerModelBackend

    sys.path.insert(0, str(REPO / "tests" / "sagemaker"))
    from sagemaker_testenv import ACCOUNT, GOOD_EVALUATION, patch_moto_model_package_tags

    patch_moto_model_package_tags()
    held: dict[str, tuple[float, float]] = {}
    create_training, create_processing = SageMakerModelBackend.create_training_job, SageMakerModelBackend.create_processing_job

    def hold_job(job: Any, name: str, status_attr: str) -> None:
        started = time.time()
        setattr(job, status_attr, "InProgress")

        def complete() -> None:
            time.sleep(hold)
            held[name] = (started, time.time())  # recorded first: the job is done once it reads Completed
            setattr(job, status_attr, "Completed")
            if status_attr == "training_job_status":
                job.secondary_status = "Completed"

        threading.Thread(target=complete, daemon=True).start()

    def training(self: Any, **kwargs: Any) -> Any:
        job = create_training(self, **kwargs)
        job.secondary_status = "Training"
        hold_job(job, kwargs["training_job_name"], "training_job_status")
        return job

    def processing(self: Any, **kwargs: Any) -> Any:
        job = create_processing(self, **kwargs)
        for output in kwargs["processing_output_config"]["Outputs"]:  # what the evaluation container uploads
            bucket, _, prefix = output["S3Output"]["S3Uri"][5:].partition("/")
            s3_backends[ACCOUNT]["aws"].put_object(bucket, f"{prefix.rstrip('/')}/evaluation.json",
                                                   json.dumps(GOOD_EVALUATION).encode())
        hold_job(job, kwargs["processing_job_name"], "processing_job_status")
        return job

    SageMakerModelBackend.create_training_job = training  # type: ignore[method-assign, assignment]
    SageMakerModelBackend.create_processing_job = processing  # type: ignore[method-assign, assignment]
    return held


def publish_sagemaker_example(world: Any) -> str:
    """Publish the SageMaker example (polling every second) and create its S3 buckets on moto; its model name."""
    s3 = world.boto("s3")
    for bucket in ("mlops-data-123456789012", "mlops-artifacts-123456789012"):
        s3.create_bucket(Bucket=bucket)
    publish(world, SAGEMAKER_EXAMPLE, "breast-cancer-sagemaker",
            {"mlops.yaml": ("  conn_id: aws_default\n", "  conn_id: aws_default\n  poll_interval_seconds: 1\n")})
    return "breast-cancer-sagemaker"


# --- the benchmark -------------------------------------------------------------------------------


def measure_run(world: Any, model: str, tag: str, remote: Any) -> dict[str, Any]:
    dag_id = f"mlops__demo__{model}__train"
    run_id = f"slot-bench-{tag}"
    world.api().trigger_dag_run(dag_id, run_id, {"requested_by": "benchmark"})
    wait_run(world, dag_id, run_id)
    tis = task_instances(world, dag_id, run_id)
    executed = run_workloads(world, tis)
    blocks: list[tuple[float, float]] = []
    task_parts: list[tuple[float, float]] = []
    tails: list[float] = []  # per workload: the supervisor's report after the task's last log line
    triggerer_s = 0.0
    per_task: dict[str, dict[str, float]] = {}
    for task_id, ti in tis.items():
        task_blocks = [(start, end) for start, end, _ in executed.get(ti["id"], [])]
        logs = task_log_files(world, dag_id, run_id, task_id)
        parts = until_last_line(task_blocks, [e for name, text in logs.items() if ".trigger." not in name
                                              for e in task_log_ends(text)])
        task_parts += parts
        tails += [end - cut for (_, end), (_, cut) in zip(task_blocks, parts, strict=False)]
        waits = sum(log_span(text) for name, text in logs.items() if ".trigger." in name)
        blocks += task_blocks
        triggerer_s += waits
        per_task[task_id] = {"slot_s": sum(b - a for a, b in task_blocks), "starts": len(task_blocks), "triggerer_s": waits}
    intervals = remote(dag_id, run_id)
    return {"run_id": run_id, **occupancy(blocks, intervals), "task_while_waiting_s": overlap(task_parts, intervals),
            "supervisor_tails_s": tails,
            "triggerer_s": triggerer_s, "tasks": per_task,
            "remote_intervals": intervals}


def measure(root: Path, runs: int, hold: float) -> dict[str, list[dict[str, Any]]]:
    from airflow_provider_mlops.naming import job_name

    with bench_world(root) as world:
        held = hold_sagemaker_jobs(world, hold)
        sagemaker_model = publish_sagemaker_example(world)
        publish(world, EXAMPLE, "breast-cancer")
        wait_for_dags(world, ["mlops__demo__breast-cancer__train", f"mlops__demo__{sagemaker_model}__train"])

        def sagemaker_jobs(dag_id: str, run_id: str) -> list[tuple[float, float]]:
            names = [job_name(dag_id, run_id, task_id) for task_id in DEFERRING_TASKS]  # the operators' own names
            missing = [n for n in names if n not in held]
            if missing:
                raise SystemExit(f"SageMaker jobs {missing} of {dag_id} run {run_id} were never held by moto: {sorted(held)}")
            return [held[n] for n in names]

        backends = {"local": ("breast-cancer", lambda dag_id, run_id: local_job_intervals(world, dag_id, run_id)),
                    "sagemaker": (sagemaker_model, sagemaker_jobs)}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in backends}
        for i in range(runs):
            for name, (model, remote) in (backends.items() if i % 2 == 0 else reversed(backends.items())):
                row = measure_run(world, model, f"{name}-{i}", remote)
                results[name].append(row)
                print(f"  round {i + 1}/{runs} {name}: slot {row['slot_s']:.2f} s in {row['starts']:.0f} starts, "
                      f"remote {row['remote_s']:.1f} s, while waiting {row['slot_while_waiting_s']:.2f} s", flush=True)
    return results


def table(results: dict[str, list[dict[str, Any]]], hold: float) -> tuple[str, dict[str, Any]]:
    for rows in results.values():
        for row in rows:  # the job tasks' own share: train and evaluate, both workloads each
            row["job_tasks_slot_s"] = sum(row["tasks"][task]["slot_s"] for task in DEFERRING_TASKS)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(r[key]) for r in rows)

    keys = ("remote_s", "slot_s", "starts", "job_tasks_slot_s", "slot_while_waiting_s", "task_while_waiting_s",
            "slot_per_remote_s", "triggerer_s")
    lines = [
        f"| backend (median of {len(results['local'])} train runs) | remote jobs s | worker slot s (all tasks) | "
        "worker starts | train + evaluate slot s | slot s while a job ran | of which before the task's last log line | "
        "slot s per remote s | triggerer s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    labels = {"local": "local (subprocess jobs)", "sagemaker": f"SageMaker on moto (jobs held InProgress {hold:.0f} s)"}
    figures: dict[str, Any] = {}
    for name, rows in results.items():
        figures[name] = {key: med(rows, key) for key in keys}
        f = figures[name]
        lines.append(f"| {labels[name]} | {f['remote_s']:.1f} | {f['slot_s']:.2f} | {f['starts']:.0f} | "
                     f"{f['job_tasks_slot_s']:.2f} | {f['slot_while_waiting_s']:.2f} | {f['task_while_waiting_s']:.2f} | "
                     f"{f['slot_per_remote_s']:.3f} | "
                     f"{f['triggerer_s']:.1f} |")
    lines.append("| Kubernetes | not measured | – | – | – | – | – | – | – |")
    worst = max(f["slot_while_waiting_s"] for f in figures.values())
    worst_task = max(f["task_while_waiting_s"] for f in figures.values())
    all_tails = [t for rows in results.values() for row in rows for t in row["supervisor_tails_s"]]
    long_tails = [t for t in all_tails if t > 1.0]
    lines += [
        "",
        f"Worker-slot seconds while a remote job ran: at most **{worst:.2f} s** per run (goal 0), of which at most "
        f"**{worst_task:.2f} s** before the submitting task's last log line. No slot waits on a job: train and "
        "evaluate submit, defer and resume only after the job ended (the triggerer waits). What overlaps is the tail "
        "of each submitting workload: the job starts at submit, and the slot is free once the task process has "
        "deferred and exited and the supervisor has noticed. "
        f"{len(long_tails)} of {len(all_tails)} workloads were reported finished more than "
        f"1 s after the task's last log line (median {statistics.median(long_tails) if long_tails else 0:.1f} s): "
        "time in Airflow's supervisor after the task itself was done; when that lands on a submitting workload it "
        "overlaps the job. Kubernetes is not measured: " + KUBERNETES_GAP + ".",
        "Slot seconds are the LocalExecutor supervisor's own durations of every workload of the run (`Workload "
        "finished ... duration=`; a deferring task is two workloads, *worker starts* counts them). Remote seconds: the "
        "local job folders' submit and exit times; on moto, the instants this script set each job InProgress and "
        "Completed. The machine is 2 shared cores: seconds move with its load, the ratios are what count.",
    ]
    return "\n".join(lines) + "\n", figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="train runs per backend (default 2)")
    parser.add_argument("--hold", type=float, default=20, help="seconds each moto job stays InProgress (default 20)")
    parser.add_argument("--timeout", type=float, default=900, help="stop everything after this many seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed after")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.hold <= 0:
        parser.error(f"--runs {args.runs} --hold {args.hold}: --runs must be at least 1 and --hold more than 0 seconds")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-slot-bench-"))
    started = time.perf_counter()
    try:
        with time_limit(args.timeout):
            results = measure(workdir, args.runs, args.hold)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text, figures = table(results, args.hold)
    text = (f"### Worker-slot occupancy (real runtime)\n\n{text}"
            f"Benchmark wall time: {time.perf_counter() - started:.0f} s (runtime start and publish included).\n")
    write_report(text, {"figures": figures, "hold_s": args.hold, "kubernetes": f"not measured: {KUBERNETES_GAP}",
                        "runs": results}, args.markdown, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
