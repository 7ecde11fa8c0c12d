"""
Hammer a local endpoint with good and hostile traffic, kill its router midway, and report.

It deploys a tiny stand-in model (an echo ``inference.py``) on a local endpoint (router and
model server, as ``mlops`` starts them), then for ``--seconds`` (default 20) runs at once:

- good requests (``POST /invocations`` with JSON) from ``--clients`` threads;
- abuse, round-robin: a 7 MB body, a 50 MB body, ``Content-Length: -1``, ``PUT``, an unknown
  path, malformed JSON;
- slowloris: up to ``--slow`` connections that send half of their headers (or half of a body)
  and then nothing;
- one ``kill -9`` of the router's serving process halfway through.

It prints how many requests were served, rejected (by status) and failed (connection errors)
per kind, the router's peak memory (``VmHWM`` from /proc, against its idle size in the same
run), the connections the router still held at the end, and whether the router came back after
the kill. Everything it starts is stopped by pid. Counts are bounded (``--max-requests``).

Run from the repository root: ``.venv/bin/python benchmarks/endpoint_hammer.py [--seconds 20]``
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from airflow_provider_mlops._proc import find_processes, terminate_group
from airflow_provider_mlops.serving.local import LocalServing

INFERENCE = "def model_fn(model_dir):\n    return {}\n\ndef predict_fn(data, model):\n    return {'echo': data}\n"
ABUSE = {
    "body 7 MB": ("POST", "/invocations", b"[" + b"1," * (7 * 1024 * 1024 // 2) + b"1]", ""),
    "body 50 MB": ("POST", "/invocations", b"x" * (50 * 1024 * 1024), ""),
    "Content-Length -1": ("POST", "/invocations", b"[1]", "Content-Length: -1\r\n"),
    "PUT": ("PUT", "/invocations", b"[1]", ""),
    "unknown path": ("GET", "/admin", b"", ""),
    "malformed JSON": ("POST", "/invocations", b"{not json", ""),
}


def exchange(port: int, method: str, path: str, body: bytes = b"", extra: str = "", timeout: float = 30) -> int | str:
    """One request on a fresh connection; the status, or the kind of connection error."""
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}"
    if "Content-Length" not in extra:
        head += f"Content-Length: {len(body)}\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed before the whole body went: read the answer
                sock.sendall(head.encode() + b"\r\n" + body)
            data = sock.recv(64)
        return int(data.split()[1]) if data.startswith(b"HTTP/") else "closed without answer"
    except OSError as exc:
        return type(exc).__name__


def vm_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def serving_pids(supervisor: int) -> list[int]:
    """The router's serving processes: uvicorn's workers in the supervisor's process group."""
    out = []
    for pid in find_processes(lambda argv: "spawn_main" in " ".join(argv)):
        try:
            if os.getpgid(pid) == supervisor:
                out.append(pid)
        except ProcessLookupError:
            continue
    return out


