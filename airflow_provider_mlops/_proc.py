"""
Small process and file helpers shared by the local backend and the local endpoint (stdlib only).

A pid read back from a state file is never trusted on its own: after a crash or a reboot it may
name another process (pid 1, a shell). :func:`process_matches` checks the process's identity
(its start time and its command line, read from ``/proc``) before anything signals it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROC = Path("/proc")


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


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22); None when unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def process_cmdline(pid: int) -> list[str] | None:
    """The process's argv from ``/proc/<pid>/cmdline``; None when it is gone or cannot be read."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def process_matches(pid: object, started: object, match: Callable[[list[str]], bool]) -> bool:
    """
    True when ``pid`` runs and is the process a state file recorded, not another one that reuses its pid.

    :param pid: the recorded pid (any JSON value: a corrupt record is simply not a match).
    :param started: the recorded start time (:func:`process_start_time`), or None when not recorded.
    :param match: checks the command line, for example that it is this endpoint's router.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not pid_alive(pid):
        return False
    if not PROC.is_dir():  # no /proc (macOS): the pid is all there is to go on
        return True
    if started is not None and process_start_time(pid) != started:
        return False
    argv = process_cmdline(pid)
    return argv is not None and match(argv)


def find_processes(match: Callable[[list[str]], bool]) -> list[int]:
    """Pids of the running processes whose argv ``match`` accepts (none without ``/proc``)."""
    found = []
    for entry in PROC.glob("[0-9]*") if PROC.is_dir() else ():
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        argv = process_cmdline(pid)
        if argv is not None and match(argv) and pid_alive(pid):
            found.append(pid)
    return sorted(found)


def argv_value(argv: list[str], flag: str) -> str | None:
    """The value after ``flag`` in ``argv`` (``--flag value`` or ``--flag=value``); None when absent."""
    for index, part in enumerate(argv):
        if part == flag and index + 1 < len(argv):
            return argv[index + 1]
        if part.startswith(flag + "="):
            return part[len(flag) + 1 :]
    return None


def terminate_group(pid: int, timeout: float = 10.0) -> None:
    """Stop ``pid`` and the process group it leads: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if not pid_alive(pid):
        return
    try:
        group = os.getpgid(pid) == pid
        (os.killpg if group else os.kill)(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)  # the leader's children too
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)


def log_tail(log: Path, size: int = 400) -> str:
    """The end of a log on one line, for an error message."""
    try:
        text = log.read_text(errors="replace")[-size:]
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


def write_text_atomic(path: Path, text: str) -> None:
    """
    Write ``text`` so readers see the old file or the new one, never half of one.

    The new content is flushed to disk before it replaces the old file. On a failure (a full
    disk) the old file is left as it was, no temporary file is left behind, and the OSError is
    raised for the caller to report.
    """
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


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
