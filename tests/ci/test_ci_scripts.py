"""
The MLOps pipeline's job scripts (scripts/ci/), run as the jobs run them.

Real: bash, the mlops CLI of this checkout, boto3 against moto (ECR, S3), the trigger Lambda's
handler (called in-process by ci_aws.py, as ``aws lambda invoke`` would reach it) against a real
Airflow api-server, and once the real container engine (podman) building the example's image.
Stand-ins, because they cannot run here: docker login and push (fake_docker.py pushes manifests
to moto) and GitLab's job artifacts API (a loopback HTTP server).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import boto3
import pytest
from ci_testenv import (
    EXAMPLE,
    REPO,
    bundle_artifacts,
    containers_env,
    engine_shim,
    fake_gitlab,
    read_dotenv,
    run_script,
)
from trigger_testenv import COMMIT, ECR_REGISTRY, aws_env

from airflow_provider_mlops.engine import find_engine

PROJECT_ID, JOB_ID, JOB_TOKEN = "314", "2718", "job-token-value"
REPOSITORY = "demo/breast-cancer"
BUCKET = "mlops-dev-dags"


def upstream_env(gitlab_url: str, **extra: str) -> dict[str, str]:
    return {
        "CI_API_V4_URL": gitlab_url,
        "MLOPS_GITLAB_API_URL": gitlab_url,
        "CI_JOB_TOKEN": JOB_TOKEN,
        "MLOPS_UPSTREAM_PROJECT_ID": PROJECT_ID,
        "MLOPS_UPSTREAM_PROJECT_PATH": "ml/breast-cancer",
        "MLOPS_UPSTREAM_JOB_ID": JOB_ID,
        "MLOPS_UPSTREAM_COMMIT_SHA": COMMIT,
        "MLOPS_UPSTREAM_PIPELINE_IID": "7",
        **extra,
    }


@pytest.fixture
def prepared(job):
    """The prepare job's output: the example model unpacked in model/, and version.env."""
    workdir, env = job
    with fake_gitlab() as gitlab:
        gitlab.tokens["JOB-TOKEN"] = JOB_TOKEN
        gitlab.artifacts[(PROJECT_ID, JOB_ID)] = bundle_artifacts(EXAMPLE, COMMIT)
        env.update(upstream_env(gitlab.url))
        fetched = run_script("fetch_upstream.sh", env=env, cwd=workdir)
        assert fetched.returncode == 0, fetched.output
        versioned = run_script("version.sh", "version.env", env=env, cwd=workdir)
        assert versioned.returncode == 0, versioned.output
    env.update(read_dotenv(workdir / "version.env"))
    return workdir, env


# --- prepare: fetch the upstream bundle, allocate the version ---------------------------------


def test_prepare_fetches_the_bundle_with_the_job_token_and_writes_the_version(job):
    workdir, env = job
    with fake_gitlab() as gitlab:
        gitlab.tokens["JOB-TOKEN"] = JOB_TOKEN
        gitlab.artifacts[(PROJECT_ID, JOB_ID)] = bundle_artifacts(EXAMPLE, COMMIT)
        env.update(upstream_env(gitlab.url))
        fetched = run_script("fetch_upstream.sh", env=env, cwd=workdir)
        assert fetched.returncode == 0, fetched.output
        (request,) = gitlab.requests
    assert request["path"] == f"/api/v4/projects/{PROJECT_ID}/jobs/{JOB_ID}/artifacts"
    assert request["job-token"] == JOB_TOKEN
    assert JOB_TOKEN not in fetched.output
    assert (workdir / "model" / "mlops.yaml").read_text() == (EXAMPLE / "mlops.yaml").read_text()
    assert (workdir / "model" / "Dockerfile").is_file()

    versioned = run_script("version.sh", "version.env", env=env, cwd=workdir)
    assert versioned.returncode == 0, versioned.output
    assert read_dotenv(workdir / "version.env") == {
        "MLOPS_PROJECT": "demo",
        "MLOPS_MODEL": "breast-cancer",
        "MLOPS_VERSION": "1.0.7",
        "MLOPS_IMAGE_TAG": "1.0.7",
        "MLOPS_COMMIT_TAG": COMMIT[:12],
        "MLOPS_ECR_REPOSITORY": REPOSITORY,
        "MLOPS_COMMIT": COMMIT,
    }


