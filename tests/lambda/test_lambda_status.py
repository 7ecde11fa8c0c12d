"""
The status query: its validation (hostile queries are refused before any Airflow call), the log
tail it carries, and the self-hosted path against the real api-server of trigger_testenv.py.

That stack has no scheduler, so a run the trigger creates stays queued; status_testenv.py puts a
run in the other states (failed with a log, awaiting approval, succeeded) as Airflow would.
"""

from __future__ import annotations

import json

import handler
import pytest
from mlops_trigger.app import handle
from mlops_trigger.errors import EventError
from mlops_trigger.event import RUN_ID_RE, decode_payload, parse_event
from mlops_trigger.logs import get_logger
from mlops_trigger.settings import Settings
from mlops_trigger.status import MAX_FAILED_LOGS, STATUS_FIELDS, parse_status_query, read_status
from mlops_trigger.targets import TaskInstance
from mlops_trigger.tasklog import MAX_CHARS, MAX_LINES, log_tail
from status_testenv import (
    FAILED_TASK_LOG,
    HOSTILE_QUERIES,
    await_approval,
    fail_run,
    status_query,
    succeed_run,
)
from trigger_testenv import ECR_REGISTRY, MODEL, PROJECT, Context, valid_event


@pytest.mark.parametrize(
    ("name", "raw", "status", "code", "field"), HOSTILE_QUERIES, ids=[case[0] for case in HOSTILE_QUERIES]
)
def test_hostile_status_queries_are_refused_with_a_clear_4xx(name, raw, status, code, field):
    with pytest.raises(EventError) as caught:
        parse_status_query(decode_payload(raw))
    error = caught.value
    assert (error.status, error.code, error.field) == (status, code, field)
    assert len(error.message) < 400, "messages quote bad values shortened"


class UnreachableTarget:
    """A target that fails the test when the handler calls it: nothing hostile may reach Airflow."""

    name = "airflow"

    def __getattr__(self, method):
        raise AssertionError(f"the handler called Airflow ({method}) for a refused status query")


@pytest.mark.parametrize(
    ("name", "raw", "status", "code", "field"), HOSTILE_QUERIES, ids=[case[0] for case in HOSTILE_QUERIES]
)
def test_hostile_status_queries_never_reach_airflow(name, raw, status, code, field):
    settings = Settings.from_env(
        {
            "MLOPS_AIRFLOW_API_URL": "http://127.0.0.1:9",
            "MLOPS_AIRFLOW_TOKEN": "t",
            "MLOPS_ECR_REGISTRY": ECR_REGISTRY,
        }
    )
    answer = handle(raw, Context(), settings=settings, target=UnreachableTarget(), logger=get_logger())
    assert (answer["statusCode"], answer["error"], answer.get("field")) == (status, code, field), answer
    assert answer["ok"] is False and answer["message"]


def test_there_are_enough_hostile_status_queries():
    assert len(HOSTILE_QUERIES) >= 20
    assert {case[4] for case in HOSTILE_QUERIES} >= set(STATUS_FIELDS) - {"action"}


def test_every_run_id_the_trigger_makes_is_one_a_status_query_accepts():
    for version in ("0.0.0", "1.0.7", "999999.999999.999999999"):
        for action in ("train", "deploy", "retrain"):
            run_id = parse_event(
                valid_event(version=version, action=action), ecr_registry=ECR_REGISTRY
            ).run_id
            assert RUN_ID_RE.fullmatch(run_id)
            query = parse_status_query(status_query(kind=action, dag_run_id=run_id))
            assert query.dag_id == f"mlops__{PROJECT}__{MODEL}__{action}"


def test_the_trigger_event_contract_is_unchanged_by_the_status_action():
    """``parse_event`` still refuses ``action: status``: only the handler routes it, to the status query."""
    with pytest.raises(EventError, match="action 'status' is not one of train, deploy, retrain"):
        parse_event(valid_event(action="status"), ecr_registry=ECR_REGISTRY)


# --- the log tail ---------------------------------------------------------------------------


def test_log_tail_keeps_what_matters_from_a_real_task_log():
    tail = log_tail(FAILED_TASK_LOG)
    assert tail.splitlines() == [
        "WARNING Unable to find AWS Connection ID 'aws_default', switching to empty.",
        "INFO training job demo-breast-cancer-train-1 started",
        "ERROR Task failed with exception",
        '  File "/opt/mlops/operators/train.py", line 88, in execute_complete',
        "TrainingFailedError: training job demo-breast-cancer-train-1 failed: ValueError: boom",
    ]


