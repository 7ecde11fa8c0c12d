"""
.gitlab-ci.yml and the ci/ templates: GitLab's CI schema, the contract between the two
pipelines, the trust rules, and (when gitlab-ci-local is installed) which jobs each kind of
pipeline runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ci_testenv import REPO, SCRIPTS

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
GITLAB_CI_LOCAL = REPO / "ci-tools" / "node_modules" / ".bin" / "gitlab-ci-local"
PIPELINE = REPO / ".gitlab-ci.yml"
TEMPLATE = REPO / "ci" / "model-repo.gitlab-ci.yml"


class GitLabLoader(yaml.SafeLoader):
    """Reads GitLab's !reference tags as plain lists."""


GitLabLoader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=GitLabLoader)


def jobs(config: dict) -> dict[str, dict]:
    reserved = {"workflow", "stages", "variables", "default", "include", "image", "services", "cache"}
    return {k: v for k, v in config.items() if k not in reserved and not k.startswith(".")}


def resolved(config: dict, job: dict) -> dict:
    """The job with its ``extends`` merged in (GitLab's deep merge, arrays replaced)."""
    merged: dict = {}
    parents = job.get("extends", [])
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, resolved(config, config[parent]))
    return _merge(merged, {k: v for k, v in job.items() if k != "extends"})


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHECK_JSONSCHEMA),
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- GitLab's CI schema ------------------------------------------------------------------------


def test_pipeline_and_templates_match_gitlabs_ci_schema():
    files = [PIPELINE, *sorted((REPO / "ci").glob("*.yml"))]
    result = schema_check(*files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("when: manual", "when: sometimes"),
        ("  needs: []", "  needs: 3"),
        ("stage: package", "stage: [1]"),
        ("  stage: deploy", "  stagee: deploy"),
    ],
)
def test_the_schema_check_catches_mistakes(tmp_path, old, new):
    source = TEMPLATE if old in TEMPLATE.read_text() else PIPELINE
    broken = tmp_path / source.name
    broken.write_text(source.read_text().replace(old, new, 1))
    assert schema_check(broken).returncode != 0


def test_check_ci_script_passes():
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "check_ci.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the contract between the model pipeline and the MLOps pipeline --------------------------


def test_template_triggers_the_mlops_pipeline_with_what_it_needs():
    template = load(TEMPLATE)
    trigger_job = template["mlops:pipeline"]
    assert trigger_job["trigger"] == {
        "project": "$MLOPS_PIPELINE_PROJECT",
        "branch": "$MLOPS_PIPELINE_BRANCH",
        "strategy": "depend",
    }
    assert template["variables"]["MLOPS_PIPELINE_BRANCH"] == "main"
    passed = trigger_job["variables"]
    assert passed["MLOPS_UPSTREAM_PROJECT_ID"] == "$CI_PROJECT_ID"
    assert passed["MLOPS_UPSTREAM_COMMIT_SHA"] == "$CI_COMMIT_SHA"
    # The job id is the bundle job's, passed through its dotenv report.
    assert passed["MLOPS_UPSTREAM_JOB_ID"] == "$MLOPS_BUNDLE_JOB_ID"
    bundle = template["mlops:bundle"]
    assert bundle["artifacts"]["reports"]["dotenv"] == "mlops-bundle.env"
    assert "MLOPS_BUNDLE_JOB_ID=$CI_JOB_ID" in "\n".join(bundle["script"])
    assert set(bundle["artifacts"]["paths"]) == {"mlops-bundle.tar.gz", "mlops-bundle.json"}
    assert set(trigger_job["needs"]) == {"mlops:lint", "mlops:test", "mlops:bundle"}


def test_every_upstream_variable_the_pipeline_reads_is_passed_by_the_template():
    passed = set(load(TEMPLATE)["mlops:pipeline"]["variables"])
    read = set(re.findall(r"MLOPS_UPSTREAM_[A-Z_]+", "".join(p.read_text() for p in SCRIPTS.glob("*") if p.is_file())))
    read -= {"MLOPS_UPSTREAM_TOKEN"}  # optional, set in the MLOps project, never by the template
    assert read <= passed, read - passed


