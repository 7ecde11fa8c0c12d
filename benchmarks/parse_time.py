"""
Parse-time benchmark: this project's factory against a hand-written floor and dag-factory 1.1.0.

For each N it generates N model configs (3 DAGs, 14 tasks per model) and three dags folders:

- ``mlops``: the repository's ``dags/mlops_dags.py`` and ``dags/mlops_config_errors.py``;
- ``floor``: ``dagfiles/floor_dags.py``, a hand-written loop over the same YAML (C loader, no
  validation, no cache) that builds the same DAGs with the same operator classes;
- ``dag-factory``: ``dagfiles/dagfactory_dags.py`` over equivalent dag-factory YAML, run from a
  venv of its own (``benchmarks/.venv-dagfactory``, created when missing).

Every measurement is a fresh process (``measure_parse.py``): ``DagBag`` over the folder, then the
dag processor's own per-file path (pre-import, fork, parse and serialize). Rounds interleave the
approaches in a rotating order, and ratios to the floor are taken within each round, so a busy
machine moves numerator and denominator together. The factory's parse cache is filled by one
cold run first (reported as ``mlops (cold cache)``); the rounds then measure the steady state
Airflow sees when it re-parses unchanged configs. A scale check at N=5,000 parses sharded loader
files and reports the slowest file. Every measurement checks its DAG count and import errors.

Run from the repository root: ``.venv/bin/python benchmarks/parse_time.py``
(``--sizes 1,10 --rounds 2 --scale 0`` for a quick look).
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

from configs import write_dagfactory_configs, write_mlops_configs  # noqa: E402

DAGFACTORY_VERSION = "1.1.0"
DAGFACTORY_VENV = HERE / ".venv-dagfactory"
DAGS_PER_MODEL = 3
APPROACHES = ("mlops", "floor", "dag-factory")
COLD = "mlops (cold cache)"


# --- environments ---------------------------------------------------------------------------------


def ensure_dagfactory_venv(python: Path) -> Path:
    """
    A venv that sees this project's venv (same Airflow, same providers) plus dag-factory.

    dag-factory is installed only here, with ``--no-deps``: its dependencies (Airflow, PyYAML,
    typer, pathspec, packaging) come from the project's venv through a ``.pth`` file.
    """
    bench_python = DAGFACTORY_VENV / "bin" / "python"
    check = [str(bench_python), "-c", "import dagfactory, airflow_provider_mlops"]
    if bench_python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return bench_python
    print(f"creating {DAGFACTORY_VENV} with dag-factory {DAGFACTORY_VERSION} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(DAGFACTORY_VENV)], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    bench_site = subprocess.run(
        [str(bench_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(bench_site, "zz_mlops_project_venv.pth").write_text(f"import site; site.addsitedir({site!r})\n")
    subprocess.run(
        [str(bench_python), "-m", "pip", "install", "-q", "--no-deps", f"dag-factory=={DAGFACTORY_VERSION}"], check=True
    )
    subprocess.run(check, check=True)
    return bench_python


def prepare(workdir: Path, n: int, with_dagfactory: bool) -> dict[str, Any]:
    """Generate N configs and the three dags folders under ``workdir/n<N>``."""
    base = workdir / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    configs = base / "configs"
    write_mlops_configs(configs, n)
    folders = {name: base / f"dags-{name}" for name in APPROACHES}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for name in ("mlops_dags.py", "mlops_config_errors.py"):
        shutil.copy(REPO / "dags" / name, folders["mlops"] / name)
    shutil.copy(HERE / "dagfiles" / "floor_dags.py", folders["floor"] / "floor_dags.py")
    dagfactory_yaml = base / "dagfactory-yaml"
    if with_dagfactory:
        shutil.copy(HERE / "dagfiles" / "dagfactory_dags.py", folders["dag-factory"] / "dagfactory_dags.py")
        write_dagfactory_configs(configs, dagfactory_yaml)
    return {"base": base, "configs": configs, "folders": folders, "dagfactory_yaml": dagfactory_yaml}


def measure(python: Path, folder: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(HERE / "measure_parse.py"), str(folder), *extra],
        env=env, capture_output=True, text=True, timeout=900,
    )
    wall = time.perf_counter() - started
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit(f"measurement failed in {folder} (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None
    result["process_wall_seconds"] = wall
    return result


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(workdir / "airflow-home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900",  # measure, never cut a slow approach short
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def check(result: dict[str, Any], approach: str, n: int) -> None:
    """Every approach must build every DAG, with no import error (dag-factory once dropped DAGs silently)."""
    expected = n * DAGS_PER_MODEL
    for phase in ("dagbag", "processor"):
        got = result.get(phase)
        if got is None:
            continue
        if got.get("error") or got.get("errors") or got.get("import_errors") or got.get("dags") != expected:
            raise SystemExit(
                f"{approach} at N={n} ({phase}): {got.get('dags')} DAGs, expected {expected}; "
                f"import errors: {got.get('import_errors')} {got.get('first_error') or got.get('error') or got.get('errors')}"
            )


# --- the size sweep ---------------------------------------------------------------------------------


def run_size(n: int, rounds: int, workdir: Path, pythons: dict[str, Path], approaches: list[str]) -> dict[str, list[dict[str, Any]]]:
    setup = prepare(workdir, n, "dag-factory" in approaches)
    env = base_env(workdir)
    env.update(
        {
            "MLOPS_CONFIG_PATH": str(setup["configs"]),
            "MLOPS_PARSE_CACHE_DIR": str(setup["base"] / "parse-cache"),
            "DAGFACTORY_CONFIG_PATH": str(setup["dagfactory_yaml"]),
        }
    )
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in [*approaches, COLD]}
    if "mlops" in approaches:  # fills the parse cache: the first parse after a deploy
        cold = measure(pythons["mlops"], setup["folders"]["mlops"], {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(setup["folders"]["mlops"])}, "--skip-processor")
        check(cold, COLD, n)
        samples[COLD].append(cold)
    for round_no in range(rounds):
        order = approaches[round_no % len(approaches):] + approaches[: round_no % len(approaches)]
        for approach in order:
            folder = setup["folders"][approach]
            result = measure(pythons[approach], folder, {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)})
            check(result, approach, n)
            result["round"] = round_no
            samples[approach].append(result)
        print(f"  N={n} round {round_no + 1}/{rounds}: " + ", ".join(
            f"{a} {samples[a][-1]['dagbag']['seconds']:.2f}s" for a in approaches), flush=True)
    return samples


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _paired_ratio(samples: dict[str, list[dict[str, Any]]], approach: str, base: str, phase: str) -> float:
    """Median over rounds of approach/base, both measured in the same round."""
    by_round = {s["round"]: s[phase]["seconds"] for s in samples.get(base, []) if "round" in s}
    ratios = [s[phase]["seconds"] / by_round[s["round"]] for s in samples.get(approach, []) if s.get("round") in by_round]
    return _median(ratios)


def summarise(n: int, samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for approach, items in samples.items():
        if not items:
            continue
        dagbag = _median([s["dagbag"]["seconds"] for s in items])
        has_processor = all("processor" in s for s in items)
        row = {
            "n": n,
            "approach": approach,
            "runs": len(items),
            "dags": items[0]["dagbag"]["dags"],
            "tasks": items[0]["dagbag"]["tasks"],
            "dagbag_s": dagbag,
            "ms_per_dag": 1000 * dagbag / max(items[0]["dagbag"]["dags"], 1),
            "processor_s": _median([s["processor"]["seconds"] for s in items]) if has_processor else None,
            "max_file_s": _median([s["processor"]["max_file_seconds"] for s in items]) if has_processor else None,
            "rss_mb": _median([s["dagbag"]["peak_rss_mb"] for s in items]),
            "vs_floor": _paired_ratio(samples, approach, "floor", "dagbag") if approach != COLD else None,
            "processor_vs_floor": _paired_ratio(samples, approach, "floor", "processor") if has_processor else None,
            "dagfactory_over_this": _paired_ratio(samples, "dag-factory", approach, "dagbag") if approach == "mlops" else None,
            "dagfactory_over_this_processor": (
                _paired_ratio(samples, "dag-factory", approach, "processor") if approach == "mlops" else None
            ),
        }
        rows.append(row)
    return rows


# --- import cost ------------------------------------------------------------------------------------

# `import airflow` itself imports the installed provider packages' top modules, so the provider's
# own import is timed first, in a fresh interpreter, then Airflow's.
_IMPORT_PROBE = """
import json, time
t0 = time.perf_counter()
import airflow_provider_mlops
airflow_provider_mlops.get_provider_info()
t1 = time.perf_counter()
import airflow
t2 = time.perf_counter()
import airflow.sdk
import airflow.providers.standard.operators.empty, airflow.providers.standard.operators.hitl
import airflow.providers.standard.operators.trigger_dagrun
t3 = time.perf_counter()
import airflow_provider_mlops.factory, airflow_provider_mlops.factory.render
t4 = time.perf_counter()
print(json.dumps({"provider": t1 - t0, "airflow": t2 - t1, "loader_file_airflow": t3 - t2, "factory": t4 - t3}))
"""


def import_cost(python: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    results = []
    for _ in range(runs):
        proc = subprocess.run([str(python), "-c", _IMPORT_PROBE], env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {key: _median([r[key] for r in results]) for key in results[0]}


# --- scale: N=5,000 in shards ---------------------------------------------------------------------


def scale_check(n: int, shards: int, error_files: int, workdir: Path, python: Path, jobs: int) -> dict[str, Any]:
    """Parse N models split over ``shards`` loader files with the dag processor's path; the slowest file."""
    from airflow_provider_mlops.factory.shards import write_shard_files

    base = workdir / f"scale{n}"
    shutil.rmtree(base, ignore_errors=True)
    configs = base / "configs"
    write_mlops_configs(configs, n)
    folder = base / "dags"
    write_shard_files(folder, shards, error_files)
    if error_files == 1:
        shutil.copy(REPO / "dags" / "mlops_config_errors.py", folder / "mlops_config_errors.py")
    env = base_env(workdir)
    env.update(
        {
            "MLOPS_CONFIG_PATH": str(configs),
            "MLOPS_PARSE_CACHE_DIR": str(base / "parse-cache"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        }
    )
    out: dict[str, Any] = {"n": n, "shards": shards, "error_files": error_files, "jobs": jobs}
    for label in ("cold", "warm"):
        result = measure(python, folder, env, "--skip-dagbag", "--jobs", str(jobs))
        check(result, f"scale {label}", n)
        files = result["processor"]["files"]
        loaders = {k: v for k, v in files.items() if k.startswith("mlops_dags_")}
        errors = {k: v for k, v in files.items() if k.startswith("mlops_config_errors")}
        out[label] = {
            "max_file_s": max(files.values()),
            "max_loader_s": max(loaders.values()),
            "errors_file_s": max(errors.values()),
            "sum_s": sum(files.values()),
            "dags": result["processor"]["dags"],
        }
    return out


# --- the report -----------------------------------------------------------------------------------


def _fmt(value: Any, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| N | approach | DAGs | tasks | DagBag s (median) | ms/DAG | vs floor (per round) | processor s | processor vs floor | max file s | peak RSS MB |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['approach']}{' ×' + str(r['runs']) if r['runs'] != 1 else ''} | {r['dags']} | {r['tasks']} | "
            f"{r['dagbag_s']:.3f} | {r['ms_per_dag']:.2f} | {_fmt(r['vs_floor'], '{:.2f}×')} | "
            f"{_fmt(r['processor_s'], '{:.3f}')} | {_fmt(r['processor_vs_floor'], '{:.2f}×')} | "
            f"{_fmt(r['max_file_s'], '{:.3f}')} | {r['rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], imports: dict[str, float] | None, scale: dict[str, Any] | None, largest: int, elapsed: float) -> str:
    parts = ["### Parse time", "", table(rows), ""]
    top = [r for r in rows if r["n"] == largest]
    ours = next((r for r in top if r["approach"] == "mlops"), None)
    if ours:
        has_dagfactory = ours["dagfactory_over_this"] == ours["dagfactory_over_this"]  # not NaN
        parts.append(
            f"At N={largest}, DagBag: factory/floor = **{ours['vs_floor']:.2f}×** (target ≤ 1.0×)"
            + (f", dag-factory/factory = **{ours['dagfactory_over_this']:.1f}×** (target ≥ 3.5×)" if has_dagfactory else "")
            + f". Dag-processor path (parse and serialize, every file): factory/floor = "
            f"**{ours['processor_vs_floor']:.2f}×**"
            + (f", dag-factory/factory = **{ours['dagfactory_over_this_processor']:.1f}×**" if has_dagfactory else "")
            + " (serializing the same DAGs is the same work for every approach)."
        )
    if imports:
        parts.append(
            f"Import cost (median of fresh processes): `import airflow_provider_mlops` + `get_provider_info()` "
            f"**{imports['provider'] * 1000:.1f} ms** (target ≤ 100 ms; `import airflow` itself: "
            f"{imports['airflow'] * 1000:.0f} ms); what the loader file imports beyond the `airflow.*` modules it "
            f"names (factory, config schema, operators): **{imports['factory'] * 1000:.0f} ms** per parse."
        )
    if scale:
        warm, cold = scale["warm"], scale["cold"]
        parts.append(
            f"Scale: N={scale['n']} models ({warm['dags']} DAGs) in {scale['shards']} loader shards and "
            f"{scale['error_files']} config-errors file(s), dag-processor path, {scale['jobs']} files at a time: slowest "
            f"file **{warm['max_file_s']:.2f} s** warm (target ≤ 2 s; slowest loader {warm['max_loader_s']:.2f} s, slowest "
            f"errors file {warm['errors_file_s']:.2f} s, all files {warm['sum_s']:.0f} s of CPU per cycle); first parse after "
            f"a change (cold cache): slowest file **{cold['max_file_s']:.2f} s** (loader {cold['max_loader_s']:.2f} s, "
            f"errors file {cold['errors_file_s']:.2f} s)."
        )
    parts.append(f"Benchmark wall time: {elapsed:.0f} s.")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,100,500", help="comma-separated N (default 1,10,100,500)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per N (default 3)")
    parser.add_argument("--approaches", default=",".join(APPROACHES))
    parser.add_argument("--scale", type=int, default=5000, help="models for the sharded scale check (0 skips)")
    parser.add_argument("--shards", type=int, default=64, help="shard files for the scale check (default 64)")
    parser.add_argument("--error-files", type=int, default=4, help="config-errors files for the scale check (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="files parsed at once in the scale check (Airflow's parsing_processes)")
    parser.add_argument("--import-runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed after")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    approaches = [a for a in args.approaches.split(",") if a]
    python = Path(sys.executable)
    pythons = {"mlops": python, "floor": python}
    if "dag-factory" in approaches:
        pythons["dag-factory"] = ensure_dagfactory_venv(python)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-parse-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    try:
        for n in sizes:
            print(f"N={n}: {n} models, {n * DAGS_PER_MODEL} DAGs", flush=True)
            samples = run_size(n, args.rounds, workdir, pythons, approaches)
            raw[str(n)] = samples
            rows.extend(summarise(n, samples))
        imports = import_cost(python, base_env(workdir), args.import_runs) if args.import_runs else None
        scale = None
        if args.scale:
            print(f"scale check: N={args.scale} in {args.shards} shards and {args.error_files} error files", flush=True)
            scale = scale_check(args.scale, args.shards, args.error_files, workdir, python, args.jobs)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(rows, imports, scale, max(sizes), time.perf_counter() - started)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "imports": imports, "scale": scale, "raw": raw}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
