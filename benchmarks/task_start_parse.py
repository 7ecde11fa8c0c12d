"""
Task-start parse benchmark: what a worker spends parsing the DAG file to start one task.

Airflow's task runner parses the file that defines the task's DAG, inside the parsing context
(``airflow.sdk.execution_time.task_runner.parse``: a ``BundleDagBag`` of that one file, with
``_AIRFLOW_PARSING_CONTEXT_DAG_ID`` and ``..._TASK_ID`` set). The factory then reads one config
and builds one DAG, so the cost should not grow with the number of models.

For N = 1, 500 and 5,000 models (``configs.py``: org and project defaults, ten models per
project) and two layouts of the dags folder:

- ``single``: the repository's ``dags/mlops_dags.py``, every model in one file;
- ``sharded``: the loader files ``mlops shards write --count 64`` writes; the task's DAG is in
  one of them, and that file is the one parsed.

First the dag-processor's parse of that file (no parsing context) fills the parse cache and the
model index, and is timed a second time, warm: what every task start cost before the factory
built only the task's DAG. Then rounds: each measurement is a fresh process that imports the task
runner (as a worker's task process has), then times the task runner's parse of the file for one
task of the last model. Every round measures every case, in a rotating order; the ratio to the
one-model folder (N = 1, ``single``) is taken within each round and the table shows medians. Every
measurement checks that exactly the task's DAG was built, with the task in it, and no import error.
One more case, at the largest N, runs without the parse cache (a worker that cannot see the
dag-processor's cache folder: the config is found by the ``<root>/<project>/<model>`` layout);
``--skip-no-index`` leaves it out.

Run from the repository root: ``.venv/bin/python benchmarks/task_start_parse.py``
(``--sizes 1,100 --rounds 2`` for a quick look). About 5 minutes on a busy 2-core machine, a third
of it the dag-processor's two full parses of 5,000 models in one file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from configs import model_names, write_mlops_configs  # noqa: E402

BASELINE = (1, "single")
TASK_ID = "train"

# One fresh process: what a worker's task process has imported, then the task runner's parse.
_PROBE = r"""
import json, sys, time
from pathlib import Path
started = time.perf_counter()
import airflow.sdk.execution_time.task_runner  # noqa: F401  (a task process has it before it parses)
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager
imported = time.perf_counter()
path, dag_id, task_id = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3] or None
with _airflow_parsing_context_manager(dag_id=dag_id, task_id=task_id):
    t0, c0 = time.perf_counter(), time.process_time()
    bag = BundleDagBag(dag_folder=str(path), safe_mode=False, load_op_links=False, bundle_path=path.parent, bundle_name="dags-folder")
    parse, parse_cpu = time.perf_counter() - t0, time.process_time() - c0
task_found = bool(dag_id) and dag_id in bag.dags and task_id in bag.dags[dag_id].task_dict
print(json.dumps({"import_s": imported - started, "parse_s": parse, "parse_cpu_s": parse_cpu, "dags": len(bag.dags),
                  "dag_ids": sorted(bag.dags)[:3],
                  "task_found": task_found, "import_errors": [str(e)[-600:] for e in bag.import_errors.values()]}))
