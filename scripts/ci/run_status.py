"""
Wait for the outcome of a DAG run that the trigger Lambda started, through the Lambda's status query.

    python3 scripts/ci/run_status.py wait --dotenv train.env --kind train|deploy|retrain \\
        --until finished|approval --timeout SECONDS --interval SECONDS

MLOPS_PROJECT and MLOPS_MODEL come from the environment, MLOPS_DAG_RUN_ID (and MLOPS_DAG_ID, which
must agree) from the dotenv that ``trigger.sh`` wrote. CI cannot reach Airflow (MWAA is private),
so every poll is a Lambda invocation, made the way ``ci_aws.py invoke`` makes it: the handler in
this process when MLOPS_TRIGGER_LOCAL_HANDLER is set (tests), else ``lambda:Invoke`` of
MLOPS_TRIGGER_FUNCTION.

==========================================  ====  ==================================================
the run                                     exit  printed
==========================================  ====  ==================================================
succeeded                                   0     ``run succeeded: <url>``
waits for approval (``--until approval``)   0     ``waiting for approval: <url>``
failed                                      1     ``run failed: <url>``, each failed task, its log tail
still going at ``--timeout``                1     ``timed out after <n>s ...: <url>``
refused by the Lambda (4xx)                 1     its message, at once
==========================================  ====  ==================================================

A 5xx answer (Airflow unreachable, a Lambda error) is printed and polled again until the timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from ci_aws import EXIT_FAILED, EXIT_RETRY, CiError, _invoke_lambda, _invoke_local

EXIT_DONE = 0
KINDS = ("train", "deploy", "retrain")
UNTIL = ("finished", "approval")
TERMINAL_STATES = ("success", "failed")
# Terminal escapes, then control characters but tab and newline: what Airflow sends is printed into a CI log.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def read_dotenv(path: str) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CiError(f"cannot read {path} ({exc.strerror}): the trigger job writes it") from None
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def status_event(args: argparse.Namespace) -> dict[str, str]:
    missing = [name for name in ("MLOPS_PROJECT", "MLOPS_MODEL") if not os.environ.get(name)]
    if missing:
        raise CiError(f"not set: {' '.join(missing)} (the prepare job's version.env)")
    dotenv = read_dotenv(args.dotenv)
    run_id = dotenv.get("MLOPS_DAG_RUN_ID")
    if not run_id:
        raise CiError(f"{args.dotenv} has no MLOPS_DAG_RUN_ID: did the trigger start a run?")
    project, model = os.environ["MLOPS_PROJECT"], os.environ["MLOPS_MODEL"]
    expected_dag = f"mlops__{project}__{model}__{args.kind}"
    if dotenv.get("MLOPS_DAG_ID", expected_dag) != expected_dag:
        raise CiError(
            f"{args.dotenv} names the DAG {dotenv['MLOPS_DAG_ID']}, not {expected_dag}: "
            "pass the dotenv of this kind's trigger"
        )
    return {"action": "status", "project": project, "model": model, "kind": args.kind, "dag_run_id": run_id}


def ask(event: dict[str, str]) -> Any:
    """One status query; :class:`CiError` with ``EXIT_RETRY`` when asking again may help."""
    payload = json.dumps(event).encode()
    if os.environ.get("MLOPS_TRIGGER_LOCAL_HANDLER"):
        return _invoke_local(payload)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _invoke_lambda(os.environ.get("MLOPS_TRIGGER_FUNCTION"), payload)
    except ClientError as exc:  # Lambda's own refusal: throttled or broken is worth another try
        error = exc.response.get("Error", {}).get("Code", "")
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        retry = http >= 500 or http == 429 or error in ("TooManyRequestsException", "ThrottlingException")
        raise CiError(f"lambda:Invoke failed: {error}", EXIT_RETRY if retry else EXIT_FAILED) from None
    except BotoCoreError as exc:
        raise CiError(f"lambda:Invoke did not answer: {type(exc).__name__}", EXIT_RETRY) from None


def wait(args: argparse.Namespace) -> int:
    event = status_event(args)
    started = time.monotonic()
    deadline = started + args.timeout
    where = f"{event['kind']} run {event['dag_run_id']} of {event['project']}/{event['model']}"
    url: str | None = None
    last_seen = ""
    polls = 0
    while True:
        polls += 1
        try:
            answer = ask(event)
        except CiError as exc:
            if exc.code != EXIT_RETRY:
                raise
            answer = {"statusCode": 502, "error": "lambda_error", "message": str(exc)}
        status = answer.get("statusCode") if isinstance(answer, dict) else None
        if isinstance(status, int) and 200 <= status < 300:
            url = answer.get("url") or url
            seen = progress(answer)
            if seen != last_seen:
                say(f"{where}: {seen}")
                last_seen = seen
            state = answer.get("state")
            if state == "success":
                say(f"run succeeded: {link(url, answer)}")
                others = {
                    task: task_state
                    for task, task_state in tasks_of(answer).items()
                    if task_state != "success"
                }
                if others:
                    say(
                        "  tasks that did not succeed: "
                        + clean(", ".join(f"{t} ({s})" for t, s in others.items()))
                    )
                return EXIT_DONE
            if state == "failed":
                report_failure(url, answer)
                return EXIT_FAILED
            if args.until == "approval" and answer.get("waiting_for_approval"):
                say(f"waiting for approval: {link(url, answer)}")
                for task_id, task_state in tasks_of(answer).items():
                    if task_state == "awaiting_input" and url:
                        say(clean(f"  approve or reject {task_id} at {url}/tasks/{task_id}/required_actions"))
                return EXIT_DONE
        else:
            message = answer.get("message") if isinstance(answer, dict) else answer
            error = answer.get("error") if isinstance(answer, dict) else "no_answer"
            if not (status is None or status >= 500):
                hint = ""
                if error == "invalid_event" and isinstance(answer, dict) and answer.get("field") == "action":
                    hint = " (this trigger Lambda predates the status query: deploy the current lambda zip)"
                raise CiError(
                    f"the trigger refused the status query ({status} {error}): {clean(str(message))}{hint}"
                )
            say(f"status query failed ({status} {error}): {clean(str(message))}; asking again")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            elapsed = round(time.monotonic() - started)
            say(
                f"timed out after {elapsed}s ({polls} status queries) waiting for {where} "
                f"({last_seen or 'no answer'}); the run goes on in Airflow: {link(url, None, event)}"
            )
            return EXIT_FAILED
        time.sleep(min(args.interval, remaining))


def tasks_of(answer: dict[str, Any]) -> dict[str, Any]:
    tasks = answer.get("tasks")
    return tasks if isinstance(tasks, dict) else {}


def progress(answer: dict[str, Any]) -> str:
    """``running; running: train; awaiting input: approve``: the run's state and its busy tasks."""
    tasks = tasks_of(answer)
    parts = [str(answer.get("state"))]
    for state in ("running", "deferred", "up_for_retry", "awaiting_input", "failed"):
        names = sorted(task for task, task_state in tasks.items() if task_state == state)
        if names:
            parts.append(f"{state.replace('_', ' ')}: {', '.join(names)}")
    return clean("; ".join(parts))


