"""
The local endpoint's stable front door: a reverse proxy on a fixed 127.0.0.1 port.

It forwards ``GET /ping`` and ``POST /invocations`` to the model server named in
``<state dir>/current.json``. A deploy writes that file atomically, so the switch from one
version to the next happens between two requests, and none is dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airflow_provider_mlops._proc import serve_until_terminated


class Router(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, port: int, state_dir: Path) -> None:
        super().__init__(("127.0.0.1", port), _Proxy)
        self.state_file = state_dir / "current.json"
        self._cache: tuple[float, dict[str, Any]] = (-1.0, {})
        self._lock = threading.Lock()

    def current(self) -> dict[str, Any]:
        try:
            mtime = self.state_file.stat().st_mtime
        except FileNotFoundError:
            return {}
        with self._lock:
            if mtime != self._cache[0]:
                try:
                    self._cache = (mtime, json.loads(self.state_file.read_text()))
                except (OSError, ValueError):
                    return self._cache[1]
            return self._cache[1]


class _Proxy(BaseHTTPRequestHandler):
    server: Router
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, method: str) -> None:
        target = self.server.current()
        if not target.get("upstream"):
            self._reply(503, b'{"error": "no model version is deployed on this endpoint"}', {"Content-Type": "application/json"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(f"{target['upstream']}{self.path}", data=body, method=method)
        for header in ("Content-Type", "Accept"):
            if self.headers.get(header):
                request.add_header(header, self.headers[header])
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self._reply(response.status, response.read(), _pass_headers(response.headers))
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read(), _pass_headers(exc.headers))
        except (urllib.error.URLError, OSError) as exc:
            self._reply(502, json.dumps({"error": f"model server unreachable: {exc}"}).encode(), {"Content-Type": "application/json"})

    def do_GET(self) -> None:
        self._forward("GET")

    def do_POST(self) -> None:
        self._forward("POST")


def _pass_headers(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("Content-Type", "X-Mlops-Model-Version")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return serve_until_terminated(Router(args.port, Path(args.state_dir)), Path(args.state_dir) / "router.port")


if __name__ == "__main__":
    sys.exit(main())
