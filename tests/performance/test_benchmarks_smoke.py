"""
The real-runtime benchmarks' own parts, quickly: their figures from fixed inputs, and the no-op
floor's DAG file against the factory's real DAGs. Nothing here is timed; the benchmarks
themselves are scripts (benchmarks/runtime_latency.py, benchmarks/slot_occupancy.py).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import e2e_local  # noqa: E402
import runtime_latency  # noqa: E402
import slot_occupancy  # noqa: E402

# Two lines as a LocalExecutor worker's supervisor writes them (Airflow 3.3, the scheduler's log).
EXECUTOR_LOG = """\
2026-12-03T12:11:01.612159Z [info     ] Workload finished              [supervisor] duration=0.6321517139986099 \
exit_code=0 final_state=deferred loc=supervisor.py:2658 workload_id=01a23bd0-a919-791e-8629-366fc3694259 workload_type=ExecuteTask
2026-12-03T12:11:01.700000Z [info     ] Task instance is in running state [task] dag_id=x
2026-12-03T12:11:08.559503Z [info     ] Workload finished              [supervisor] duration=1.0268363439990935 \
exit_code=0 final_state=success loc=supervisor.py:2658 workload_id=01a23bd0-a919-791e-8629-366fc3694259 workload_type=ExecuteTask
2026-12-03T12:11:20.101212Z [info     ] Workload finished              [supervisor] duration=1.5 \
exit_code=0 final_state=success loc=supervisor.py:2658 workload_id=01a23bd0-a91a-7b18-8444-000000000000 workload_type=ExecuteTask
"""
TRIGGER_LOG = """\
{"timestamp":"2026-12-03T12:06:09.371864Z","level":"info","event":"trigger starting"}
not json
{"timestamp":"2026-12-03T12:06:10.389312Z","level":"info","event":"Trigger fired event"}
"""


def test_workloads_are_read_per_task_instance_with_their_intervals() -> None:
    found = slot_occupancy.workloads(EXECUTOR_LOG)
    deferred = found["01a23bd0-a919-791e-8629-366fc3694259"]
    assert len(deferred) == 2 and len(found) == 2
    (start1, end1, state1), (start2, end2, state2) = deferred
    assert (state1, state2) == ("deferred", "success")
    assert end1 - start1 == pytest.approx(0.6321517139986099)
    assert end2 == pytest.approx(runtime_latency.epoch("2026-12-03T12:11:08.559503Z"))
    assert end2 - start2 == pytest.approx(1.0268363439990935)


def test_slot_seconds_while_a_job_ran_count_only_the_overlap() -> None:
    blocks = [(0.0, 1.0), (30.0, 31.5)]  # submit and defer; resume after the job
    remote = [(0.8, 29.0)]
    figures = slot_occupancy.occupancy(blocks, remote)
    assert figures["slot_s"] == pytest.approx(2.5)
    assert figures["starts"] == 2
    assert figures["remote_s"] == pytest.approx(28.2)
    assert figures["slot_while_waiting_s"] == pytest.approx(0.2)
    assert figures["slot_per_remote_s"] == pytest.approx(2.5 / 28.2)
    waiting_in_the_worker = slot_occupancy.occupancy([(0.0, 29.5)], remote)
    assert waiting_in_the_worker["slot_while_waiting_s"] == pytest.approx(28.2)
    assert math.isnan(slot_occupancy.occupancy(blocks, [])["slot_per_remote_s"])


WORKER_LOG = """\
{"timestamp":"2026-12-03T12:35:09.132Z","event":"::group::Pre Execute"}
{"timestamp":"2026-12-03T12:35:10.288Z","event":"Pausing task as DEFERRED. "}
{"timestamp":"2026-12-03T12:35:10.371Z","event":"::endgroup::"}
{"timestamp":"2026-12-03T12:35:32.531Z","event":"::group::Pre Execute"}
{"timestamp":"2026-12-03T12:35:33.000Z","event":"::endgroup::"}
"""


def test_a_workload_is_cut_at_its_task_runners_last_log_line() -> None:
    ends = slot_occupancy.task_log_ends(WORKER_LOG)
    assert ends == pytest.approx([runtime_latency.epoch("2026-12-03T12:35:10.371Z"), runtime_latency.epoch("2026-12-03T12:35:33Z")])
    workloads = [(ends[0] - 1.3, ends[0] + 5.0), (ends[1] - 0.5, ends[1] + 0.03)]
    parts = slot_occupancy.until_last_line(workloads, ends)
    assert [end - start for start, end in parts] == pytest.approx([1.3, 0.5])


def test_a_trigger_log_span_is_first_to_last_timestamp() -> None:
    assert slot_occupancy.log_span(TRIGGER_LOG) == pytest.approx(1.017448)
    assert slot_occupancy.log_span("") == 0.0


def test_the_latency_ratio_takes_the_jobs_out_and_refuses_an_empty_floor() -> None:
    assert runtime_latency.floor_ratio(real_total=40.0, job_seconds=10.0, noop_total=20.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="no-op floor took 0"):
        runtime_latency.floor_ratio(1.0, 0.0, 0.0)


def test_per_task_overhead_uses_each_tasks_last_leg() -> None:
    tis: dict[str, dict[str, Any]] = {
        "train": {"state": "success", "queued_when": "2026-12-03T12:06:12.077Z", "start_date": "2026-12-03T12:06:07.240Z",
                  "end_date": "2026-12-03T12:06:12.392Z"},
        "gate": {"state": "success", "queued_when": "2026-12-03T12:06:18.504Z", "start_date": "2026-12-03T12:06:18.519Z",
                 "end_date": "2026-12-03T12:06:18.782Z"},
        "gate_passed": {"state": "skipped", "queued_when": None, "start_date": None, "end_date": None},
    }
    legs = runtime_latency.task_overheads(tis, deferred={"train"})
    assert legs["queued_to_success"] == pytest.approx([0.278, 0.315], abs=1e-5)  # gate, train (sorted by task id)
    assert legs["queued_to_running"] == pytest.approx([0.015], abs=1e-5)  # a deferred task's start_date is its first start


def test_the_floor_dag_file_copies_the_factorys_shapes_with_worker_run_no_ops(tmp_path: Path, airflow_db: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    configs = e2e_local.prepare(tmp_path)  # the example with approval: auto, and a dags folder
    (tmp_path / "dags" / "noop_dags.py").unlink()
    (tmp_path / "dags" / "bench_noop_dags.py").write_text(runtime_latency.NOOP_DAG_FILE)
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(configs))
    monkeypatch.setenv("MLOPS_PARSE_CACHE_DIR", "off")
    bag = DagBag(str(tmp_path / "dags"))
    assert not bag.import_errors, bag.import_errors
    for kind in ("train", "deploy"):
        real, noop = bag.get_dag(f"mlops__demo__breast-cancer__{kind}"), bag.get_dag(f"mlops__noop__breast-cancer__{kind}")
        assert noop is not None, sorted(bag.dags)
        assert {t.task_id: sorted(t.upstream_task_ids) for t in noop.tasks} == {
            t.task_id: sorted(t.upstream_task_ids) for t in real.tasks}
        for task in noop.tasks:
            expected = "DeferringNoop" if kind == "train" and task.task_id in runtime_latency.DEFERRING_TASKS else "PythonOperator"
            assert type(task).__name__ == expected, task.task_id  # never EmptyOperator: that skips the worker
    assert "mlops__noop__breast-cancer__retrain" not in bag.dags


def _latency_row(total: float, job: float, warmup: bool = False) -> dict[str, object]:
    ti = {"state": "success", "queued_when": "2026-12-03T12:00:00Z", "start_date": "2026-12-03T12:00:01Z",
          "end_date": "2026-12-03T12:00:02Z"}
    tasks = {kind: {"run_id": "r", "tis": {"gate": ti}} for kind in ("train", "deploy")}
    return {"total_s": total, "job_s": job, "train_s": total / 2, "deploy_s": total / 2, "first_prediction_s": 0.01,
            "tasks": tasks, "warmup": warmup}


def test_the_latency_table_takes_the_ratio_within_each_round_and_leaves_the_warm_up_out() -> None:
    results = {"real": [_latency_row(999.0, 0.0, warmup=True), _latency_row(40.0, 10.0), _latency_row(30.0, 10.0)],
               "noop": [_latency_row(1.0, 0.0, warmup=True), _latency_row(20.0, 0.0), _latency_row(10.0, 0.0)]}
    text, figures = runtime_latency.table(results)
    assert figures["ratios"] == pytest.approx([1.5, 2.0])
    assert figures["ratio"] == pytest.approx(1.75)
    assert "**1.75×**" in text and "(median of 2)" in text
    assert "| 2.00 | 1.00 |" in text  # per task: queued → success, queued → running


def test_the_slot_table_shows_no_figure_for_kubernetes() -> None:
    def row(waiting: float) -> dict[str, object]:
        return {"remote_s": 20.0, "slot_s": 9.0, "starts": 8, "slot_while_waiting_s": waiting, "task_while_waiting_s": 0.1,
                "slot_per_remote_s": 0.45, "triggerer_s": 21.0, "supervisor_tails_s": [0.03, 5.02],
                "tasks": {"train": {"slot_s": 2.0}, "evaluate": {"slot_s": 3.0}}}

    text, figures = slot_occupancy.table({"local": [row(0.5)], "sagemaker": [row(0.25), row(0.75)]}, hold=10)
    assert figures["sagemaker"]["slot_while_waiting_s"] == pytest.approx(0.5)
    assert figures["local"]["job_tasks_slot_s"] == pytest.approx(5.0)
    assert "at most **0.50 s** per run (goal 0), of which at most **0.10 s**" in text
    assert "3 of 6 workloads" in text and "(median 5.0 s)" in text
    assert "| Kubernetes | not measured | – | – | – | – | – | – | – |" in text
