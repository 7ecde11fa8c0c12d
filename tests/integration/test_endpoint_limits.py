"""
The local endpoint's request limits, seen from a raw socket: sizes, timeouts, a connection cap,
and JSON errors without a server banner, on the router and on the model server alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_mlops._proc import process_cmdline
from airflow_provider_mlops.serving.local import LocalServing
from airflow_provider_mlops.serving.server import Limits

INFERENCE = """
def model_fn(model_dir):
    return {}

def predict_fn(data, model):
    return {"echo": data}
"""

LIMITS = Limits(header_timeout_seconds=1.5, body_timeout_seconds=2.0, max_connections=8)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """One endpoint for the module: the router's port and its model server's."""
    tmp = tmp_path_factory.mktemp("limits")
    (tmp / "code").mkdir()
    (tmp / "code" / "inference.py").write_text(INFERENCE)
    (tmp / "model").mkdir()
    serving = LocalServing(tmp / "home", drain_seconds=0, limits=LIMITS)
    try:
        url = serving.deploy_model("ep", version="1.0.0", model_dir=str(tmp / "model"), code_dir=str(tmp / "code"))["url"]
        upstream = json.loads((serving.state_dir("ep") / "current.json").read_text())["upstream"]
        yield {"router": int(url.rsplit(":", 1)[1]), "server": int(upstream.rsplit(":", 1)[1])}
    finally:
        serving.stop("ep")
        for entry in Path("/proc").glob("[0-9]*"):  # anything left that names this folder, by pid
            if any(str(tmp) in part for part in process_cmdline(int(entry.name)) or []):
                os.kill(int(entry.name), signal.SIGKILL)


def _exchange(port: int, raw: bytes, timeout: float = 15.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read until the server closes; return status, headers (lowercase) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the server answered and closed before the whole body went: read its answer
            sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, body


def _request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}"
    if body and "Content-Length" not in extra and "Transfer-Encoding" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _json_error(answer: tuple[int, dict[str, str], bytes], status: int) -> str:
    code, headers, body = answer
    assert code == status, (code, body[:300])
    assert headers.get("content-type") == "application/json", headers
    assert "server" not in headers, f"a server banner: {headers.get('server')}"
    error = json.loads(body)
    assert error["status"] == status and "Traceback" not in error["error"]
    return str(error["error"])


@pytest.mark.parametrize("target", ["router", "server"])
def test_a_good_request_is_served_without_a_server_banner(ports: dict[str, int], target: str) -> None:
    status, headers, body = _exchange(ports[target], _request("POST", "/invocations", b"[1, 2]"))
    assert status == 200 and json.loads(body) == {"echo": [1, 2]}
    assert "server" not in headers and headers["x-mlops-model-version"] == "1.0.0"


@pytest.mark.parametrize("target", ["router", "server"])
def test_a_body_over_the_limit_gets_413_json(ports: dict[str, int], target: str) -> None:
    seven_mb = b"[" + b"1," * (7 * 1024 * 1024 // 2) + b"1]"
    message = _json_error(_exchange(ports[target], _request("POST", "/invocations", seven_mb)), 413)
    assert str(LIMITS.max_body_bytes) in message and "MLOPS_ENDPOINT_MAX_BODY_BYTES" in message
    # Without a Content-Length the body is counted while it streams.
    chunk = b"x" * (1024 * 1024)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(7)) + b"0\r\n\r\n"
    _json_error(_exchange(ports[target], _request("POST", "/invocations", chunked, "Transfer-Encoding: chunked\r\n")), 413)


@pytest.mark.parametrize("target", ["router", "server"])
@pytest.mark.parametrize("length", ["-1", "abc", "1, 2"])
def test_an_invalid_content_length_gets_400_json(ports: dict[str, int], target: str, length: str) -> None:
    _json_error(_exchange(ports[target], _request("POST", "/invocations", b"[1]", f"Content-Length: {length}\r\n")), 400)


@pytest.mark.parametrize("target", ["router", "server"])
def test_wrong_methods_and_paths_get_json(ports: dict[str, int], target: str) -> None:
    assert "PUT" in _json_error(_exchange(ports[target], _request("PUT", "/invocations", b"[1]")), 405)
    _json_error(_exchange(ports[target], _request("DELETE", "/ping")), 405)
    _json_error(_exchange(ports[target], _request("GET", "/admin")), 404)


def test_malformed_json_gets_400_json_through_the_router(ports: dict[str, int]) -> None:
    message = _json_error(_exchange(ports["router"], _request("POST", "/invocations", b"{not json")), 400)
    assert "bad input" in message


def test_slow_clients_are_closed_within_the_timeouts(ports: dict[str, int]) -> None:
    """Slowloris: headers that never finish, and a body that never finishes, are answered 408 and closed."""
    slow: list[socket.socket] = []
    try:
        for index in range(12):
            sock = socket.create_connection(("127.0.0.1", ports["router" if index % 2 else "server"]), timeout=15)
            if index < 8:
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")  # headers never end
            else:
                sock.sendall(_request("POST", "/invocations", b"", "Content-Length: 100\r\n") + b"[1,")  # body never ends
            slow.append(sock)
        answers = []
        for sock in slow:  # each recv is bounded by the socket timeout (15 s): a held connection fails here
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            answers.append(int(data.split()[1]) if data else None)
        assert answers.count(408) == len(slow), answers
    finally:
        for sock in slow:
            sock.close()


def test_connections_past_the_cap_get_503_json(ports: dict[str, int]) -> None:
    idle = [socket.create_connection(("127.0.0.1", ports["router"]), timeout=15) for _ in range(LIMITS.max_connections)]
    try:
        message = _json_error(_exchange(ports["router"], _request("GET", "/ping")), 503)
        assert f"limit of {LIMITS.max_connections} connections" in message
    finally:
        for sock in idle:
            sock.close()
    deadline, status = time.monotonic() + 10, 0
    while status != 200 and time.monotonic() < deadline:  # the held ones are gone: served again
        status = _exchange(ports["router"], _request("GET", "/ping"))[0]
        time.sleep(0.05)
    assert status == 200