def established_on(port: int) -> int:
    """Server-side TCP connections on ``port`` still ESTABLISHED (/proc/net/tcp state 01)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to hammer (default 20)")
    parser.add_argument("--clients", type=int, default=4, help="threads sending good requests")
    parser.add_argument("--slow", type=int, default=300, help="slowloris connections, at most")
    parser.add_argument("--max-requests", type=int, default=20000, help="good requests, at most")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="endpoint-hammer-"))
    (work / "code").mkdir()
    (work / "code" / "inference.py").write_text(INFERENCE)
    (work / "model").mkdir()
    serving = LocalServing(work / "home", drain_seconds=0)
    results: dict[str, collections.Counter[int | str]] = collections.defaultdict(collections.Counter)
    lock = threading.Lock()
    stop = threading.Event()
    try:
        url = serving.deploy_model("ep", version="1.0.0", model_dir=str(work / "model"), code_dir=str(work / "code"))["url"]
        port = int(url.rsplit(":", 1)[1])
        supervisor = int(json.loads((serving.state_dir("ep") / "router.json").read_text())["pid"])
        [worker] = serving_pids(supervisor)
        idle_kib = vm_kib(worker, "VmRSS")
        peak = {"kib": 0}

        def record(kind: str, outcome: int | str) -> None:
            with lock:
                results[kind][outcome] += 1

        def good() -> None:
            while not stop.is_set() and sum(results["good"].values()) < args.max_requests:
                record("good", exchange(port, "POST", "/invocations", b"[1, 2, 3]"))

        def abuse() -> None:
            while not stop.is_set():
                for kind, (method, path, body, extra) in ABUSE.items():
                    if stop.is_set() or sum(results[kind].values()) >= 200:
                        continue
                    record(kind, exchange(port, method, path, body, extra))

        slow: list[socket.socket] = []

        def slowloris() -> None:
            while not stop.is_set() and len(slow) < args.slow:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    half = b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
                    if len(slow) % 2:
                        half = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[1,"
                    sock.sendall(half)
                    slow.append(sock)
                except OSError as exc:
                    record("slowloris", type(exc).__name__)
                time.sleep(0.05)

        def watch_memory() -> None:
            while not stop.is_set():
                for pid in serving_pids(supervisor):
                    peak["kib"] = max(peak["kib"], vm_kib(pid, "VmHWM"))
                time.sleep(0.1)

        threads = [threading.Thread(target=good) for _ in range(args.clients)]
        threads += [threading.Thread(target=abuse), threading.Thread(target=slowloris), threading.Thread(target=watch_memory)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds / 2)
        peak["kib"] = max(peak["kib"], vm_kib(worker, "VmHWM"))
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        back_after = None
        while time.monotonic() < started + args.seconds:
            if back_after is None and exchange(port, "GET", "/ping", timeout=5) == 200:
                back_after = time.monotonic() - killed_at
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        held = established_on(port)
        limits = serving.limits
        wait_until = time.monotonic() + max(limits.header_timeout_seconds, limits.body_timeout_seconds) + 2
        while established_on(port) and time.monotonic() < wait_until:  # every timeout has run out by then
            time.sleep(0.2)
        held_after = established_on(port)
        waited = time.monotonic() - (wait_until - max(limits.header_timeout_seconds, limits.body_timeout_seconds) - 2)
        slow_closed = 0
        for sock in slow:
            sock.setblocking(False)
            try:
                slow_closed += sock.recv(65536, socket.MSG_PEEK) is not None
            except BlockingIOError:
                pass
            except OSError:
                slow_closed += 1
        for sock in slow:
            sock.close()
        new_workers = serving_pids(supervisor)
    finally:
        stop.set()
        serving.stop("ep")
        for pid in find_processes(lambda argv: any(str(work) in part for part in argv)):
            terminate_group(pid)
        shutil.rmtree(work, ignore_errors=True)

    print(f"endpoint hammer: {args.seconds:g} s, {args.clients} good clients, kill -9 of the router worker at {args.seconds / 2:g} s\n")
    print(f"| {'kind':<18} | {'sent':>6} | {'ok 2xx':>6} | {'rejected (status: count)':<28} | {'failed (connection)':<44} |")
    print(f"|{'-' * 20}|{'-' * 8}|{'-' * 8}|{'-' * 30}|{'-' * 46}|")
    for kind in ["good", *ABUSE]:
        counts = results[kind]
        ok = sum(n for k, n in counts.items() if isinstance(k, int) and k < 300)
        rejected = ", ".join(f"{k}: {n}" for k, n in sorted((k, n) for k, n in counts.items() if isinstance(k, int) and k >= 300))
        failed = ", ".join(f"{k}: {n}" for k, n in counts.items() if isinstance(k, str))
        print(f"| {kind:<18} | {sum(counts.values()):>6} | {ok:>6} | {rejected or '-':<28} | {failed or '-':<44} |")
    print()
    print(f"slowloris connections opened: {len(slow)}; closed by the router by the end: {slow_closed}")
    print(f"router worker memory: idle {idle_kib / 1024:.0f} MiB, peak VmHWM {peak['kib'] / 1024:.0f} MiB "
          f"(peak/idle = {peak['kib'] / max(idle_kib, 1):.2f})")
    print(f"connections the router still held at the end: {held} (slow ones inside their timeout); "
          f"{held_after} after {waited:.1f} s more")
    came_back = back_after is not None
    print(f"router came back after kill -9: {'yes' if came_back else 'NO'}"
          + (f" (first 200 on /ping {back_after:.1f} s after the kill; new worker pid(s) {new_workers})" if came_back else ""))
    return 0 if came_back else 1


if __name__ == "__main__":
    sys.exit(main())
