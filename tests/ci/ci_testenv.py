"""
Helpers of the CI tests: run scripts/ci/*.sh as a job would, with stand-ins only for what cannot
run here (the docker CLI, GitLab's artifacts API) and real servers for the rest (moto, Airflow).
"""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPTS = REPO / "scripts" / "ci"
EXAMPLE = REPO / "examples" / "breast-cancer"
VENV_BIN = Path(sys.executable).parent


def make_shims(directory: Path) -> Path:
    """
    ``mlops`` (this checkout's CLI) and ``docker`` (fake_docker.py) on a PATH folder, and the
    provider's wheel (``scripts/containers.sh wheel``), built once for package.sh's build contexts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shims = {
        "mlops": f'PYTHONPATH="{REPO}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" -m airflow_provider_mlops.cli "$@"',
        "docker": f'exec "{sys.executable}" "{HERE / "fake_docker.py"}" "$@"',
    }
    for name, body in shims.items():
        write_shim(directory / name, body)
    wheel = subprocess.run(
        ["bash", str(REPO / "scripts" / "containers.sh"), "wheel", str(directory / "wheel")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert wheel.returncode == 0, f"scripts/containers.sh wheel failed:\n{wheel.stderr}"
    return directory


@functools.cache
def containers_env() -> dict[str, str]:
    """What ``scripts/containers.sh`` (installs podman and builds the base once) asks to export."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "containers.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, f"scripts/containers.sh failed:\n{result.stderr[-4000:]}"
    pairs = (line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines() if line.startswith("export "))
    return {key: value for key, value in pairs}


def write_shim(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def engine_shim(directory: Path, engine_binary: str) -> Path:
    """
    A ``docker`` that builds with the real engine, then lets fake_docker.py record the build, log
    in and push. Pushing cannot reach a registry here: moto implements ECR's API (PutImage,
    DescribeImages, GetAuthorizationToken) but not the registry protocol (``/v2/`` blob and
    manifest uploads) a real ``push`` speaks, so the push half stays on the fake, which refuses
    to push a tag the real engine did not build.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fake = f'"{sys.executable}" "{HERE / "fake_docker.py"}"'
    write_shim(
        directory / "docker",
        # podman's network plugins find iptables on PATH; a job's PATH may lack the sbin folders.
        'PATH="$PATH:/usr/sbin:/sbin"\n'
        f'case "$1" in\n'
        f'  build) "{engine_binary}" "$@" || exit $? ;;\n'
        f'  push) "{engine_binary}" image exists "$2" || {{ echo "engine shim: $2 was not built" >&2; exit 1; }} ;;\n'
        f"esac\n"
        f'exec {fake} "$@"',
    )
    return directory / "docker"


def base_env(shims: Path, workdir: Path, **extra: str) -> dict[str, str]:
    """A job's environment outside GitLab: no GITLAB_CI, so the test knobs apply."""
    env = {
        "PATH": os.pathsep.join([str(shims), str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "MLOPS_PYTHON": sys.executable,
        # An empty checkout: the repository's ci/platform.env (real bucket, gitlab.com) stays out of tests.
        "MLOPS_REPO_DIR": str(workdir / "empty-checkout"),
        "MLOPS_ORG_DEFAULTS": str(REPO / "dags" / "mlops" / "mlops-defaults.yaml"),
        "CI_PIPELINE_ID": "4242",
        "GITLAB_USER_LOGIN": "alice",
        # The fake, named: "docker" (the default) would make package.sh look for a real engine.
        "MLOPS_DOCKER": str(shims / "docker"),
        "MLOPS_PROVIDER_WHEEL": str(next((shims / "wheel").glob("airflow_provider_mlops-*.whl"))),
    }
    env.update(extra)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_script(name: str, *args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> Result:
    script = Path(name) if Path(name).is_absolute() else SCRIPTS / name
    result = subprocess.run(
        ["bash", str(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(result.returncode, result.stdout, result.stderr)


def read_dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


def bundle_artifacts(
    source: Path,
    commit: str,
    *,
    project_path: str = "ml/breast-cancer",
    extra_members: dict[str, bytes] | None = None,
) -> bytes:
    """What the model repository's mlops:bundle job leaves: a zip of the tarball and its manifest."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:gz") as tar:
        tar.add(source, arcname=".", filter=lambda info: None if "__pycache__" in info.name else info)
        for name, data in (extra_members or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mlops-bundle.tar.gz", tar_bytes.getvalue())
        archive.writestr(
            "mlops-bundle.json",
            json.dumps({"commit": commit, "project_path": project_path, "pipeline_iid": "7"}),
        )
    return out.getvalue()


@dataclass
class FakeGitLab:
    """GitLab's ``GET /api/v4/projects/:id/jobs/:job_id/artifacts``, on 127.0.0.1."""

    url: str
    artifacts: dict[tuple[str, str], bytes] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # header name -> accepted value
    requests: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def fake_gitlab() -> Iterator[FakeGitLab]:
    state = FakeGitLab(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            if not any(self.headers.get(name) == value for name, value in state.tokens.items()):
                self._answer(401, b'{"message":"401 Unauthorized"}')
                return
            parts = self.path.strip("/").split("/")
            if (
                len(parts) == 7
                and parts[:3] == ["api", "v4", "projects"]
                and parts[4] == "jobs"
                and parts[6] == "artifacts"
            ):
                data = state.artifacts.get((parts[3], parts[5]))
                if data is not None:
                    self._answer(200, data, "application/zip")
                    return
            self._answer(404, b'{"message":"404 Not found"}')

        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v4"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
