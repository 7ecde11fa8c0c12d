"""
Measure the trigger Lambda's cold-start import: ``import handler`` in fresh interpreters.

    python lambda/measure_cold_start.py [--runs 30] [--zip lambda/build/trigger_lambda.zip]

It unpacks the deployment zip (built by build.sh if missing) the way Lambda unpacks it into
/var/task, then, in N fresh processes each, times ``import handler`` alone, and the first use of
each target's lazy imports: urllib for a self-hosted Airflow, boto3 and the mwaa client for MWAA. The baseline, in
the same run, is ``import boto3``: what a handler that imported boto3 up front would pay on
every cold start. Prints medians and 90th percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

SNIPPETS = {
    "import handler": "import handler",
    "import handler + airflow target (urllib)": "import handler; import urllib.request",
    "import handler + mwaa client (boto3)": (
        "import handler; import boto3, botocore.exceptions; boto3.client('mwaa', region_name='us-east-1')"
    ),
    "baseline: import boto3": "import boto3",
}


def time_once(code: str, task_dir: Path) -> float:
    program = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(task_dir)!r})\n"
        "start = time.perf_counter()\n"
        f"{code}\n"
        "print((time.perf_counter() - start) * 1000)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--zip", type=Path, default=HERE / "build" / "trigger_lambda.zip")
    args = parser.parse_args()
    if not args.zip.exists():
        subprocess.run(["bash", str(HERE / "build.sh"), str(args.zip)], check=True)
    with tempfile.TemporaryDirectory() as task:
        task_dir = Path(task)
        zipfile.ZipFile(args.zip).extractall(task_dir)
        site = [p for p in sys.path if p.endswith("site-packages")]
        results = {}
        for label, code in SNIPPETS.items():
            # -S keeps site-packages off the path; boto3 comes from this interpreter's site-packages.
            code = f"sys.path.extend({site!r})\n{code}"
            samples = sorted(time_once(code, task_dir) for _ in range(args.runs))
            results[label] = {
                "median_ms": round(statistics.median(samples), 1),
                "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 1),
            }
    width = max(map(len, results))
    print(f"cold-start import, {args.runs} fresh processes each, Python {sys.version.split()[0]}")
    for label, figures in results.items():
        print(f"  {label:<{width}}  median {figures['median_ms']:7.1f} ms   p90 {figures['p90_ms']:7.1f} ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
