"""
Every benchmark, one command: ``.venv/bin/python benchmarks/run_all.py`` (or ``make bench``) from
the repository root.

Runs, each in its own process:

- ``parse_time.py`` (N = 1, 10, 100, 500, three interleaved rounds, and the sharded scale check at
  N = 5,000);
- ``task_start_parse.py`` (a task start at N = 1, 500 and 5,000, one file and 64 shards, seven rounds);
- ``e2e_local.py`` (the example's pipeline under ``dag.test()``, three runs);
- ``runtime_latency.py`` (Lambda event to first prediction on the real runtime, against a no-op
  floor in the same runtime; three rounds after a warm-up);
- ``slot_occupancy.py`` (worker-slot seconds per train run on the local and moto SageMaker
  backends; two rounds, moto jobs held 20 s);

then prints the reports and writes them to ``benchmarks/results/latest.md`` (the raw figures beside
them as JSON). About 20 minutes on a busy 2-core machine. ``--quick`` (``make bench
BENCH_ARGS=--quick``) runs a small version of each (N = 1, 10, 100, two rounds, N = 1,000 in 16
shards, one end-to-end run, one real-runtime round, one slot round with jobs held 10 s) in about
11 minutes. ``--skip-runtime`` leaves out the two real-runtime benchmarks (they need PostgreSQL).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small version, for iterating")
    parser.add_argument("--skip-runtime", action="store_true",
                        help="leave out runtime_latency.py and slot_occupancy.py (the real-runtime benchmarks)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where to write the reports")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    parse_args = ["--sizes", "1,10,100", "--rounds", "2", "--scale", "1000", "--shards", "16", "--error-files", "2"] if args.quick else []
    task_start_args = ["--sizes", "1,1000", "--rounds", "2", "--shards", "16"] if args.quick else []
    e2e_args = ["--runs", "1"] if args.quick else ["--runs", "3"]
    latency_args = ["--runs", "1"] if args.quick else ["--runs", "3"]
    slot_args = ["--runs", "1", "--hold", "10"] if args.quick else ["--runs", "2", "--hold", "20"]
    runs = [
        [sys.executable, str(HERE / "parse_time.py"), *parse_args,
         "--markdown", str(args.out / "parse_time.md"), "--json", str(args.out / "parse_time.json")],
        [sys.executable, str(HERE / "task_start_parse.py"), *task_start_args,
         "--markdown", str(args.out / "task_start_parse.md"), "--json", str(args.out / "task_start_parse.json")],
        [sys.executable, str(HERE / "e2e_local.py"), *e2e_args,
         "--markdown", str(args.out / "e2e_local.md"), "--json", str(args.out / "e2e_local.json")],
    ]
    names = ["parse_time", "task_start_parse", "e2e_local"]
    if not args.skip_runtime:
        for name, extra in (("runtime_latency", latency_args), ("slot_occupancy", slot_args)):
            runs.append([sys.executable, str(HERE / f"{name}.py"), *extra,
                         "--markdown", str(args.out / f"{name}.md"), "--json", str(args.out / f"{name}.json")])
            names.append(name)
    for command in runs:
        print("$", " ".join(command[1:]), flush=True)
        if subprocess.run(command).returncode != 0:
            return 1
    elapsed = time.perf_counter() - started
    machine = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()
    text = (
        f"## Benchmarks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}, {_cores()} cores, "
        f"{elapsed:.0f} s)\n\n"
        + "\n".join((args.out / f"{name}.md").read_text() for name in names)
    )
    (args.out / "latest.md").write_text(text)
    print(f"\nwritten: {args.out / 'latest.md'} (all benchmarks: {elapsed:.0f} s)")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