def report_failure(url: str | None, answer: dict[str, Any]) -> None:
    say(f"run failed: {link(url, answer)}")
    failed = answer.get("failed")
    if not isinstance(failed, list) or not failed:
        failed = []
        say("  no task failed: the run itself was marked failed (a timeout, or by hand); see its page")
    for failure in failed:
        if not isinstance(failure, dict):
            continue
        say(
            f"  task {clean(str(failure.get('task_id')))} failed (try {failure.get('try_number')}); its log ends:"
        )
        for line in str(failure.get("log_tail") or "(no log)").splitlines():
            say(f"    | {clean(line)}")


def link(url: str | None, answer: dict[str, Any] | None, event: dict[str, str] | None = None) -> str:
    """The run's page, or its ids when the Lambda knows no UI address (MWAA without MLOPS_AIRFLOW_UI_URL)."""
    if url:
        return clean(url)
    source = answer or event or {}
    dag_id = (
        source.get("dag_id") or f"mlops__{source.get('project')}__{source.get('model')}__{source.get('kind')}"
    )
    return clean(
        f"{dag_id} run {source.get('dag_run_id')} (set MLOPS_AIRFLOW_UI_URL on the trigger Lambda for a link)"
    )


def clean(text: str) -> str:
    return _CONTROL_RE.sub("", _ANSI_RE.sub("", text))


def say(line: str) -> None:
    print(line, flush=True)


def positive_seconds(value: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", value) or int(value) == 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds above 0, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_status.py", description=__doc__.splitlines()[1])
    commands = parser.add_subparsers(dest="command", required=True)
    waiting = commands.add_parser("wait", help="poll the run until it finishes, fails or waits for approval")
    waiting.add_argument(
        "--dotenv", required=True, help="the trigger's dotenv: MLOPS_DAG_ID, MLOPS_DAG_RUN_ID"
    )
    waiting.add_argument("--kind", required=True, choices=KINDS)
    waiting.add_argument("--until", default="finished", choices=UNTIL)
    waiting.add_argument("--timeout", type=positive_seconds, default=3600)
    waiting.add_argument("--interval", type=positive_seconds, default=15)
    waiting.set_defaults(run=wait)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CiError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_FAILED if exc.code == EXIT_RETRY else exc.code


if __name__ == "__main__":
    raise SystemExit(main())