def test_template_uses_only_default_stages():
    template = load(TEMPLATE)
    assert "stages" not in template
    assert {job["stage"] for job in jobs(template).values()} <= {"build", "test", "deploy"}


def test_pipeline_has_the_jobs_the_issue_names():
    pipeline = load(PIPELINE)
    names = set(jobs(pipeline))
    assert {
        "lint",
        "test",
        "package",
        "publish",
        "trigger-train",
        "deploy",
        "retrain",
        "terraform:fmt",
        "terraform:validate",
        "terraform:plan",
        "terraform:apply",
    } <= names
    assert pipeline["deploy"]["when"] == "manual"
    assert resolved(pipeline, pipeline["terraform:apply"])["rules"][0]["when"] == "manual"
    assert pipeline["retrain"]["rules"] == [{"if": '$MLOPS_PIPELINE == "retrain"'}]


def test_versions_pass_between_stages_as_dotenv():
    pipeline = load(PIPELINE)
    assert pipeline["prepare"]["artifacts"]["reports"]["dotenv"] == "version.env"
    assert pipeline["package"]["artifacts"]["reports"]["dotenv"] == "package.env"
    for job in ("package", "publish", "trigger-train", "deploy"):
        needs = [n if isinstance(n, str) else n["job"] for n in pipeline[job]["needs"]]
        assert "prepare" in needs, job
    for job in ("publish", "trigger-train", "deploy"):
        assert "package" in pipeline[job]["needs"], job


# --- trust -------------------------------------------------------------------------------------


def test_every_job_script_is_a_file_in_scripts_ci_and_every_script_is_used():
    pipeline_text = PIPELINE.read_text()
    used = set(re.findall(r"scripts/ci/([a-z_]+\.sh)", pipeline_text)) - {"lib.sh"}
    present = {p.name for p in SCRIPTS.glob("*.sh")} - {"lib.sh"}
    assert used == present
    for name in present:
        assert subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=False).returncode == 0, name


def test_no_job_image_is_a_variable():
    """Variables from a triggering pipeline outrank this project's: an image variable would let a
    model repository choose the image of a job that holds AWS credentials."""
    pipeline = load(PIPELINE)
    for name, job in jobs(pipeline).items():
        job = resolved(pipeline, job)
        image = job.get("image")
        image = image["name"] if isinstance(image, dict) else image
        assert image and "$" not in image, name
        for service in job.get("services", []):
            assert "$" not in (service["name"] if isinstance(service, dict) else service), name


def test_only_jobs_that_need_aws_get_an_id_token():
    pipeline = load(PIPELINE)
    with_token = {name for name, job in jobs(pipeline).items() if "id_tokens" in resolved(pipeline, job)}
    assert with_token == {
        "package",
        "publish",
        "trigger-train",
        "deploy",
        "notify-failure",
        "retrain",
        "terraform:plan",
        "terraform:apply",
    }
    # Model code runs in lint and test: they get neither a token nor artifacts into AWS jobs.
    needs = {n["job"]: n for n in pipeline["package"]["needs"]}
    assert needs["lint"]["artifacts"] is False and needs["test"]["artifacts"] is False


def test_a_failed_model_job_leaves_a_note_that_the_notify_job_reads():
    """Each model job records its failure in after_script; notify-failure runs last, on failure only."""
    pipeline = load(PIPELINE)
    model_jobs = [name for name, job in jobs(pipeline).items()
                  if resolved(pipeline, job).get("rules") == [{"if": '$MLOPS_PIPELINE == "model"'}]]
    assert set(model_jobs) == {"prepare", "lint", "test", "package", "publish", "trigger-train", "deploy"}
    for name in model_jobs:
        job = resolved(pipeline, pipeline[name])
        assert job["after_script"] == ["sh scripts/ci/record_failure.sh"], name
        assert job["artifacts"]["when"] == "always" and ".mlops-failed/" in job["artifacts"]["paths"], name
    notify = resolved(pipeline, pipeline["notify-failure"])
    assert notify["stage"] == ".post"
    assert notify["rules"] == [{"if": '$MLOPS_PIPELINE == "model"', "when": "on_failure"}]
    assert notify["script"] == ["bash scripts/ci/notify_failure.sh"]
    assert "after_script" not in notify
    # Notes from every job that can fail before it; the manual deploy may fail without failing the pipeline.
    assert set(notify["dependencies"]) == set(model_jobs) - {"deploy"}


