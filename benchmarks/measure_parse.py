"""
One parse measurement, run by ``parse_time.py`` in a fresh process per approach and round.

Prints one JSON line. Two measurements, each in a child forked from this process once Airflow
itself is imported, so neither inherits what the other imported:

- ``dagbag``: ``DagBag(<dags folder>)``, the whole folder in one process, as tests and
  ``airflow dags list`` parse it;
- ``processor``: the dag-processor's own path, file by file: the parent pre-imports the
  ``airflow.*`` modules the file names (``_pre_import_airflow_modules``), then a forked child
  runs ``_parse_file``, which parses and serializes the file's DAGs. That is one file's cost per
  parse cycle; its maximum is what ``dagbag_import_timeout`` limits.

Usage: ``python measure_parse.py DAGS_FOLDER [--skip-dagbag] [--jobs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def _child(fn: Any) -> dict[str, Any]:
    """Run ``fn`` in a forked child; return its dict (plus its peak RSS)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            result = fn()
            result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write_fd, "w") as out:
            json.dump(result, out)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"error": "child died"}


def measure_dagbag(folder: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(folder)
    seconds = time.perf_counter() - started
    files = {Path(s.file).name: round(s.duration.total_seconds(), 4) for s in bag.dagbag_stats}
    return {
        "seconds": seconds,
        "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": len(bag.import_errors),
        "first_error": next(iter(bag.import_errors.values()), "")[-600:],
        "files": files,
    }


def _parse_one(folder: str, path: str) -> dict[str, Any]:
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    request = DagFileParseRequest(file=path, bundle_path=Path(folder), bundle_name="dags-folder")
    started = time.perf_counter()
    result = _parse_file(request, structlog.get_logger("bench"))
    seconds = time.perf_counter() - started
    errors = dict(result.import_errors or {}) if result else {}
    return {
        "seconds": seconds,
        "dags": len(result.serialized_dags) if result else 0,
        "import_errors": len(errors),
        "first_error": str(next(iter(errors.values()), ""))[-600:],
    }


def measure_processor(folder: str, jobs: int) -> dict[str, Any]:
    import structlog
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    log = structlog.get_logger("bench")
    files = sorted(str(p) for p in Path(folder).glob("*.py"))
    started = time.perf_counter()
    for path in files:
        _pre_import_airflow_modules(path, log)
    pre_import = time.perf_counter() - started
    per_file: dict[str, dict[str, Any]] = {}
    if jobs <= 1:
        for path in files:
            per_file[Path(path).name] = _child(lambda path=path: _parse_one(folder, path))
    else:
        from concurrent.futures import ThreadPoolExecutor

        # Threads only wait on forked children, as the dag processor runs `parsing_processes` at once.
        with ThreadPoolExecutor(jobs) as pool:
            for path, result in zip(files, pool.map(lambda p: _child(lambda: _parse_one(folder, p)), files), strict=True):
                per_file[Path(path).name] = result
    return {
        "pre_import_seconds": pre_import,
        "seconds": sum(r.get("seconds", 0.0) for r in per_file.values()),
        "max_file_seconds": max((r.get("seconds", 0.0) for r in per_file.values()), default=0.0),
        "dags": sum(r.get("dags", 0) for r in per_file.values()),
        "import_errors": sum(r.get("import_errors", 0) for r in per_file.values()),
        "first_error": next((r["first_error"] for r in per_file.values() if r.get("first_error")), ""),
        "peak_rss_mb": max((r.get("peak_rss_mb", 0.0) for r in per_file.values()), default=0.0),
        "errors": [r["error"] for r in per_file.values() if "error" in r],
        "files": {name: round(r.get("seconds", 0.0), 4) for name, r in per_file.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--skip-dagbag", action="store_true")
    parser.add_argument("--skip-processor", action="store_true")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    import airflow
    import airflow.dag_processing.dagbag
    import airflow.dag_processing.processor  # noqa: F401

    out: dict[str, Any] = {"import_airflow_seconds": time.perf_counter() - started}
    if not args.skip_dagbag:
        out["dagbag"] = _child(lambda: measure_dagbag(args.folder))
    if not args.skip_processor:
        import gc

        gc.freeze()  # as the dag processor's manager does before it forks parsers
        out["processor"] = measure_processor(args.folder, args.jobs)
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