def test_log_tail_is_bounded_and_keeps_the_end():
    entries = [{"level": "info", "event": f"line {n} " + "x" * 50} for n in range(100)]
    tail = log_tail(entries)
    lines = tail.splitlines()
    assert len(lines) == MAX_LINES and lines[-1].startswith("INFO line 99 ")
    assert len(log_tail([{"event": "y" * 400}] * 20)) <= MAX_CHARS
    huge = log_tail([{"level": "error", "event": "z" * 5000 + " the end"}], max_chars=100)
    assert len(huge) <= 100


def test_log_tail_reads_plain_lines_and_cloudwatch_json_text():
    tail = log_tail(["plain text line", json.dumps({"level": "error", "event": "from CloudWatch"}), 7, None])
    assert tail.splitlines() == ["plain text line", "ERROR from CloudWatch"]
    assert log_tail("not a list") == ""


def test_log_tail_shows_a_chained_exception_cause_first():
    entry = {
        "level": "error",
        "event": "Task failed with exception",
        "error_detail": [
            {
                "exc_type": "RuntimeError",
                "exc_value": "outer",
                "frames": [{"filename": "a.py", "lineno": 2, "name": "f"}],
            },
            {"exc_type": "KeyError", "exc_value": "'inner'\nsecond line", "is_cause": True, "frames": []},
        ],
    }
    assert log_tail([entry]).splitlines() == [
        "ERROR Task failed with exception",
        "KeyError: 'inner'",
        "second line",
        '  File "a.py", line 2, in f',
        "RuntimeError: outer",
    ]


# --- against the real api-server ----------------------------------------------------------------


@pytest.fixture
def airflow_target(clean_env, airflow_stack):
    for key, value in airflow_stack.lambda_env().items():
        clean_env.setenv(key, value)
    return airflow_stack


def invoke(event):
    return handler.handler(event, Context())


def started_run(version, action="train"):
    answer = invoke(valid_event(version=version, action=action, requested_by=f"gitlab:status:{version}"))
    assert answer["statusCode"] == 201, answer
    return answer


def test_a_created_run_is_queued_with_its_tasks_and_link(airflow_target):
    run = started_run("3.1.1")
    answer = invoke(status_query(dag_run_id=run["dag_run_id"]))
    assert answer["statusCode"] == 200, answer
    assert answer["ok"] and answer["target"] == "airflow"
    assert (answer["dag_id"], answer["dag_run_id"]) == (run["dag_id"], run["dag_run_id"])
    assert answer["state"] == "queued"
    assert answer["tasks"] and all(state is None for state in answer["tasks"].values())
    assert answer["waiting_for_approval"] is False and answer["failed"] == []
    assert answer["url"] == f"{airflow_target.base_url}/dags/{run['dag_id']}/runs/{run['dag_run_id']}"


def test_a_status_query_through_a_function_url_is_answered(airflow_target):
    run = started_run("3.1.2")
    wrapped = {
        "headers": {},
        "requestContext": {},
        "body": json.dumps(status_query(dag_run_id=run["dag_run_id"])),
    }
    answer = invoke(wrapped)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["state"] == "queued"


def test_an_unknown_run_is_a_404(airflow_target):
    answer = invoke(status_query(dag_run_id="trigger__9.9.9__ffffffffffffffffffff"))
    assert (answer["statusCode"], answer["error"]) == (404, "run_not_found")
    assert "MLOPS_DAG_RUN_ID" in answer["message"]


def test_a_run_is_only_found_under_its_own_kind_and_model(airflow_target):
    run = started_run("3.1.3")
    assert invoke(status_query(kind="deploy", dag_run_id=run["dag_run_id"]))["statusCode"] == 404
    assert invoke(status_query(model="other", dag_run_id=run["dag_run_id"]))["statusCode"] == 404


def test_a_failed_run_names_the_failed_task_and_its_log_tail(airflow_target):
    run = started_run("3.1.4")
    task_id = fail_run(airflow_target, run["dag_id"], run["dag_run_id"])
    answer = invoke(status_query(dag_run_id=run["dag_run_id"]))
    assert answer["state"] == "failed", answer
    assert answer["tasks"][task_id] == "failed"
    (failure,) = answer["failed"]
    assert (failure["task_id"], failure["try_number"]) == (task_id, 1)
    tail = failure["log_tail"]
    assert tail.endswith(
        "TrainingFailedError: training job demo-breast-cancer-train-1 failed: ValueError: boom"
    )
    assert "::group::" not in tail and "DAG bundles loaded" not in tail and "debug line" not in tail
    assert "\x1b" not in tail and len(tail) <= MAX_CHARS