def test_platform_settings_file_holds_only_known_settings():
    names = [
        line.split("=", 1)[0]
        for line in (REPO / "ci" / "platform.env").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    lib = (SCRIPTS / "lib.sh").read_text()
    allowed = re.search(r"MLOPS_PLATFORM_SETTINGS=\(([^)]*)\)", lib)[1].split()
    assert names and set(names) <= set(allowed)


# --- gitlab-ci-local: what each kind of pipeline runs -----------------------------------------

needs_gitlab_ci_local = pytest.mark.skipif(
    not GITLAB_CI_LOCAL.exists() or shutil.which("git") is None,
    reason="gitlab-ci-local is not installed (bash scripts/check_ci.sh installs it into ci-tools/)",
)


def git_repo(path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
            cwd=path,
            check=True,
            capture_output=True,
            timeout=60,
        )

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "snapshot")
    git("remote", "add", "origin", str(path))
    git("fetch", "-q", "origin")
    git("remote", "set-head", "origin", "main")


def listed_jobs(cwd: Path, *variables: str) -> list[str]:
    args = [
        str(GITLAB_CI_LOCAL),
        "--list-csv",
        "--ignore-predefined-vars",
        "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH",
    ]
    for variable in variables:
        args += ["--variable", variable]
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if ";" in line]
    return [line.split(";")[0] for line in lines[1:]]


@pytest.fixture(scope="module")
def pipeline_checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mlops-repo")
    shutil.copy(PIPELINE, root / ".gitlab-ci.yml")
    shutil.copytree(SCRIPTS, root / "scripts" / "ci")
    shutil.copytree(REPO / "ci", root / "ci", ignore=shutil.ignore_patterns("*.json"))
    git_repo(root)
    return root


@needs_gitlab_ci_local
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            ("CI_PIPELINE_SOURCE=pipeline", "MLOPS_UPSTREAM_PROJECT_ID=314"),
            ["prepare", "lint", "test", "package", "publish", "trigger-train", "deploy", "notify-failure"],
        ),
        (("CI_PIPELINE_SOURCE=schedule",), ["retrain"]),
        (("CI_PIPELINE_SOURCE=push",), ["self:lint", "self:test", "lambda:build"]),
    ],
    ids=["model", "retrain", "self"],
)
def test_each_kind_of_pipeline_runs_its_jobs(pipeline_checkout, variables, expected):
    assert listed_jobs(pipeline_checkout, *variables) == expected


@needs_gitlab_ci_local
def test_dependency_chain_of_the_model_pipeline_is_complete(pipeline_checkout):
    result = subprocess.run(
        [
            str(GITLAB_CI_LOCAL),
            "--validate-dependency-chain",
            "--list",
            "--variable",
            "CI_PIPELINE_SOURCE=pipeline",
            "--variable",
            "MLOPS_UPSTREAM_PROJECT_ID=314",
            "--ignore-predefined-vars",
            "CI_PIPELINE_SOURCE",
        ],
        cwd=pipeline_checkout,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_gitlab_ci_local
def test_a_model_repository_with_one_include_gets_the_mlops_jobs(tmp_path):
    model_repo = tmp_path / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model_repo)
    (model_repo / "ci").mkdir()
    shutil.copy(TEMPLATE, model_repo / "ci" / TEMPLATE.name)
    # In GitLab this is `include: {project: platform/mlops, file: ci/model-repo.gitlab-ci.yml}`;
    # gitlab-ci-local reads the same file locally.
    (model_repo / ".gitlab-ci.yml").write_text("include:\n  - local: ci/model-repo.gitlab-ci.yml\n")
    git_repo(model_repo)
    assert listed_jobs(model_repo, "CI_COMMIT_BRANCH=main", "CI_DEFAULT_BRANCH=main") == [
        "mlops:bundle",
        "mlops:lint",
        "mlops:test",
        "mlops:pipeline",
    ]
    assert listed_jobs(model_repo, "CI_COMMIT_BRANCH=feature", "CI_DEFAULT_BRANCH=main") == [
        "mlops:lint",
        "mlops:test",
    ]