"""


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(workdir / "airflow-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900",  # measure, never cut the full parse short
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def target(n: int) -> str:
    """The train DAG of the last model: ``mlops__<project>__<model>__train``."""
    project, model = model_names(n)[-1]
    return f"mlops__{project}__{model}__train"


def prepare(workdir: Path, n: int, shards: int) -> dict[str, Any]:
    """N configs, the two dags folders, and for each the file that defines the target DAG."""
    from airflow_provider_mlops.factory.shards import SHARD_FILE, shard_of, write_shard_files

    base = workdir / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    configs = base / "configs"
    write_mlops_configs(configs, n)
    single = base / "dags-single"
    single.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "mlops_dags.py", single / "mlops_dags.py")
    sharded = base / "dags-sharded"
    write_shard_files(sharded, shards)  # what `mlops shards write --count <shards>` writes
    project, model = model_names(n)[-1]
    root = configs.resolve()
    index = shard_of(root / project / model / "mlops.yaml", root, shards)
    return {
        "configs": configs,
        "cache": base / "parse-cache",
        "files": {"single": single / "mlops_dags.py", "sharded": sharded / SHARD_FILE.format(index=index)},
    }


def probe(
    python: Path, path: Path, env: dict[str, str], dag_id: str = "", task_id: str = ""
) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(python), "-c", _PROBE, str(path), dag_id, task_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - started
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(
            f"probe failed for {path} (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        ) from None
    result["process_s"] = wall
    return result


def case_env(env: dict[str, str], setup: dict[str, Any], layout: str, index: bool = True) -> dict[str, str]:
    return {
        **env,
        "MLOPS_CONFIG_PATH": str(setup["configs"]),
        "MLOPS_PARSE_CACHE_DIR": str(setup["cache"]) if index else "off",
        "AIRFLOW__CORE__DAGS_FOLDER": str(setup["files"][layout].parent),
    }


def check_task_start(result: dict[str, Any], label: str, dag_id: str) -> None:
    if (
        result["import_errors"]
        or result["dags"] != 1
        or result["dag_ids"] != [dag_id]
        or not result["task_found"]
    ):
        raise SystemExit(
            f"{label}: built {result['dags']} DAGs {result['dag_ids']}, expected only {dag_id} with task "
            f"{TASK_ID!r}; import errors: {result['import_errors']}"
        )


def run(
    sizes: list[int], shards: int, rounds: int, no_index: bool, workdir: Path, python: Path
) -> dict[str, Any]:
    env = base_env(workdir)
    setups: dict[int, dict[str, Any]] = {}
    cases: list[tuple[int, str, bool]] = []
    full: dict[str, dict[str, Any]] = {}
    for n in sizes:
        started = time.perf_counter()
        setups[n] = setup = prepare(workdir, n, shards)
        for layout in ("single", "sharded"):
            case_vars = case_env(env, setup, layout)
            cold = probe(python, setup["files"][layout], case_vars)  # the dag-processor's first parse
            warm = probe(python, setup["files"][layout], case_vars)  # and a later one: a task start before
            if cold["import_errors"] or warm["import_errors"] or warm["dags"] != cold["dags"]:
                raise SystemExit(
                    f"full parse at N={n} ({layout}) failed: {cold['import_errors'] or warm['import_errors']}"
                )
            full[f"{n}/{layout}"] = {
                "cold_parse_s": cold["parse_s"],
                "parse_s": warm["parse_s"],
                "dags": warm["dags"],
            }
            cases.append((n, layout, True))
        print(
            f"N={n}: configs and full parses in {time.perf_counter() - started:.0f} s "
            f"(single file: {full[f'{n}/single']['dags']} DAGs, {full[f'{n}/single']['parse_s']:.2f} s warm)",
            flush=True,
        )
    if no_index:
        cases.append((max(sizes), "single", False))
    samples: dict[str, list[dict[str, Any]]] = {key(c): [] for c in cases}
    for round_no in range(rounds):
        shift = round_no % len(cases)
        for case in cases[shift:] + cases[:shift]:
            n, layout, index = case
            setup = setups[n]
            result = probe(
                python, setup["files"][layout], case_env(env, setup, layout, index), target(n), TASK_ID
            )
            check_task_start(result, key(case), target(n))
            result["round"] = round_no
            samples[key(case)].append(result)
        print(
            f"  round {round_no + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]['parse_s']:.3f}s" for k, v in samples.items()),
            flush=True,
        )
    return {"cases": [list(c) for c in cases], "samples": samples, "full": full, "shards": shards}


def key(case: tuple[int, str, bool]) -> str:
    n, layout, index = case
    return f"{n}/{layout}" + ("" if index else "/no-index")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _paired(samples: dict[str, list[dict[str, Any]]], case: str, field: str) -> float:
    base = {s["round"]: s[field] for s in samples[key((*BASELINE, True))]}
    return _median([s[field] / base[s["round"]] for s in samples[case] if s["round"] in base])


def report(results: dict[str, Any], elapsed: float) -> str:
    samples, full = results["samples"], results["full"]
    lines = [
        "### Task-start parse",
        "",
        "| N | layout | DAGs in the file | task start: parse s (median) | vs one-model folder (per round) "
        "| parse CPU s | CPU vs one-model | task process s | process vs one-model | full parse s (before) |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for n, layout, index in results["cases"]:
        name = key((n, layout, index))
        items = samples[name]
        before = full[f"{n}/{layout}"]["parse_s"] if index else None
        label = layout if index else f"{layout}, no parse cache (layout lookup)"
        if layout == "sharded":
            label += f" ({results['shards']} files)"
        lines.append(
            f"| {n:,} | {label} | {full[f'{n}/{layout}']['dags']:,} | {_median([s['parse_s'] for s in items]):.3f} | "
            f"{_paired(samples, name, 'parse_s'):.2f}× | {_median([s['parse_cpu_s'] for s in items]):.3f} | "
            f"{_paired(samples, name, 'parse_cpu_s'):.2f}× | {_median([s['process_s'] for s in items]):.2f} | "
            f"{_paired(samples, name, 'process_s'):.2f}× | {f'{before:.2f}' if before is not None else '–'} |"
        )
    largest = max(n for n, _, _ in results["cases"])
    rounds = len(samples[key((*BASELINE, True))])
    single, sharded = key((largest, "single", True)), key((largest, "sharded", True))
    lines += [
        "",
        f"At N={largest:,}, task-start parse against the one-model folder: single file "
        f"**{_paired(samples, single, 'parse_s'):.2f}×** ({_paired(samples, single, 'parse_cpu_s'):.2f}× in CPU time), "
        f"sharded **{_paired(samples, sharded, 'parse_s'):.2f}×** ({_paired(samples, sharded, 'parse_cpu_s'):.2f}× in CPU "
        f"time); goal ≤ 1.2×. Before, a task start parsed the whole file: {full[f'{largest}/single']['parse_s']:.2f} s "
        f"in one file, {full[f'{largest}/sharded']['parse_s']:.2f} s in its shard. Medians of {rounds} interleaved "
        f"rounds, each measurement a fresh process; *parse* is the task runner's `BundleDagBag` of the file (wall and "
        f"CPU time), *task process* the whole process (interpreter, task-runner imports, parse).",
        f"Benchmark wall time: {elapsed:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1,500,5000", help="comma-separated N (default 1,500,5000; 1 is the baseline)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--shards", type=int, default=64, help="loader files of the sharded layout (default 64)"
    )
    parser.add_argument(
        "--skip-no-index",
        action="store_true",
        help="skip the case at the largest N without the parse cache (a worker without the model index)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed after")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | {1})
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-task-start-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run(sizes, args.shards, args.rounds, not args.skip_no_index, workdir, Path(sys.executable))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(results, time.perf_counter() - started)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
