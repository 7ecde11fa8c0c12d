"""Small process and file helpers shared by the local backend and the local endpoint (stdlib only)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from http.server import HTTPServer
from pathlib import Path
from typing import Any


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs; a zombie child of this process is reaped and counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers see the old file or the new one, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def serve_until_terminated(server: HTTPServer, ready_file: Path) -> int:
    """Announce the bound port in ``ready_file``, serve, and shut down cleanly on SIGTERM."""
    write_text_atomic(ready_file, str(server.server_address[1]))

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


def spawn_detached(
    args: list[str], *, log_path: Path, cwd: str | Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """
    Start a long-lived process that outlives the task that started it, holding nothing of the task.

    Its stdin is ``/dev/null``, its stdout and stderr go to ``log_path`` (appended), it inherits
    no other file descriptor and it leads a session of its own. Under a real scheduler the task's
    supervisor waits for every socket the task holds (stdin is one) to close: a child that kept
    one would hold the worker slot ("Process exited with open sockets") after the task ended.

    :param args: the command line.
    :param log_path: the log file, created when missing.
    :param cwd: the working directory.
    :param env: the whole environment (default: this process's).
    :return: the started process.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            close_fds=True, start_new_session=True,
        )
