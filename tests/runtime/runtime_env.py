"""
The world the real-runtime suite runs in, started once per test session.

- PostgreSQL: a throw-away cluster (Debian's ``postgresql``) on a free loopback port.
- Airflow: ``scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` as separate processes
  (LocalExecutor) on that database, with this repository's ``dags/`` as the bundle and a
  ``published/`` folder standing in for the configs that MWAA syncs from the dags bucket.
- AWS: moto in server mode (S3 for the dags bucket, ECR for the images).
- GitLab: the artifacts API of the upstream model pipeline (loopback), as in tests/ci.
- Slack: a loopback server that records every request.

No ``dag.test()`` anywhere: every run goes through the scheduler, the executor and the triggerer.
Every process is stopped by process group at the end, also on failure and on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for folder in (HERE.parent / "ci", HERE.parent / "lambda", HERE.parent / "notifications", REPO / "lambda"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from ci_testenv import base_env, bundle_artifacts, fake_gitlab, make_shims, read_dotenv, run_script  # noqa: E402
from notify_fakes import WEBHOOK_TOKEN, SlackServer, _handler  # noqa: E402
from trigger_testenv import ECR_REGISTRY, aws_env  # noqa: E402

from airflow_provider_mlops.airflow_api import AirflowApiError  # noqa: E402
from airflow_provider_mlops.local_airflow import LocalAirflow, PostgresCluster  # noqa: E402
from airflow_provider_mlops.naming import model_group  # noqa: E402

EXAMPLE = REPO / "examples" / "breast-cancer"
PROJECT, MODEL = "demo", "breast-cancer"
REPOSITORY = f"{PROJECT}/{MODEL}"
GROUP = model_group(PROJECT, MODEL)  # the registry group and endpoint name
BUCKET = "mlops-runtime-dags"
CONFIGS_PREFIX = "dags/mlops"
UPSTREAM_PROJECT_ID, UPSTREAM_PATH, JOB_TOKEN = "314", "ml/breast-cancer", "runtime-job-token"
TERMINAL = ("success", "failed")
ADMIN, APPROVER, OUTSIDER = "admin", "alice", "carol"  # deployment.approvers: [alice]

#: step name -> seconds, printed at the end of the session (conftest's terminal summary).
TIMINGS: dict[str, float] = {}


@contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[step] = round(time.monotonic() - started, 1)


@dataclass
class World:
    root: Path
    airflow: LocalAirflow
    moto_url: str
    slack: SlackServer
    gitlab: Any
    published: Path
    shims: Path
    pipelines: dict[str, dict[str, str]] = field(default_factory=dict)

    # --- clients ---------------------------------------------------------------------------

    def api(self, user: str = ADMIN) -> Any:
        return self.airflow.client(user)

    def boto(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def registry(self) -> Any:
        """The local registry the runtime's tasks write (its MLOPS_HOME, not this process's)."""
        from airflow_provider_mlops.registry.local import LocalModelRegistry

        return LocalModelRegistry(self.airflow.mlops_home)

    def config_file(self) -> str:
        return str(self.published / PROJECT / MODEL / "mlops.yaml")

    # --- the model repository and its CI pipeline ------------------------------------------

    def model_repo(self, name: str, edit: Callable[[Path], None] | None = None) -> Path:
        """A copy of the example model repository, optionally changed by ``edit``, committed with git."""
        repo = self.root / "repos" / name
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if edit is not None:
            edit(repo)
        git = ["git", "-c", "user.name=Data Scientist", "-c", "user.email=ds@example.invalid"]
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
        subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", name], check=True)
        return repo

    def pipeline_env(self, repo: Path, iid: int, job_id: int) -> tuple[Path, dict[str, str]]:
        """The job environment of one model pipeline (upstream commit, pipeline IID, moto, Lambda)."""
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        workdir = self.root / "pipelines" / str(iid)
        workdir.mkdir(parents=True)
        self.gitlab.artifacts[(UPSTREAM_PROJECT_ID, str(job_id))] = bundle_artifacts(repo, commit, project_path=UPSTREAM_PATH)
        env = base_env(self.shims, workdir)
        env.update(aws_env(self.moto_url))
        env.update(
            {
                "CI_API_V4_URL": self.gitlab.url,
                "MLOPS_GITLAB_API_URL": self.gitlab.url,
                "CI_JOB_TOKEN": JOB_TOKEN,
                "CI_PIPELINE_ID": str(9000 + iid),
                "MLOPS_UPSTREAM_PROJECT_ID": UPSTREAM_PROJECT_ID,
                "MLOPS_UPSTREAM_PROJECT_PATH": UPSTREAM_PATH,
                "MLOPS_UPSTREAM_JOB_ID": str(job_id),
                "MLOPS_UPSTREAM_COMMIT_SHA": commit,
                "MLOPS_UPSTREAM_PIPELINE_IID": str(iid),
                "MLOPS_DAGS_BUCKET": BUCKET,
                "MLOPS_CONFIGS_PREFIX": CONFIGS_PREFIX,
                "MLOPS_ORG_DEFAULTS": str(self.root / "org-defaults.yaml"),
                "FAKE_DOCKER_LOG": str(workdir / "docker.log"),
                # The trigger Lambda's handler, called as `aws lambda invoke` would reach it.
                "MLOPS_TRIGGER_LOCAL_HANDLER": str(REPO / "lambda"),
                "MLOPS_TRIGGER_TARGET": "airflow",
                "MLOPS_AIRFLOW_API_URL": self.airflow.base_url,
                "MLOPS_AIRFLOW_USERNAME": ADMIN,
                "MLOPS_AIRFLOW_PASSWORD": self.airflow.passwords[ADMIN],
                "MLOPS_ECR_REGISTRY": ECR_REGISTRY,
                "MLOPS_TRIGGER_RETRY_SECONDS": "3",
                "MLOPS_TRIGGER_WAIT_SECONDS": "180",
            }
        )
        return workdir, env

    def ci_job(self, script: str, *args: str, workdir: Path, env: dict[str, str], check: bool = True,
               timeout: float = 600) -> Any:
        result = run_script(script, *args, env=env, cwd=workdir, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{script} {' '.join(args)} failed ({result.returncode}):\n{result.output[-4000:]}"
        return result

    def run_model_pipeline(self, repo: Path, iid: int) -> tuple[Path, dict[str, str]]:
        """prepare (fetch + version) -> package -> publish, as .gitlab-ci.yml runs them; then MWAA's sync."""
        workdir, env = self.pipeline_env(repo, iid, job_id=5000 + iid)
        self.ci_job("fetch_upstream.sh", workdir=workdir, env=env)
        self.ci_job("version.sh", "version.env", workdir=workdir, env=env)
        env.update(read_dotenv(workdir / "version.env"))
        self.ci_job("package.sh", "package.env", workdir=workdir, env=env)
        env.update(read_dotenv(workdir / "package.env"))
        self.ci_job("publish.sh", workdir=workdir, env=env)
        self.sync_published()
        self.pipelines[str(iid)] = env
        return workdir, env

    def sync_published(self) -> None:
        """What MWAA does with the dags bucket: mirror s3://BUCKET/dags/mlops/ into the configs folder."""
        s3 = self.boto("s3")
        wanted: set[Path] = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{CONFIGS_PREFIX}/"):
            for item in page.get("Contents", []):
                target = self.published / item["Key"][len(CONFIGS_PREFIX) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
                wanted.add(target)
        for path in self.published.rglob("*"):
            if path.is_file() and path not in wanted:
                path.unlink()

    # --- Airflow's view ---------------------------------------------------------------------

    def dag_id(self, kind: str) -> str:
        return f"mlops__{PROJECT}__{MODEL}__{kind}"

    def runs(self, kind: str) -> list[dict[str, Any]]:
        try:
            payload = self.api().request("GET", f"/api/v2/dags/{self.dag_id(kind)}/dagRuns?order_by=start_date&limit=100")
        except AirflowApiError as exc:
            if exc.status == 404:
                return []
            raise
        return list(payload["dag_runs"])

    def task_instances(self, kind: str, run_id: str) -> dict[str, dict[str, Any]]:
        path = f"/api/v2/dags/{self.dag_id(kind)}/dagRuns/{_q(run_id)}/taskInstances?limit=100"
        return {ti["task_id"]: ti for ti in self.api().request("GET", path)["task_instances"]}

    def wait_run(self, kind: str, run_id: str, timeout: float = 300, states: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.airflow.check_alive()
            run = self.api().get_dag_run(self.dag_id(kind), run_id)
            if run["state"] in states:
                return dict(run)
            time.sleep(1)
        raise AssertionError(f"{self.dag_id(kind)} run {run_id} not in {states} after {timeout:.0f}s; tasks: "
                             f"{self.ti_states(kind, run_id)}\n{self.airflow.describe_logs(15)}")

    def wait_task(self, kind: str, run_id: str, task_id: str, state: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.airflow.check_alive()
            ti = self.task_instances(kind, run_id).get(task_id)
            if ti and ti["state"] == state:
                return ti
            time.sleep(1)
        raise AssertionError(f"{task_id} of {self.dag_id(kind)} run {run_id} never reached {state}; tasks: "
                             f"{self.ti_states(kind, run_id)}\n{self.airflow.describe_logs(15)}")

    def ti_states(self, kind: str, run_id: str) -> dict[str, str | None]:
        return {task: ti["state"] for task, ti in self.task_instances(kind, run_id).items()}

    def task_logs(self, kind: str, run_id: str, task_id: str) -> dict[str, str]:
        """Every log file of a task on disk (the worker's and the triggerer's), by file name."""
        folder = self.airflow.home / "logs" / f"dag_id={self.dag_id(kind)}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob("*.log*"))}

    def wait_dag(self, kind: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api().request("GET", f"/api/v2/dags/{self.dag_id(kind)}")
                return
            except AirflowApiError as exc:
                if exc.status != 404:
                    raise
            time.sleep(1)
        raise AssertionError(f"{self.dag_id(kind)} was not parsed within {timeout:.0f}s\n{self.airflow.describe_logs(20)}")


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def org_defaults(path: Path) -> None:
    """The organisation's defaults: those of dags/mlops/, plus Slack through the loopback webhook."""
    text = (REPO / "dags" / "mlops" / "mlops-defaults.yaml").read_text()
    path.write_text(text + "notifications:\n  slack: {connection_id: slack_hook}\n")


@contextmanager
def start_world(root: Path) -> Iterator[World]:
    from moto.server import ThreadedMotoServer

    with ExitStack() as stack:
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        host, port = moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"

        slack = SlackServer(url="")
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(slack))
        httpd.daemon_threads = True
        slack.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        stack.callback(httpd.server_close)
        stack.callback(httpd.shutdown)
        stack.callback(slack.released.set)

        gitlab = stack.enter_context(fake_gitlab())
        gitlab.tokens["JOB-TOKEN"] = JOB_TOKEN

        published = root / "published"
        published.mkdir(parents=True)
        org_defaults(root / "org-defaults.yaml")
        cluster = PostgresCluster().start()
        stack.callback(cluster.stop)
        airflow = LocalAirflow(
            home=root / "airflow",
            dags_folder=REPO / "dags",
            config_paths=[published],
            mlops_home=root / "mlops",
            database_url=cluster.url,
            users={ADMIN: "admin", APPROVER: "admin", OUTSIDER: "admin"},
            parallelism=4,
            extra_env={
                **aws_env(moto_url),
                "AIRFLOW_CONN_SLACK_HOOK": json.dumps(
                    {"conn_type": "slackwebhook", "host": f"{slack.url}/services", "password": WEBHOOK_TOKEN}
                ),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "MLOPS_PARSE_CACHE_DIR": str(root / "parse-cache"),
            },
        )
        airflow.start()
        stack.callback(airflow.stop)
        world = World(root, airflow, moto_url, slack, gitlab, published, make_shims(root / "shims"))
        s3 = world.boto("s3")
        s3.create_bucket(Bucket=BUCKET)
        # This repository's own pipeline uploads the organisation's defaults beside the configs.
        s3.put_object(Bucket=BUCKET, Key=f"{CONFIGS_PREFIX}/mlops-defaults.yaml",
                      Body=(root / "org-defaults.yaml").read_bytes())
        world.boto("ecr").create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
        yield world
        _stop_endpoints(root / "mlops")


def _stop_endpoints(home: Path) -> None:
    from airflow_provider_mlops.serving.local import LocalServing

    for state in (home / "endpoints").glob("*"):
        LocalServing(home).stop(state.name)


def invoke(url: str, payload: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{url}/invocations", data=payload, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()
