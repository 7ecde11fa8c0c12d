"""
The local model server: SageMaker's inference contract on 127.0.0.1.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` runs the model's
inference handlers, named as in the SageMaker inference toolkit: ``model_fn(model_dir)``,
``input_fn(body, content_type)``, ``predict_fn(data, model)``, ``output_fn(prediction, accept)``.
Only ``model_fn`` is required; JSON in and out is the default. An optional ``ping_fn(model)``
returning false makes ``/ping`` answer 503, so a deploy refuses a model that is not ready.

Run as ``python -m airflow_provider_mlops.serving.server --model-dir D --code-dir C
--entrypoint inference.py --port-file F``. It binds a free port and writes it to ``F``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_provider_mlops._proc import serve_until_terminated

MAX_BODY = 6 * 1024 * 1024  # SageMaker's real-time payload limit


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


def _default_input(body: bytes, content_type: str) -> Any:
    if content_type.split(";")[0].strip() not in ("application/json", ""):
        raise ValueError(f"content type {content_type!r} is not supported; send application/json")
    return json.loads(body or b"null")


def _default_output(prediction: Any, accept: str) -> tuple[bytes, str]:
    if hasattr(prediction, "tolist"):
        prediction = prediction.tolist()
    return json.dumps(prediction).encode(), "application/json"


class ModelServer(ThreadingHTTPServer):
    daemon_threads = False  # finish in-flight requests on shutdown
    block_on_close = True

    def __init__(self, handlers: ModuleType, model: Any, version: str, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        super().__init__(listen, _Handler)
        self.handlers = handlers
        self.model = model
        self.version = version


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Mlops-Model-Version", self.server.version)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            ping = getattr(self.server.handlers, "ping_fn", None)
            try:
                healthy = ping(self.server.model) if ping else True
            except Exception:
                healthy = False
            if healthy:
                self._send(200, b'{"status": "healthy"}')
            else:
                self._send(503, b'{"status": "unhealthy"}')
        else:
            self._send(404, b'{"error": "not found: use GET /ping or POST /invocations"}')

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._send(404, b'{"error": "not found: use POST /invocations"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, json.dumps({"error": f"payload over {MAX_BODY} bytes"}).encode())
            return
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "application/json")
        accept = self.headers.get("Accept", "application/json")
        handlers = self.server.handlers
        try:
            data = getattr(handlers, "input_fn", _default_input)(body, content_type)
        except Exception as exc:  # the client sent something the model cannot read
            self._send(400, json.dumps({"error": f"bad input: {exc}"}).encode())
            return
        try:
            predict = getattr(handlers, "predict_fn", None)
            prediction = predict(data, self.server.model) if predict else self.server.model.predict(data)
            output = getattr(handlers, "output_fn", None)
            if output is not None:
                result = output(prediction, accept)
                payload, out_type = (result if isinstance(result, tuple) else (result, accept))
                payload = payload.encode() if isinstance(payload, str) else payload
            else:
                payload, out_type = _default_output(prediction, accept)
        except Exception as exc:
            self._send(500, json.dumps({"error": f"prediction failed: {type(exc).__name__}: {exc}"}).encode())
            return
        self._send(200, payload, out_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--entrypoint", default="inference.py")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--version", default="unknown")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port; SageMaker containers use 0.0.0.0:8080")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    handlers = load_handlers(Path(args.code_dir), args.entrypoint)
    model = handlers.model_fn(args.model_dir)
    server = ModelServer(handlers, model, args.version, (host, int(port)))
    return serve_until_terminated(server, Path(args.port_file))


if __name__ == "__main__":
    sys.exit(main())