def test_prepare_uses_a_private_token_when_one_is_given(job):
    workdir, env = job
    with fake_gitlab() as gitlab:
        gitlab.tokens["PRIVATE-TOKEN"] = "glpat-read-api"
        gitlab.artifacts[(PROJECT_ID, JOB_ID)] = bundle_artifacts(EXAMPLE, COMMIT)
        env.update(upstream_env(gitlab.url, MLOPS_UPSTREAM_TOKEN="glpat-read-api"))
        result = run_script("fetch_upstream.sh", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    assert "glpat-read-api" not in result.output


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("token-refused", "401"),
        ("no-such-job", "did the model repository's mlops:bundle job run"),
        ("other-commit", "not MLOPS_UPSTREAM_COMMIT_SHA"),
        ("traversal-member", "cannot unpack"),
        ("job-id-not-digits", "must be a job id"),
        ("config-path-escapes", "must be a relative path"),
    ],
)
def test_prepare_refuses_bad_upstreams(job, case, expected):
    workdir, env = job
    with fake_gitlab() as gitlab:
        gitlab.tokens["JOB-TOKEN"] = JOB_TOKEN
        artifacts = bundle_artifacts(EXAMPLE, COMMIT)
        if case == "other-commit":
            artifacts = bundle_artifacts(EXAMPLE, "f" * 40)
        if case == "traversal-member":
            artifacts = bundle_artifacts(EXAMPLE, COMMIT, extra_members={"../../escaped.txt": b"x"})
        gitlab.artifacts[(PROJECT_ID, JOB_ID)] = artifacts
        env.update(upstream_env(gitlab.url))
        if case == "token-refused":
            env["CI_JOB_TOKEN"] = "wrong"
        if case == "no-such-job":
            env["MLOPS_UPSTREAM_JOB_ID"] = "999"
        if case == "job-id-not-digits":
            env["MLOPS_UPSTREAM_JOB_ID"] = "1/../../../users"
        if case == "config-path-escapes":
            env["MLOPS_CONFIG"] = "../../etc/passwd"
        result = run_script("fetch_upstream.sh", env=env, cwd=workdir)
    assert result.returncode != 0
    assert expected in result.output, result.output
    assert not (workdir.parent / "escaped.txt").exists()


def test_version_refuses_an_invalid_config(prepared):
    workdir, env = prepared
    config = workdir / "model" / "mlops.yaml"
    config.write_text(config.read_text().replace("model: breast-cancer", "model: Breast_Cancer"))
    result = run_script("version.sh", "version.env", env=env, cwd=workdir)
    assert result.returncode != 0
    assert "model" in result.output


# --- lint and test ----------------------------------------------------------------------------


def test_lint_runs_ruff_on_the_model(prepared):
    workdir, env = prepared
    assert run_script("lint.sh", "model", env=env, cwd=workdir).returncode == 0
    (workdir / "model" / "bad.py").write_text("import os\n")
    result = run_script("lint.sh", "model", env=env, cwd=workdir)
    assert result.returncode != 0 and "F401" in result.output


def test_test_job_passes_without_tests_and_runs_them_when_present(prepared):
    workdir, env = prepared
    env["MLOPS_SKIP_INSTALL"] = "true"  # the example's requirements are the job image's business
    result = run_script("test.sh", "model", env=env, cwd=workdir)
    assert result.returncode == 0 and "no tests found" in result.output
    (workdir / "model" / "test_smoke.py").write_text("def test_fails():\n    assert False\n")
    result = run_script("test.sh", "model", env=env, cwd=workdir)
    assert result.returncode != 0
    assert (workdir / "report.xml").is_file()


# --- package: build, tag, push to ECR ---------------------------------------------------------


