"""
End-to-end latency of the example's local pipeline, against Airflow's own floor.

One run of the pipeline is what ``mlops demo`` does up to the first prediction: the train DAG
(train → evaluate → gate → register → notify), the deploy DAG (resolve version → approve →
deploy → smoke test → promote → notify) and one request to the new endpoint. The approval is
``auto`` here (a copy of the breast-cancer example with ``deployment.approval: auto``): a
person's reaction time is not the product's latency.

The floor is the same two DAG shapes (same task ids and edges) with ``EmptyOperator`` tasks
(``dagfiles/noop_dags.py``, in the same dags folder), run the same way (``dag.test()`` here): what Airflow itself costs to run these
DAGs. Runs interleave real and no-op, after one warm-up of each (the first ``dag.test()`` in a
process pays several seconds of one-off setup); each real run uses a fresh registry, so every
run registers and deploys a first version.

Run from the repository root: ``.venv/bin/python benchmarks/e2e_local.py [--runs 3]``
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

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "breast-cancer"
PROJECT, MODEL = "demo", "breast-cancer"
GROUP = f"{PROJECT}--{MODEL}"  # the registry group and endpoint: naming.model_group


def prepare(workdir: Path) -> Path:
    """A copy of the example (auto approval) under ``workdir/configs``; return its config root."""
    configs = workdir / "configs"
    shutil.copytree(EXAMPLE, configs / MODEL, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    shutil.copy(REPO / "examples" / "mlops-defaults.yaml", configs / "mlops-defaults.yaml")
    config = configs / MODEL / "mlops.yaml"
    text = config.read_text()
    if "approval: manual" not in text:
        raise SystemExit(f"{config}: expected 'approval: manual' to switch to auto")
    config.write_text(text.replace("approval: manual", "approval: auto"))
    dags = workdir / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "mlops_dags.py", dags / "mlops_dags.py")
    shutil.copy(REPO / "benchmarks" / "dagfiles" / "noop_dags.py", dags / "noop_dags.py")
    return configs


def set_env(workdir: Path, configs: Path) -> None:
    """Airflow reads its configuration on first import: set it before importing Airflow."""
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "MLOPS_CONFIG_PATH": str(configs),
            "MLOPS_PARSE_CACHE_DIR": "off",
        }
    )
    os.environ.pop("MLOPS_STRICT", None)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True)


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> float:
    started = time.perf_counter()
    run = dag.test(run_conf=conf)
    if str(run.state) != "success":
        raise SystemExit(f"DAG {dag.dag_id} ended {run.state}")
    return time.perf_counter() - started


def real_run(train: Any, deploy: Any, config: Path, home: Path) -> dict[str, float]:
    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.serving.local import LocalServing, invoke

    os.environ["MLOPS_HOME"] = str(home)
    registry = runtime.registry_for(runtime.config_at(str(config)))
    try:
        started = time.perf_counter()
        train_s = run_dag(train, {"requested_by": "benchmark"})
        version = registry.latest(GROUP)
        if version is None:
            raise SystemExit("the train DAG registered no version")
        deploy_s = run_dag(deploy, {"model_version": version.semver, "requested_by": "benchmark"})
        t0 = time.perf_counter()
        deployed = registry.get(GROUP, version.semver)
        status, _, body = invoke(deployed.deployment["url"], (config.parent / "smoke_payload.json").read_bytes())
        predict_s = time.perf_counter() - t0
        total = time.perf_counter() - started
        if status != 200:
            raise SystemExit(f"the first prediction failed: HTTP {status} {body[:200]!r}")
    finally:
        LocalServing(home).stop(GROUP)
    return {"total": total, "train_dag": train_s, "deploy_dag": deploy_s, "first_prediction": predict_s}


def noop_run(train: Any, deploy: Any) -> dict[str, float]:
    started = time.perf_counter()
    train_s = run_dag(train)
    deploy_s = run_dag(deploy)
    return {"total": time.perf_counter() - started, "train_dag": train_s, "deploy_dag": deploy_s, "first_prediction": 0.0}


def table(real: list[dict[str, float]], noop: list[dict[str, float]]) -> str:
    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    lines = [
        f"| pipeline (median of {len(real)}) | total s | train DAG s | deploy DAG s | first prediction s |",
        "|---|--:|--:|--:|--:|",
    ]
    for name, rows in (("example, local backends", real), ("same DAG shapes, no-op tasks (Airflow's floor)", noop)):
        lines.append(f"| {name} | {med(rows, 'total'):.1f} | {med(rows, 'train_dag'):.1f} | "
                     f"{med(rows, 'deploy_dag'):.1f} | {med(rows, 'first_prediction'):.3f} |")
    paired = statistics.median(r["total"] - n["total"] for r, n in zip(real, noop, strict=True))
    lines.append("")
    lines.append(f"The provider's work above Airflow's floor (median of per-run differences): {paired:.1f} s "
                 f"from triggering training to the first prediction.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured runs of each (default 3)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder, removed after")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw timings here")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-e2e-bench-"))
    started = time.perf_counter()
    try:
        configs = prepare(workdir)
        set_env(workdir, configs)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(str(workdir / "dags"))  # dag.test() re-parses this folder, as `mlops demo` does
        if bag.import_errors or len(bag.dags) != 6:
            raise SystemExit(f"expected 3 DAGs and their 3 no-op copies: {sorted(bag.dags)} {bag.import_errors}")
        train, deploy = bag.get_dag(f"mlops__{PROJECT}__{MODEL}__train"), bag.get_dag(f"mlops__{PROJECT}__{MODEL}__deploy")
        noop_train, noop_deploy = bag.get_dag(f"noop__{train.dag_id}"), bag.get_dag(f"noop__{deploy.dag_id}")
        config = configs / MODEL / "mlops.yaml"

        print("warm-up (not counted) ...", flush=True)
        warm_noop = noop_run(noop_train, noop_deploy)
        warm_real = real_run(train, deploy, config, workdir / "mlops-warmup")
        real, noop = [], []
        for i in range(args.runs):
            pair = [("real", lambda i=i: real_run(train, deploy, config, workdir / f"mlops-{i}")),
                    ("noop", lambda: noop_run(noop_train, noop_deploy))]
            for name, fn in pair if i % 2 == 0 else reversed(pair):
                result = fn()
                (real if name == "real" else noop).append(result)
                print(f"  run {i + 1}/{args.runs} {name}: {result['total']:.1f} s", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    text = "### End-to-end (local)\n\n" + table(real, noop)
    text += (f"Warm-up (first run in a fresh process): pipeline {warm_real['total']:.1f} s, no-op "
             f"{warm_noop['total']:.1f} s. Benchmark wall time: {time.perf_counter() - started:.0f} s.\n")
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"real": real, "noop": noop, "warmup": {"real": warm_real, "noop": warm_noop}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