def test_a_failed_task_without_a_log_still_gets_an_answer(airflow_target):
    run = started_run("3.1.5")
    task_id = fail_run(airflow_target, run["dag_id"], run["dag_run_id"], entries=[])
    (failure,) = invoke(status_query(dag_run_id=run["dag_run_id"]))["failed"]
    assert failure["task_id"] == task_id and failure["log_tail"]


def test_a_run_waiting_for_approval_says_so(airflow_target):
    run = started_run("3.1.6", action="deploy")
    task_id = await_approval(airflow_target, run["dag_id"], run["dag_run_id"])
    answer = invoke(status_query(kind="deploy", dag_run_id=run["dag_run_id"]))
    assert answer["state"] == "running" and answer["waiting_for_approval"] is True, answer
    assert answer["tasks"][task_id] == "awaiting_input"


def test_a_successful_run(airflow_target):
    run = started_run("3.1.7")
    succeed_run(airflow_target, run["dag_id"], run["dag_run_id"])
    answer = invoke(status_query(dag_run_id=run["dag_run_id"]))
    assert answer["state"] == "success" and answer["failed"] == []


def test_the_ui_address_can_differ_from_the_api(airflow_target, clean_env):
    run = started_run("3.1.8")
    clean_env.setenv("MLOPS_AIRFLOW_UI_URL", "https://airflow.example.com/")
    answer = invoke(status_query(dag_run_id=run["dag_run_id"]))
    assert answer["url"] == f"https://airflow.example.com/dags/{run['dag_id']}/runs/{run['dag_run_id']}"


@pytest.mark.parametrize("ui_url", ["ftp://airflow", "https://admin:pw@airflow", "https://airflow/?x=1"])
def test_a_bad_ui_address_is_a_misconfigured_lambda(airflow_target, clean_env, ui_url):
    clean_env.setenv("MLOPS_AIRFLOW_UI_URL", ui_url)
    answer = invoke(status_query())
    assert (answer["statusCode"], answer["error"]) == (500, "lambda_misconfigured")
    assert "MLOPS_AIRFLOW_UI_URL" in answer["message"] and "pw" not in answer["message"]


def test_status_logs_are_json_lines_without_credentials(airflow_target, capsys):
    run = started_run("3.1.9")
    capsys.readouterr()
    invoke(status_query(dag_run_id=run["dag_run_id"]))
    invoke(status_query(dag_run_id="~"))
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["outcome"] for r in records] == ["status", "rejected"]
    assert records[0]["state"] == "queued" and records[0]["dag_run_id"] == run["dag_run_id"]
    assert airflow_target.password not in json.dumps(records)


def test_unreachable_airflow_is_a_504_for_status_too(clean_env):
    clean_env.setenv("MLOPS_AIRFLOW_API_URL", "http://127.0.0.1:9")
    clean_env.setenv("MLOPS_AIRFLOW_TOKEN", "t")
    clean_env.setenv("MLOPS_ECR_REGISTRY", ECR_REGISTRY)
    answer = invoke(status_query())
    assert (answer["statusCode"], answer["error"]) == (504, "airflow_unreachable")


# --- the answer, from what a target reads ---------------------------------------------------------


class RecordedTarget:
    """A target that answers from fixed task instances and records the logs it is asked for."""

    name = "airflow"

    def __init__(self, instances):
        self.instances = instances
        self.logs_read = []

    def dag_run_state(self, dag_id, run_id):
        return "failed"

    def task_instances(self, dag_id, run_id):
        return self.instances

    def task_log(self, dag_id, run_id, task):
        self.logs_read.append(task.key)
        return [{"level": "error", "event": f"{task.key} broke"}]


def test_mapped_tasks_and_the_bound_on_logs_read():
    instances = [TaskInstance("score", "failed", 2, index) for index in range(MAX_FAILED_LOGS + 1)]
    instances.append(TaskInstance("notify", "upstream_failed", 0))
    target = RecordedTarget(instances)
    answer = read_status(target, parse_status_query(status_query()), ui_url=None)
    assert answer["tasks"] == {
        **{f"score[{i}]": "failed" for i in range(MAX_FAILED_LOGS + 1)},
        "notify": "upstream_failed",
    }
    assert target.logs_read == [f"score[{i}]" for i in range(MAX_FAILED_LOGS)]
    assert [f["map_index"] for f in answer["failed"]] == list(range(MAX_FAILED_LOGS + 1))
    assert answer["failed"][0]["log_tail"] == "ERROR score[0] broke"
    assert answer["failed"][-1]["log_tail"].startswith("(log not read")
    assert answer["url"] is None
