"""
The local endpoint's stable front door: a supervised reverse proxy on a fixed 127.0.0.1 port.

It forwards ``GET /ping`` and ``POST /invocations`` to the model server named in
``<state dir>/current.json``. A deploy writes that file atomically, so the switch from one
version to the next happens between two requests, and none is dropped.

Two processes make one router:

- the **supervisor** (``python -m airflow_provider_mlops.serving.router``, the pid in
  ``router.json``) binds the port once and runs uvicorn's process supervisor over it. It never
  serves a request, so nothing a client sends can kill it;
- one **worker** (uvicorn with Starlette) serves. When it dies (a crash, ``kill -9``) or hangs,
  the supervisor starts another within about a second. The listening socket stays open in the
  supervisor meanwhile, so clients that connect during the restart wait in its backlog instead
  of being refused. The worker dies with its supervisor (``PR_SET_PDEATHSIG``), so no worker
  outlives the pid that ``router.json`` tracks.

Request bodies stream to the model server and are counted while they arrive (413 past the
limit), and every limit of :class:`~airflow_provider_mlops.serving.server.Limits` applies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_mlops.serving.server import (
    bind,
    declared_length,
    json_errors,
    limited_body,
    serving_limits,
    uvicorn_config,
)

STATE_DIR_ENV = "MLOPS_ROUTER_STATE_DIR"
SUPERVISOR_ENV = "MLOPS_ROUTER_SUPERVISOR_PID"
PASSED_REQUEST_HEADERS = ("content-type", "accept")
PASSED_RESPONSE_HEADERS = ("content-type", "x-mlops-model-version")
PR_SET_PDEATHSIG = 1


class CurrentVersion:
    """``current.json``, re-read when its modification time changes; a half-read file keeps the last good one."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._cache: tuple[float, dict[str, Any]] = (-1.0, {})
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        try:
            mtime = self.state_file.stat().st_mtime
        except FileNotFoundError:
            return {}
        with self._lock:
            if mtime != self._cache[0]:
                try:
                    data = json.loads(self.state_file.read_text())
                    if isinstance(data, dict):
                        self._cache = (mtime, data)
                except (OSError, ValueError):
                    pass
            return self._cache[1]


def _die_with_supervisor() -> None:
    """A worker must not outlive its supervisor: the kernel kills it when the supervisor goes."""
    expected = os.environ.get(SUPERVISOR_ENV)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected and os.getppid() != int(expected):  # the supervisor died before the line above
        os._exit(1)


def create_app() -> Starlette:
    """The worker's ASGI app (a uvicorn factory: it reads the state dir and limits from the environment)."""
    _die_with_supervisor()
    limits = serving_limits()
    current = CurrentVersion(Path(os.environ[STATE_DIR_ENV]) / "current.json")
    clients: list[httpx.AsyncClient] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=limits.upstream_timeout_seconds, trust_env=False) as client:
            clients.append(client)
            yield

    async def forward(request: Request) -> Response:
        target = current.get()
        upstream, version = target.get("upstream"), target.get("version", "?")
        if not upstream:
            raise HTTPException(503, "no model version is deployed on this endpoint; deploy one first")
        headers = {name: request.headers[name] for name in PASSED_REQUEST_HEADERS if name in request.headers}
        content = None
        if request.method == "POST":
            length = declared_length(request)
            if length is not None:
                headers["content-length"] = str(length)
            content = limited_body(request, limits)
        try:
            answer = await clients[0].request(request.method, f"{upstream}{request.url.path}", content=content, headers=headers)
        except httpx.TimeoutException:
            raise HTTPException(
                504, f"the model server for version {version} did not answer within "
                f"{limits.upstream_timeout_seconds:g}s (MLOPS_ENDPOINT_UPSTREAM_TIMEOUT_SECONDS)"
            ) from None
        except httpx.HTTPError:
            raise HTTPException(502, f"the model server for version {version} is unreachable; see its server.log") from None
        passed = {name: answer.headers[name] for name in PASSED_RESPONSE_HEADERS if name in answer.headers}
        return Response(answer.content, status_code=answer.status_code, headers=passed)

    return Starlette(
        routes=[Route("/ping", forward, methods=["GET"]), Route("/invocations", forward, methods=["POST"])],
        exception_handlers=json_errors(),
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> int:
    from uvicorn.supervisors.multiprocess import Multiprocess

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    limits = serving_limits()  # a bad MLOPS_ENDPOINT_* value fails here, before the port is taken
    os.environ[STATE_DIR_ENV] = str(Path(args.state_dir).resolve())
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    config = uvicorn_config("airflow_provider_mlops.serving.router:create_app", limits, factory=True, workers=1, lifespan="on")
    try:
        sock = bind("127.0.0.1", args.port)
    except OSError as exc:
        print(f"router cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; another process holds the port", flush=True)
        return 2
    print(f"router {os.getpid()} listening on 127.0.0.1:{args.port} for {args.state_dir}", flush=True)
    Multiprocess(config, sockets=[sock]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
