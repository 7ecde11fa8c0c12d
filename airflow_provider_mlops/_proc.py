"""Small process and file helpers shared by the local backend and the local endpoint (stdlib only)."""

from __future__ import annotations

import json
import os
import signal
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
