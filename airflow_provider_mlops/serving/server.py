"""
The local model server: SageMaker's inference contract, served by uvicorn and Starlette.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` runs the model's
inference handlers, named as in the SageMaker inference toolkit: ``model_fn(model_dir)``,
``input_fn(body, content_type)``, ``predict_fn(data, model)``, ``output_fn(prediction, accept)``.
Only ``model_fn`` is required; JSON in and out is the default. An optional ``ping_fn(model)``
returning false makes ``/ping`` answer 503, so a deploy refuses a model that is not ready.

Run as ``python -m airflow_provider_mlops.serving.server --model-dir D --code-dir C
--entrypoint inference.py --port-file F``. It binds a free port and writes it to ``F``.

This module also holds what the endpoint's router shares with it: the request limits
(:class:`Limits`, read from ``MLOPS_ENDPOINT_*`` environment variables), the uvicorn protocol
that enforces the header timeout and the connection cap (:class:`GuardedH11Protocol`), and
bounded body reading. Every error is a JSON body ``{"error": ..., "status": ...}``; no response
carries a server banner or exception text. It imports no Airflow: a model image installs only
``uvicorn`` and ``starlette`` next to the provider.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from airflow_provider_mlops._proc import write_text_atomic

logger = logging.getLogger("airflow_provider_mlops.serving")

#: A declared body over the limit is read and dropped up to this size before the 413 goes out,
#: so a client that sends its whole body before reading gets the 413 rather than a reset.
DRAIN_CAP_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """
    What one endpoint accepts; each field is set by the environment variable in :attr:`ENV`.

    :param max_body_bytes: the largest request body (SageMaker real-time's own limit: 6 MB); 413 above it.
    :param header_timeout_seconds: the request line and headers must arrive within this; 408 after.
    :param body_timeout_seconds: the whole body must arrive within this once the headers are in; 408 after.
    :param max_connections: open connections one process holds; the next ones get 503.
    :param keep_alive_seconds: an idle keep-alive connection is closed after this.
    :param upstream_timeout_seconds: the router waits this long for the model server's answer; 504 after.
    """

    max_body_bytes: int = 6 * 1024 * 1024
    header_timeout_seconds: float = 5.0
    body_timeout_seconds: float = 30.0
    max_connections: int = 256
    keep_alive_seconds: int = 5
    upstream_timeout_seconds: float = 60.0

    ENV = {
        "max_body_bytes": "MLOPS_ENDPOINT_MAX_BODY_BYTES",
        "header_timeout_seconds": "MLOPS_ENDPOINT_HEADER_TIMEOUT_SECONDS",
        "body_timeout_seconds": "MLOPS_ENDPOINT_BODY_TIMEOUT_SECONDS",
        "max_connections": "MLOPS_ENDPOINT_MAX_CONNECTIONS",
        "keep_alive_seconds": "MLOPS_ENDPOINT_KEEP_ALIVE_SECONDS",
        "upstream_timeout_seconds": "MLOPS_ENDPOINT_UPSTREAM_TIMEOUT_SECONDS",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        """Read the limits from ``environ``; a bad value raises ValueError naming the variable and the fix."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = cls.ENV[field.name]
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            kind = int if field.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                value = None
            if value is None or value <= 0:
                raise ValueError(
                    f"environment variable {name}={raw!r} is not a positive {kind.__name__}; "
                    f"set it to one (default {field.default}) or unset it"
                )
            values[field.name] = value
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment variables that give a child process these limits."""
        return {self.ENV[field.name]: str(getattr(self, field.name)) for field in fields(self)}


@functools.cache
def serving_limits() -> Limits:
    """This process's limits, read once from its environment."""
    return Limits.from_env()


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def raw_json_error(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for the protocol level (no ASGI app yet)."""
    body = json.dumps({"error": message, "status": status}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """
    uvicorn's h11 protocol with the limits uvicorn lacks, all answered in JSON.

    - The request line and headers must arrive within ``header_timeout_seconds`` of the
      connection opening (or of the previous response): a slow client gets 408 and is closed,
      so slowloris connections cannot pile up.
    - Past ``max_connections`` open connections a new one is answered 503 and closed.
    - A malformed request (a bad ``Content-Length``, bad chunking, oversized headers) gets 400.
    """

    _header_timer: asyncio.TimerHandle | None = None
    _over_cap = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = serving_limits()
        self._over_cap = len(self.connections) > limits.max_connections
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._over_cap:
            limit = serving_limits().max_connections
            self._reject(503, f"the endpoint holds its limit of {limit} connections; retry shortly")
            return
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._reject(400, "malformed HTTP request: check the request line, the headers and Content-Length")

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(serving_limits().header_timeout_seconds, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return  # closed already, or the headers are in and the app bounds the body
        seconds = serving_limits().header_timeout_seconds
        self._reject(408, f"the request headers did not arrive within {seconds:g}s")

    def _reject(self, status: int, message: str) -> None:
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self.transport.write(raw_json_error(status, message))
            self.transport.close()


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, None when absent; 400 when it is not a non-negative integer."""
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise HTTPException(400, f"Content-Length {raw[:40]!r} is not a non-negative integer")
    return int(raw)


async def _next_message(receive: Receive, deadline: float, limits: Limits) -> Message:
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
    except TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {limits.body_timeout_seconds:g}s") from None


async def _drain(receive: Receive, deadline: float, limits: Limits, seen: int) -> None:
    """Read and drop the rest of a too-large body (up to :data:`DRAIN_CAP_BYTES`), then answer 413."""
    while seen <= DRAIN_CAP_BYTES:
        try:
            message = await _next_message(receive, deadline, limits)
        except HTTPException:
            break
        seen += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    raise HTTPException(
        413, f"the request body is over this endpoint's limit of {limits.max_body_bytes} bytes "
        f"(MLOPS_ENDPOINT_MAX_BODY_BYTES); send a smaller payload"
    )


async def limited_body(request: Request, limits: Limits) -> AsyncIterator[bytes]:
    """
    Yield the request body as it arrives, never more than ``limits.max_body_bytes`` in all.

    A declared length over the limit is refused before any of the body is kept (413); so is a
    body that grows past it while it streams. The whole body must arrive within
    ``body_timeout_seconds`` (408). A client that goes away ends the request.
    """
    declared = declared_length(request)
    receive = request.receive
    deadline = asyncio.get_running_loop().time() + limits.body_timeout_seconds
    if declared is not None and declared > limits.max_body_bytes:
        await _drain(receive, deadline, limits, 0)
    size = 0
    while True:
        message = await _next_message(receive, deadline, limits)
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "the client closed the connection before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            await _drain(receive, deadline, limits, size)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(request: Request, limits: Limits) -> bytes:
    return b"".join([chunk async for chunk in limited_body(request, limits)])


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}; use GET /ping or POST /invocations"
    elif exc.status_code == 404:
        message = f"no route {request.url.path[:100]!r}; use GET /ping or POST /invocations"
    else:
        message = str(exc.detail)
    return json_error(exc.status_code, message, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("request %s %s failed", request.method, request.url.path)
    return json_error(500, "internal error; see the server log")


def json_errors() -> dict[Any, Any]:
    """Starlette exception handlers: every error a JSON body, no exception text."""
    return {HTTPException: _http_error, Exception: _internal_error}


class _VersionHeader:
    """Adds ``X-Mlops-Model-Version`` to every response, errors included."""

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app, self.version = app, version.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-mlops-model-version", self.version)]}
            await send(message)

        await self.app(scope, receive, send_with_version)


def load_handlers(code_dir: Path, entrypoint: str) -> ModuleType:
    path = code_dir / entrypoint
    spec = importlib.util.spec_from_file_location("mlops_inference", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load inference code from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(code_dir))
    spec.loader.exec_module(module)
    if not hasattr(module, "model_fn"):
        raise RuntimeError(f"{path} defines no model_fn(model_dir)")
    return module


class UnsupportedContentType(ValueError):
    pass


def _default_input(body: bytes, content_type: str) -> Any:
    if content_type.split(";")[0].strip() not in ("application/json", ""):
        raise UnsupportedContentType(content_type)
    return json.loads(body or b"null")


def _predict(handlers: ModuleType, model: Any, data: Any, accept: str) -> tuple[bytes, str]:
    predict = getattr(handlers, "predict_fn", None)
    prediction = predict(data, model) if predict else model.predict(data)
    output = getattr(handlers, "output_fn", None)
    if output is None:
        if hasattr(prediction, "tolist"):
            prediction = prediction.tolist()
        return json.dumps(prediction).encode(), "application/json"
    result = output(prediction, accept)
    payload, out_type = result if isinstance(result, tuple) else (result, accept)
    return (payload.encode() if isinstance(payload, str) else payload), out_type


def create_model_app(handlers: ModuleType, model: Any, version: str, limits: Limits) -> ASGIApp:
    """The model server's ASGI app: ``GET /ping`` and ``POST /invocations`` over ``handlers``."""

    async def ping(request: Request) -> Response:
        ping_fn = getattr(handlers, "ping_fn", None)
        try:
            healthy = bool(await run_in_threadpool(ping_fn, model)) if ping_fn else True
        except Exception:
            logger.exception("ping_fn raised")
            healthy = False
        return JSONResponse({"status": "healthy" if healthy else "unhealthy"}, status_code=200 if healthy else 503)

    async def invocations(request: Request) -> Response:
        body = await read_body(request, limits)
        content_type = request.headers.get("content-type", "application/json")
        accept = request.headers.get("accept", "application/json")
        try:
            data = await run_in_threadpool(getattr(handlers, "input_fn", _default_input), body, content_type)
        except UnsupportedContentType:
            return json_error(415, f"content type {content_type[:80]!r} is not supported; send application/json")
        except Exception as exc:  # the client sent something the model cannot read
            logger.warning("input_fn refused a request: %s", type(exc).__name__)
            return json_error(400, f"bad input: the body could not be read as {content_type[:80]} ({type(exc).__name__})")
        try:
            payload, out_type = await run_in_threadpool(_predict, handlers, model, data, accept)
        except Exception as exc:
            logger.exception("prediction failed")
            return json_error(500, f"prediction failed ({type(exc).__name__}); see the model server log")
        return Response(payload, media_type=out_type)

    app = Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])],
        exception_handlers=json_errors(),
    )
    return _VersionHeader(app, version)


def uvicorn_config(app: ASGIApp | str, limits: Limits, **options: Any) -> uvicorn.Config:
    """The uvicorn settings both servers share: the guarded protocol, no banner, quiet logs."""
    return uvicorn.Config(
        app, http=GuardedH11Protocol, ws="none", server_header=False, access_log=False, log_level="warning",
        timeout_keep_alive=limits.keep_alive_seconds, timeout_graceful_shutdown=5, **options,
    )


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--entrypoint", default="inference.py")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--version", default="unknown")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port; SageMaker containers use 0.0.0.0:8080")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = serving_limits()
    host, _, port = args.listen.rpartition(":")
    handlers = load_handlers(Path(args.code_dir), args.entrypoint)
    model = handlers.model_fn(args.model_dir)
    sock = bind(host, int(port))
    write_text_atomic(Path(args.port_file), str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn_config(create_model_app(handlers, model, args.version, limits), limits)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
