"""
``mlops``: validate, render and inspect configs; approve or reject versions; run the demo.

    mlops validate [--publish] [--json] PATH...  exit 1 and list every error (files the configs name included)
    mlops publish-files CONFIG [--copy-to D]  the files CI publishes beside a config
    mlops notify ci-failure --config F ...    report a failed CI job to the model's Slack/SNS
    mlops render PATH [--json]                the DAGs and tasks a config produces
    mlops schema [-o FILE]                    the JSON Schema of mlops.yaml
    mlops versions PROJECT/MODEL              the registry's versions
    mlops approve|reject PROJECT/MODEL VER    answer the waiting deploy approval (REST), or --registry-only
    mlops audit PROJECT/MODEL [--json]        who approved, rejected, overrode, deployed, rolled back, promoted
    mlops endpoint status|stop|invoke PROJECT/MODEL   local endpoints (or the endpoint's name)
    mlops retrain PROJECT/MODEL               start the train DAG from the last release (REST)
    mlops rollback PROJECT/MODEL [VERSION]    deploy the previous production version again (deploy DAG, REST)
    mlops promote PROJECT/MODEL VERSION       deploy VERSION to production (deploy DAG, REST)
    mlops version next --config F --build-number N --commit SHA   CI's image version (dotenv)
    mlops demo                                the example's full local pipeline
    mlops up PATH... [--postgres]             your models on a local Airflow, until Ctrl-C
    mlops shards write --count N [--error-files M] [--dags-folder D]   split the models over N loader files

    --debug (before or after the command): on an error, also print the traceback. --version: the version.
    mlops COMMAND --help: what a command does, its arguments, and an example.

An error is one line on stderr, "mlops: error: <what> (<path>): <why>; <fix>", and exit code 1.
Nothing here imports Airflow, except ``demo``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

# versions, approve, reject and audit live in cli_registry; endpoint in cli_endpoint; error output in cli_errors.
from airflow_provider_mlops import __version__, cli_card, cli_endpoint, cli_pipeline, cli_registry
from airflow_provider_mlops.cli_errors import (
    add_debug_flag,
    config_errors_json,
    print_config_errors,
    run_command,
)
from airflow_provider_mlops.cli_help import add_command
from airflow_provider_mlops.exceptions import InputError, StorageError


def cmd_validate(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.config.loader import load_all
    from airflow_provider_mlops.config.references import reference_errors

    loaded, errors = load_all(args.paths)
    valid = []
    for item in loaded:
        # The files a config names must be where its backend reads them (--publish: and publishable).
        problems = reference_errors(item, publish=args.publish)
        errors.extend(problems)
        if not problems:
            valid.append(item)
    if not loaded and not errors:
        if args.json:
            print(json.dumps({"valid": [], "errors": [], "message": f"no mlops.yaml found under {', '.join(args.paths)}"}))
        print(f"error: no mlops.yaml found under {', '.join(args.paths)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({
            "valid": [{"file": str(item.path), "project": item.config.project, "model": item.config.model,
                       "version": item.config.version} for item in valid],
            "errors": config_errors_json(errors),
        }, indent=2))
        return 1 if errors else 0
    for item in valid:
        print(f"ok: {item.path} ({item.config.project}/{item.config.model} {item.config.version})")
    print_config_errors(errors)
    print(f"{len(valid)} valid, {len(errors)} error(s)")
    return 1 if errors else 0


def cmd_publish_files(args: argparse.Namespace) -> int:
    """Print (and with --copy-to, copy) the files published beside the config, one path a line."""
    import shutil

    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.config.references import files_to_publish

    if args.max_mb <= 0:
        raise InputError(f"--max-mb {args.max_mb} must be more than 0; for example --max-mb 50")
    files = files_to_publish(load_config(args.config), folder=Path(args.source) if args.source else None,
                             limit_bytes=int(args.max_mb * 1024 * 1024))
    for file in files:
        if args.copy_to:
            target = Path(args.copy_to) / file.relative
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file.source, target)
            except OSError as exc:
                raise StorageError.from_os_error(exc, f"cannot copy {file.source}", path=target) from exc
        print(file.relative)
    return 0


_URL_RE = re.compile(r"^https?://[^\s]+$")


def cmd_notify_ci_failure(args: argparse.Namespace) -> int:
    """Report a failed CI job to the model's notification targets; 0 even when delivery fails."""
    from airflow_provider_mlops.config.loader import load_config

    for option, value in (("--pipeline-url", args.pipeline_url), ("--job-url", args.job_url)):
        if value is not None and not _URL_RE.match(value):
            raise InputError(f"{option} {value!r} must be an http(s) URL, for example $CI_PIPELINE_URL")
    for option, value in (("--job", args.job), ("--stage", args.stage)):
        if not value.strip() or len(value) > 255 or not value.isprintable():
            raise InputError(f"{option} {value!r} must be one line of 1 to 255 characters, for example $CI_JOB_NAME")
    if args.commit is not None and not re.fullmatch(r"[0-9a-f]{7,40}", args.commit):
        raise InputError(f"--commit {args.commit!r} must be a git commit SHA, for example $CI_COMMIT_SHA")
    loaded = load_config(args.config)
    from airflow_provider_mlops.notifications import events

    results = events.ci_job_failed(
        loaded, pipeline_url=args.pipeline_url, job=args.job, stage=args.stage, job_url=args.job_url,
        version=args.version, commit=args.commit, source=args.source_project,
    )
    cfg = loaded.config
    if not results:
        print(f"no notification sent for {cfg.project}/{cfg.model}: no channel, or 'failure' is not in notifications.events")
    for result in results:
        if result.ok:
            print(f"notified {result.channel} of the failed job {args.job}")
        else:
            # Delivery.error is already redacted (webhook and bot tokens, AWS keys).
            print(f"could not notify {result.channel} after {result.attempts} tries: {result.error}", file=sys.stderr)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.factory.plan import plan_model

    specs = plan_model(load_config(args.path))
    if args.json:
        print(json.dumps([
            {"dag_id": s.dag_id, "schedule": s.schedule, "tags": list(s.tags),
             "tasks": [{"task_id": t.task_id, "operator": t.operator, "upstream": list(t.upstream)} for t in s.tasks]}
            for s in specs
        ], indent=2))
        return 0
    for spec in specs:
        print(f"{spec.dag_id}  (schedule: {spec.schedule or 'none, triggered'})")
        for task in spec.tasks:
            after = f"  after {', '.join(task.upstream)}" if task.upstream else ""
            print(f"  - {task.task_id} [{task.operator}]{after}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.config.schema import json_schema_text

    text = json_schema_text()
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(text)
        except OSError as exc:  # a write that fills the disk names no file: this one
            raise StorageError.from_os_error(exc, "cannot write the schema", path=args.output) from exc
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_version_next(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.versioning import image_tags

    loaded = load_config(args.config)
    cfg = loaded.config
    try:
        semver_tag, commit_tag = image_tags(cfg.version, args.build_number, args.commit)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    lines = {
        "MLOPS_PROJECT": cfg.project,
        "MLOPS_MODEL": cfg.model,
        "MLOPS_VERSION": semver_tag,
        "MLOPS_IMAGE_TAG": semver_tag,
        "MLOPS_COMMIT_TAG": commit_tag,
        "MLOPS_ECR_REPOSITORY": f"{cfg.project}/{cfg.model}",
    }
    print("\n".join(f"{k}={v}" for k, v in lines.items()))
    return 0


def cmd_shards_write(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.factory.shards import write_shard_files

    if args.count < 1:
        raise InputError(f"--count {args.count} must be 1 or more; for example --count 4")
    if args.error_files < 1:
        raise InputError(f"--error-files {args.error_files} must be 1 or more; for example --error-files 4")
    folder = Path(args.dags_folder)
    for path in write_shard_files(folder, args.count, args.error_files):
        print(path)
    if (folder / "mlops_dags.py").exists():
        print(f"note: remove {folder / 'mlops_dags.py'}: it loads every model, so each DAG would be defined twice",
              file=sys.stderr)
    if args.error_files > 1 and (folder / "mlops_config_errors.py").exists():
        print(f"note: remove {folder / 'mlops_config_errors.py'}: the error shards report every config",
              file=sys.stderr)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.up import run_up

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} must be 0..65535 (0: a free port); for example --port 8080")
    return run_up(args.paths, home=Path(args.home), port=args.port, postgres=args.postgres)


def cmd_demo(args: argparse.Namespace) -> int:
    from airflow_provider_mlops.demo import run_demo

    return run_demo(Path(args.workdir), keep_serving=args.keep_serving)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"mlops (airflow-provider-mlops) {__version__}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(sub, "validate", help="validate mlops.yaml files or folders; exit 1 on any error",
                    examples=["mlops validate examples/", "mlops validate --publish --json models/fraud/mlops.yaml"],
                    details="Checks the schema, the layered defaults and the files each config names.\n"
                            "--json prints {valid: [...], errors: [{file, line, field, value, message, fix}]}.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="mlops.yaml files, or folders searched for them")
    p.add_argument("--publish", action="store_true",
                   help="also refuse paths outside the config's folder and local data for remote backends (CI)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout (errors included)")
    p.set_defaults(func=cmd_validate)

    p = add_command(sub, "publish-files", help="list the files CI publishes beside a config (relative paths)",
                    examples=["mlops publish-files models/fraud/mlops.yaml --copy-to build/fraud"])
    p.add_argument("config", help="the mlops.yaml, laid out with the defaults it is published under")
    p.add_argument("--source", help="the folder its paths resolve from (default: the config's folder)")
    p.add_argument("--copy-to", help="also copy the files into this folder, at the same relative paths")
    p.add_argument("--max-mb", type=float, default=50.0, help="the most all files may weigh (default 50)")
    p.set_defaults(func=cmd_publish_files)

    p = add_command(sub, "notify", help="send a pipeline notification from outside Airflow",
                    examples=["mlops notify ci-failure --config mlops.yaml --pipeline-url $CI_PIPELINE_URL "
                              "--job $CI_JOB_NAME --stage $CI_JOB_STAGE"])
    nsub = p.add_subparsers(dest="notify_command", required=True, metavar="EVENT")
    c = add_command(nsub, "ci-failure", help="report a failed CI job to the model's Slack/SNS; exit 0 even when delivery fails",
                    examples=["mlops notify ci-failure --config mlops.yaml --pipeline-url $CI_PIPELINE_URL "
                              "--job $CI_JOB_NAME --stage $CI_JOB_STAGE --job-url $CI_JOB_URL"])
    c.add_argument("--config", required=True, help="the model's mlops.yaml")
    c.add_argument("--pipeline-url", required=True, help="for example $CI_PIPELINE_URL")
    c.add_argument("--job", required=True, help="the failed job's name, for example $CI_JOB_NAME")
    c.add_argument("--stage", required=True, help="the failed job's stage, for example $CI_JOB_STAGE")
    c.add_argument("--job-url", help="the failed job's log, for example $CI_JOB_URL")
    c.add_argument("--version", help="the image version the pipeline builds, for example 1.0.42")
    c.add_argument("--commit", help="the model repository's commit, for example $CI_COMMIT_SHA")
    c.add_argument("--source-project", help="the model repository's GitLab path, for example $CI_PROJECT_PATH")
    c.set_defaults(func=cmd_notify_ci_failure)

    p = add_command(sub, "render", help="print the DAGs and tasks a config produces",
                    examples=["mlops render examples/breast-cancer/mlops.yaml", "mlops render mlops.yaml --json"])
    p.add_argument("path", help="the model's mlops.yaml")
    p.add_argument("--json", action="store_true", help="print the DAGs as JSON")
    p.set_defaults(func=cmd_render)

    p = add_command(sub, "schema", help="print or write the JSON Schema of mlops.yaml (for editors and CI)",
                    examples=["mlops schema -o mlops.schema.json"])
    p.add_argument("-o", "--output", help="write it to this file (default: print it)")
    p.set_defaults(func=cmd_schema)

    cli_registry.add_parsers(sub)
    cli_card.add_parsers(sub)
    cli_pipeline.add_parsers(sub)
    cli_endpoint.add_parsers(sub)

    p = add_command(sub, "version", help="versions for CI",
                    examples=["mlops version next --config mlops.yaml --build-number $CI_PIPELINE_IID "
                              "--commit $CI_COMMIT_SHA"])
    vsub = p.add_subparsers(dest="version_command", required=True, metavar="ACTION")
    n = add_command(vsub, "next", help="print the image version and tags as dotenv lines",
                    examples=["mlops version next --config mlops.yaml --build-number 42 --commit 3f2a9c1 > build.env"])
    n.add_argument("--config", required=True, help="the model's mlops.yaml (its version: gives MAJOR.MINOR)")
    n.add_argument("--build-number", type=int, required=True, help="for example $CI_PIPELINE_IID")
    n.add_argument("--commit", required=True, help="for example $CI_COMMIT_SHA")
    n.set_defaults(func=cmd_version_next)

    p = add_command(sub, "shards", help="split the models over several loader files (parse-time sharding)",
                    examples=["mlops shards write --count 4 --dags-folder dags"])
    ssub = p.add_subparsers(dest="shards_command", required=True, metavar="ACTION")
    w = add_command(ssub, "write", help="write mlops_dags_<i>.py for i in 0..COUNT-1 (and remove stale ones)",
                    examples=["mlops shards write --count 4 --error-files 2 --dags-folder dags"])
    w.add_argument("--count", type=int, required=True, help="number of shard files, for example 4")
    w.add_argument("--error-files", type=int, default=1,
                   help="also split mlops_config_errors.py into this many files (default 1: keep the one file)")
    w.add_argument("--dags-folder", default="dags", help="where to write them (default: dags)")
    w.set_defaults(func=cmd_shards_write)

    p = add_command(
        sub, "up", help="run your models on a local Airflow (scheduler, dag-processor, triggerer, api-server) until Ctrl-C",
        examples=["mlops up examples/breast-cancer --port 8080"],
        details="Start a local Airflow for the mlops.yaml files under PATH and print the UI's address and login.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="model folders (with mlops.yaml) or mlops.yaml files")
    p.add_argument("--home", default=".mlops-up", help="where Airflow's DB, logs and the registry live (default .mlops-up)")
    p.add_argument("--port", type=int, default=8080, help="the UI's port on 127.0.0.1 (default 8080; 0: a free one)")
    p.add_argument("--postgres", action="store_true",
                   help="use a throw-away PostgreSQL cluster instead of SQLite (needs Debian's postgresql)")
    p.set_defaults(func=cmd_up)

    p = add_command(sub, "demo", help="run the example model's full pipeline locally",
                    examples=["mlops demo", "mlops demo --workdir /tmp/demo --keep-serving"])
    p.add_argument("--workdir", default=".demo", help="where the demo keeps Airflow's DB and the registry")
    p.add_argument("--keep-serving", action="store_true", help="leave the endpoint running at the end")
    p.set_defaults(func=cmd_demo)
    add_debug_flag(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mlops``; a failure is one line on stderr and exit 1 (``--debug``: with the traceback)."""
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