@pytest.fixture
def ecr(moto, prepared):
    workdir, env = prepared
    env.update(aws_env(moto), FAKE_DOCKER_LOG=str(workdir / "docker.log"))
    client = boto3.client(
        "ecr",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")  # Terraform's
    return client, workdir, env


def docker_calls(workdir):
    return [json.loads(line) for line in (workdir / "docker.log").read_text().splitlines()]


def test_package_pushes_the_semver_and_commit_tags(ecr):
    client, workdir, env = ecr
    result = run_script("package.sh", "package.env", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    tags = client.describe_images(repositoryName=REPOSITORY)["imageDetails"][0]["imageTags"]
    assert sorted(tags) == sorted(["1.0.7", COMMIT[:12]])
    package = read_dotenv(workdir / "package.env")
    digest = client.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": "1.0.7"}])
    assert package["MLOPS_IMAGE_DIGEST"] == digest["imageDetails"][0]["imageDigest"]
    assert package["MLOPS_IMAGE"] == f"{ECR_REGISTRY}/{REPOSITORY}:1.0.7@{package['MLOPS_IMAGE_DIGEST']}"
    login, build, *pushes = docker_calls(workdir)
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", ECR_REGISTRY]
    assert login["password_given"]
    assert f"org.opencontainers.image.revision={COMMIT}" in build["argv"]
    assert [p["argv"][1] for p in pushes] == [
        f"{ECR_REGISTRY}/{REPOSITORY}:1.0.7",
        f"{ECR_REGISTRY}/{REPOSITORY}:{COMMIT[:12]}",
    ]


def test_package_never_overwrites_a_version_and_reuses_the_commit_tag(ecr):
    client, workdir, env = ecr
    assert run_script("package.sh", env=env, cwd=workdir).returncode == 0
    again = run_script("package.sh", env=env, cwd=workdir)
    assert again.returncode != 0 and "already exists" in again.output
    env.update(MLOPS_VERSION="1.0.8")  # a new pipeline of the same commit
    rebuilt = run_script("package.sh", env=env, cwd=workdir)
    assert rebuilt.returncode == 0, rebuilt.output
    assert "pushing 1.0.8 only" in rebuilt.output
    tags = {
        t
        for image in client.describe_images(repositoryName=REPOSITORY)["imageDetails"]
        for t in image.get("imageTags", [])
    }
    assert tags == {"1.0.7", "1.0.8", COMMIT[:12]}


def test_package_without_the_models_repository_says_to_add_it_to_terraform(ecr):
    client, workdir, env = ecr
    client.delete_repository(repositoryName=REPOSITORY, force=True)
    result = run_script("package.sh", env=env, cwd=workdir)
    assert result.returncode == 3
    assert "terraform/envs/" in result.output
    assert not (workdir / "docker.log").exists(), "nothing was built"


@pytest.mark.timeout(1800)  # the first run installs podman and builds the base image
def test_package_builds_the_real_image_with_the_engine_and_labels_it(ecr, tmp_path):
    """
    package.sh with the real engine (podman here, docker where its daemon answers) building the
    example's image from the wheel of this checkout. Login and push stay on the fake: moto serves
    ECR's API but not the registry protocol a real push speaks (see ci_testenv.engine_shim).
    """
    client, workdir, env = ecr
    engine = find_engine({**os.environ, **containers_env()})
    env.update(containers_env(), MLOPS_UPSTREAM_PROJECT_URL="https://gitlab.example.com/ml/breast-cancer")
    env["MLOPS_DOCKER"] = str(engine_shim(tmp_path / "engine", engine.binary))
    image = f"{ECR_REGISTRY}/{REPOSITORY}"
    try:
        result = run_script("package.sh", "package.env", env=env, cwd=workdir, timeout=1500)
        assert result.returncode == 0, result.output
        built = engine.image(f"{image}:1.0.7")
        assert built is not None and engine.image(f"{image}:{COMMIT[:12]}")["Id"] == built["Id"]
        labels = built["Config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == "1.0.7"
        assert labels["org.opencontainers.image.revision"] == COMMIT
        assert labels["org.opencontainers.image.source"] == "https://gitlab.example.com/ml/breast-cancer"
        name = f"mlops-ci-test-{tmp_path.name}"
        entrypoints = engine.run(f"{image}:1.0.7", ["sh", "-c", "command -v train && command -v serve"], name=name, timeout=300)
        assert entrypoints.logs.split() == ["/usr/local/bin/train", "/usr/local/bin/serve"], entrypoints.logs
        tags = client.describe_images(repositoryName=REPOSITORY)["imageDetails"][0]["imageTags"]
        assert sorted(tags) == sorted(["1.0.7", COMMIT[:12]])
    finally:
        engine.call(["rmi", "--force", f"{image}:1.0.7", f"{image}:{COMMIT[:12]}"], timeout=120, check=False)


# --- publish: validate and upload mlops.yaml --------------------------------------------------


@pytest.fixture
def packaged(ecr):
    client, workdir, env = ecr
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=BUCKET)
    env["MLOPS_DAGS_BUCKET"] = BUCKET
    result = run_script("package.sh", "package.env", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    env.update(read_dotenv(workdir / "package.env"))
    return s3, workdir, env


def test_publish_uploads_the_config_and_the_release(packaged):
    s3, workdir, env = packaged
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    prefix = "dags/mlops/demo/breast-cancer"
    config = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/mlops.yaml")
    assert config["Body"].read() == (EXAMPLE / "mlops.yaml").read_bytes()
    assert config["Metadata"] == {"gitlab-project": "ml/breast-cancer"}
    release = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/release.json")["Body"].read())
    assert {k: release[k] for k in ("version", "image", "commit")} == {
        "version": "1.0.7",
        "image": env["MLOPS_IMAGE"],
        "commit": COMMIT,
    }


def test_publish_refuses_a_name_another_project_owns(packaged):
    s3, workdir, env = packaged
    assert run_script("publish.sh", env=env, cwd=workdir).returncode == 0
    env["MLOPS_UPSTREAM_PROJECT_PATH"] = "other-team/copycat"
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode != 0 and "ml/breast-cancer" in result.output
    # ... and package.sh stops before pushing an image into that model's repository.
    env["MLOPS_VERSION"] = "1.0.9"
    assert run_script("package.sh", env=env, cwd=workdir).returncode != 0


def test_publish_refuses_an_invalid_config_before_uploading(packaged):
    s3, workdir, env = packaged
    config = workdir / "model" / "mlops.yaml"
    config.write_text(config.read_text() + "\nunknown_key: 1\n")
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode != 0 and "unknown_key" in result.output
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


PREFIX = "dags/mlops/demo/breast-cancer"


def published(s3) -> dict[str, dict]:
    """Every object under the model's prefix: ``relative path -> head_object``."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])]
    return {key.removeprefix(f"{PREFIX}/"): s3.head_object(Bucket=BUCKET, Key=key) for key in keys}


def download_prefix(s3, target):
    """The prefix as MWAA syncs it to the workers: <target>/demo/breast-cancer/..."""
    for relative in published(s3):
        path = target / "demo" / "breast-cancer" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{relative}")["Body"].read())
    return target


def test_publish_ships_the_files_the_config_names_and_the_download_validates(packaged, tmp_path):
    s3, workdir, env = packaged
    model = workdir / "model"
    (model / "__pycache__").mkdir()
    (model / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (model / ".env").write_text("SECRET=do-not-publish\n")
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    objects = published(s3)
    expected = {p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert set(objects) == expected | {"release.json"}
    assert {o["Metadata"]["gitlab-project"] for o in objects.values()} == {"ml/breast-cancer"}
    assert objects["mlops.yaml"]["ContentType"] == "application/yaml"
    # What the DAG loader reads after MWAA's sync: valid, and every file it names is there.
    synced = download_prefix(s3, tmp_path / "synced")
    folder = synced / "demo" / "breast-cancer"
    for name in ("train.py", "evaluate.py", "inference.py", "data/train/train.csv", "data/test/test.csv",
                 "smoke_payload.json"):
        assert (folder / name).read_bytes() == (EXAMPLE / name).read_bytes(), name
    for args in (["validate", str(synced)], ["validate", "--publish", str(synced)]):
        validated = subprocess.run(["mlops", *args], env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
        assert validated.returncode == 0, validated.stdout + validated.stderr
        assert "1 valid, 0 error(s)" in validated.stdout


def test_publish_deletes_what_an_earlier_publish_left_and_keeps_the_rest(packaged):
    s3, workdir, env = packaged
    extra = workdir / "model" / "data" / "train" / "old-rows.csv"
    extra.write_text("a,b\n1,2\n")
    assert run_script("publish.sh", env=env, cwd=workdir).returncode == 0
    assert "data/train/old-rows.csv" in published(s3)
    # Terraform's per-model defaults: under the prefix, published by nobody from CI.
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/mlops-defaults.yaml", Body=b"owner: platform\n")
    extra.unlink()
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    objects = published(s3)
    assert "data/train/old-rows.csv" not in objects
    assert f"deleted s3://{BUCKET}/{PREFIX}/data/train/old-rows.csv" in result.output
    assert "mlops-defaults.yaml" in objects and "train.py" in objects


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("entrypoint: train.py", "entrypoint: trian.py", "field 'training.entrypoint'"),
        ("train: data/train", "train: data/trian", "did you mean 'data/train'?"),
        ("payload_file: smoke_payload.json", "payload_file: ../smoke_payload.json", "outside the model's folder"),
    ],
)
def test_publish_refuses_a_config_whose_files_cannot_be_published(packaged, old, new, expected):
    s3, workdir, env = packaged
    config = workdir / "model" / "mlops.yaml"
    config.write_text(config.read_text().replace(old, new))
    shutil.copy(EXAMPLE / "smoke_payload.json", workdir / "smoke_payload.json")  # there, but outside
    result = run_script("publish.sh", env=env, cwd=workdir)
    assert result.returncode != 0
    assert expected in result.output and "model/mlops.yaml:" in result.output, result.output
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_publish_is_bounded_in_size(packaged):
    s3, workdir, env = packaged
    (workdir / "model" / "data" / "train" / "big.csv").write_bytes(b"0" * (2 * 1024 * 1024))
    result = run_script("publish.sh", env={**env, "MLOPS_PUBLISH_MAX_MB": "1"}, cwd=workdir)
    assert result.returncode != 0
    assert "over the 1.0 MB limit" in result.output and "data/train/big.csv (2.0 MB)" in result.output
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


# --- trigger-train, deploy, retrain: the Lambda handler against Airflow ----------------------


def lambda_env(airflow_stack) -> dict[str, str]:
    return {**airflow_stack.lambda_env(), "MLOPS_TRIGGER_LOCAL_HANDLER": str(REPO / "lambda")}


def test_trigger_train_then_deploy_start_runs_and_retries_reuse_them(packaged, airflow_stack):
    s3, workdir, env = packaged
    env.update(lambda_env(airflow_stack))
    result = run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    train = read_dotenv(workdir / "train.env")
    assert train["MLOPS_DAG_ID"] == "mlops__demo__breast-cancer__train"
    run = airflow_stack.client().get_dag_run(train["MLOPS_DAG_ID"], train["MLOPS_DAG_RUN_ID"])
    assert run["conf"] == {
        "version": "1.0.7",
        "image": env["MLOPS_IMAGE"],
        "commit": COMMIT,
        "requested_by": "gitlab:alice:pipeline:4242",
    }

    retried = run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir)
    assert retried.returncode == 0 and "already existed" in retried.output
    assert read_dotenv(workdir / "train.env") == train

    deployed = run_script("trigger.sh", "deploy", env=env, cwd=workdir)
    assert deployed.returncode == 0, deployed.output
    assert read_dotenv(workdir / "deploy.env")["MLOPS_DAG_ID"] == "mlops__demo__breast-cancer__deploy"


def test_trigger_fails_at_once_on_a_refused_event(packaged, airflow_stack):
    s3, workdir, env = packaged
    env.update(
        lambda_env(airflow_stack),
        MLOPS_IMAGE=f"evil.example.com/{REPOSITORY}:1.0.7",
        MLOPS_TRIGGER_RETRY_SECONDS="60",
    )
    before = airflow_stack.count_runs()
    result = run_script("trigger.sh", "train", env=env, cwd=workdir, timeout=30)
    assert result.returncode == 1
    assert "outside the ECR repository" in result.output and "retrying" not in result.output
    assert airflow_stack.count_runs() == before


def test_trigger_retries_a_dag_airflow_does_not_know_yet_then_gives_up(packaged, airflow_stack):
    s3, workdir, env = packaged
    env.update(
        lambda_env(airflow_stack),
        MLOPS_MODEL="not-yet-parsed",
        MLOPS_IMAGE=env["MLOPS_IMAGE"].replace("breast-cancer", "not-yet-parsed"),
        MLOPS_TRIGGER_WAIT_SECONDS="2",
        MLOPS_TRIGGER_RETRY_SECONDS="1",
    )
    result = run_script("trigger.sh", "train", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 1
    assert "dag_not_found" in result.output and "retrying in 1s" in result.output


def test_scheduled_retrain_starts_each_released_model(packaged, airflow_stack):
    s3, workdir, env = packaged
    assert run_script("publish.sh", env=env, cwd=workdir).returncode == 0
    # A second published model whose image has since gone from ECR: reported, the others go on.
    s3.put_object(Bucket=BUCKET, Key="dags/mlops/demo/gone/mlops.yaml", Body=b"project: demo\n")
    s3.put_object(
        Bucket=BUCKET,
        Key="dags/mlops/demo/gone/release.json",
        Body=json.dumps(
            {"version": "1.0.1", "image": f"{ECR_REGISTRY}/demo/gone:1.0.1", "commit": COMMIT}
        ).encode(),
    )
    env.update(lambda_env(airflow_stack), CI_PIPELINE_ID="5555")
    for key in ("MLOPS_PROJECT", "MLOPS_MODEL", "MLOPS_VERSION", "MLOPS_IMAGE", "MLOPS_COMMIT"):
        env.pop(key)
    result = run_script("retrain.sh", env=env, cwd=workdir)
    assert result.returncode == 1
    assert "retrain failed for: demo/gone" in result.output
    retrain = read_dotenv(workdir / "retrain-demo-breast-cancer.env")
    run = airflow_stack.client().get_dag_run(retrain["MLOPS_DAG_ID"], retrain["MLOPS_DAG_RUN_ID"])
    assert retrain["MLOPS_DAG_ID"] == "mlops__demo__breast-cancer__retrain"
    assert run["conf"]["requested_by"] == "gitlab:alice:pipeline:5555"


def test_retrain_with_nothing_published_is_a_no_op(moto, job):
    workdir, env = job
    env.update(aws_env(moto), MLOPS_DAGS_BUCKET=BUCKET)
    boto3.client(
        "s3",
        endpoint_url=moto,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    result = run_script("retrain.sh", env=env, cwd=workdir)
    assert result.returncode == 0 and "nothing to retrain" in result.output


# --- what a triggering pipeline cannot change inside GitLab ----------------------------------


@pytest.fixture
def gitlab_job(tmp_path, job):
    """A job inside GitLab (GITLAB_CI=true) in a checkout whose ci/platform.env names the bucket."""
    workdir, env = job
    checkout = tmp_path / "checkout"
    (checkout / "ci").mkdir(parents=True)
    (checkout / "ci" / "platform.env").write_text(
        "# test installation\nMLOPS_DAGS_BUCKET=the-real-bucket\nMLOPS_CONFIGS_PREFIX=dags/mlops\n"
        "MLOPS_GITLAB_API_URL=https://127.0.0.1:9/api/v4\n"
    )
    env.update(GITLAB_CI="true", CI_PROJECT_DIR=str(checkout))
    return workdir, env


def test_inside_gitlab_platform_settings_come_from_the_file(gitlab_job):
    workdir, env = gitlab_job
    probe = workdir / "probe.sh"
    probe.write_text(
        f'. "{REPO}/scripts/ci/lib.sh"\n'
        'echo "$MLOPS_DAGS_BUCKET $MLOPS_CONFIGS_PREFIX $MLOPS_PYTHON $MLOPS_GITLAB_API_URL '
        '${MLOPS_TRIGGER_LOCAL_HANDLER:-none} ${MLOPS_TRIGGER_FUNCTION:-none}"\n'
    )
    env.update(
        MLOPS_DAGS_BUCKET="attacker-bucket",
        MLOPS_CONFIGS_PREFIX="dags",
        MLOPS_PYTHON="/tmp/evil",
        MLOPS_GITLAB_API_URL="http://attacker.example/api/v4",
        MLOPS_TRIGGER_LOCAL_HANDLER="model",
        MLOPS_TRIGGER_FUNCTION="attacker-function",
    )
    result = run_script(str(probe), env=env, cwd=workdir)
    assert result.returncode == 0, result.output
    assert result.stdout.split() == [
        "the-real-bucket",
        "dags/mlops",
        "python3",
        "https://127.0.0.1:9/api/v4",
        "none",
        "none",
    ]


def test_inside_gitlab_fetch_never_sends_the_job_token_elsewhere(gitlab_job):
    workdir, env = gitlab_job
    with fake_gitlab() as gitlab:
        gitlab.tokens["JOB-TOKEN"] = JOB_TOKEN
        # A triggering pipeline points both addresses at a server that is not this GitLab.
        env.update(upstream_env(gitlab.url))
        shutil.rmtree(workdir / "model", ignore_errors=True)
        result = run_script("fetch_upstream.sh", env=env, cwd=workdir, timeout=60)
        assert gitlab.requests == []
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("name", "value", "script"),
    [
        ("MLOPS_TRIGGER_WAIT_SECONDS", "a[$(touch pwned)]", "trigger.sh"),
        ("MLOPS_MODEL_DIR", "../../..", "package.sh"),
        ("MLOPS_CONFIG", "/etc/passwd", "publish.sh"),
    ],
)
def test_variables_from_a_triggering_pipeline_are_checked(prepared, name, value, script):
    workdir, env = prepared
    env.update({name: value, "MLOPS_IMAGE": "x", "MLOPS_TRIGGER_FUNCTION": "f", "MLOPS_DAGS_BUCKET": "b"})
    result = run_script(
        script, "train" if script == "trigger.sh" else "out.env", env=env, cwd=workdir, timeout=60
    )
    assert result.returncode != 0
    assert name in result.output, result.output
    assert not (workdir / "pwned").exists()
