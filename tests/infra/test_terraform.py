"""
Structural tests of terraform/: every file parses, every reference resolves, and the security
properties the issue asks for are written in the code.

python-hcl2 keeps string quotes (``"\"mwaa\""``) and wraps expressions in ``${...}``; the helpers
below undo both. ``terraform validate`` and the mocked-provider ``terraform test`` run in
scripts/check_infra.sh, where a provider is at hand; these tests need only python-hcl2.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULES = TERRAFORM / "modules"
ENVIRONMENTS = ("dev", "stage", "prod")

TF_FILES = sorted(p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts)
MODULE_DIRS = sorted({p.parent for p in TF_FILES})

META_KEYS = {"__is_block__", "__comments__", "__inline_comments__"}
MODULE_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


# --- helpers ---------------------------------------------------------------------------------


@cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        return hcl2.load(fh)


def unquote(value: Any) -> Any:
    """``"\"x\""`` -> ``x``; ``"${var.x}"`` -> ``var.x``; other values unchanged."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        if value.startswith("${") and value.endswith("}"):
            return value[2:-1]
    return value


def blocks(module_dir: Path, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(module_dir.glob("*.tf")):
        out.extend(parse(path).get(kind, []))
    return out


def labelled(module_dir: Path, kind: str) -> dict[str, dict[str, Any]]:
    """``variable``/``output``/``module`` blocks by name."""
    return {unquote(name): body for block in blocks(module_dir, kind) for name, body in block.items()}


def typed(module_dir: Path, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    """``resource``/``data`` blocks by (type, name)."""
    return {
        (unquote(rtype), unquote(name)): body
        for block in blocks(module_dir, kind)
        for rtype, named in block.items()
        for name, body in named.items()
    }


def resource(module: str, rtype: str, name: str) -> dict[str, Any]:
    found = typed(MODULES / module, "resource").get((rtype, name))
    assert found is not None, f"modules/{module} has no {rtype}.{name}"
    return found


def data_source(module: str, dtype: str, name: str) -> dict[str, Any]:
    found = typed(MODULES / module, "data").get((dtype, name))
    assert found is not None, f"modules/{module} has no data.{dtype}.{name}"
    return found


def block(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The single nested block ``key`` of ``body``."""
    value = body[key]
    return value[0] if isinstance(value, list) else value


def strings(node: Any) -> list[str]:
    """Every string in a parsed tree, comments excluded."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() if k not in META_KEYS for s in strings(v)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def references(module_dir: Path, prefix: str) -> set[str]:
    pattern = re.compile(rf"(?<![\w.]){re.escape(prefix)}\.([A-Za-z_][\w-]*)")
    found: set[str] = set()
    for path in module_dir.glob("*.tf"):
        for text in strings(parse(path)):
            found.update(pattern.findall(text))
    return found


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document.get("statement", [])


def actions(statement: dict[str, Any]) -> list[str]:
    return [unquote(a) for a in statement.get("actions", [])]


def resources_of(statement: dict[str, Any]) -> list[str]:
    value = statement.get("resources", [])
    return [unquote(r) for r in value] if isinstance(value, list) else [unquote(value)]


def comments(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [c["value"] for c in node.get("__comments__", []) if isinstance(c, dict) and "value" in c]
        return own + [c for k, v in node.items() if k != "__comments__" for c in comments(v)]
    if isinstance(node, list):
        return [c for item in node for c in comments(item)]
    return []


# --- every file parses, every reference resolves ----------------------------------------------


def test_terraform_tree_has_the_modules_and_one_composition_root() -> None:
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} >= {
        "kms",
        "s3_buckets",
        "ecr",
        "sns",
        "iam",
        "lambda_trigger",
        "mwaa",
        "cloudwatch",
    }
    assert (TERRAFORM / "main.tf").is_file()
    roots = [d for d in MODULE_DIRS if labelled(d, "module")]
    assert roots == [TERRAFORM], f"one composition root expected, found {roots}"


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_variable_and_local_is_declared(module_dir: Path) -> None:
    declared_vars = set(labelled(module_dir, "variable"))
    assert references(module_dir, "var") <= declared_vars, "var.X used but not declared"
    declared_locals = {k for b in blocks(module_dir, "locals") for k in b if k not in META_KEYS}
    assert references(module_dir, "local") <= declared_locals, "local.X used but not declared"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_variable_is_used_and_documented(module_dir: Path) -> None:
    used = references(module_dir, "var")
    for name, body in labelled(module_dir, "variable").items():
        assert name in used, f"{module_dir.name}: variable {name} is declared but never used"
        assert unquote(body.get("description", "")), f"{module_dir.name}: variable {name} has no description"
        assert "type" in body, f"{module_dir.name}: variable {name} has no type"
    for name, body in labelled(module_dir, "output").items():
        assert unquote(body.get("description", "")), f"{module_dir.name}: output {name} has no description"


def test_module_calls_match_module_variables_and_outputs() -> None:
    calls = labelled(TERRAFORM, "module")
    assert calls, "the composition root calls no module"
    for name, call in calls.items():
        source = TERRAFORM / unquote(call["source"])
        assert source.is_dir(), f"module {name}: source {source} does not exist"
        variables = labelled(source, "variable")
        passed = {k for k in call if k not in META_KEYS | MODULE_META_ARGUMENTS}
        assert passed <= set(variables), f"module {name} passes unknown inputs {passed - set(variables)}"
        required = {v for v, body in variables.items() if "default" not in body}
        assert required <= passed, f"module {name} misses required inputs {required - passed}"

    used = re.compile(r"module\.([\w-]+)\.([\w-]+)")
    for path in TERRAFORM.glob("*.tf"):
        for text in strings(parse(path)):
            for module_name, output in used.findall(text):
                assert module_name in calls, f"{path.name}: module.{module_name} is not called"
                outputs = labelled(TERRAFORM / unquote(calls[module_name]["source"]), "output")
                assert output in outputs, f"{path.name}: module.{module_name}.{output} is not an output"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_has_tfvars_that_set_declared_variables(environment: str) -> None:
    tfvars = TERRAFORM / "envs" / f"{environment}.tfvars"
    backend = TERRAFORM / "envs" / f"{environment}.s3.tfbackend"
    assert tfvars.is_file() and backend.is_file()
    values = {k: v for k, v in parse(tfvars).items() if k not in META_KEYS}
    variables = labelled(TERRAFORM, "variable")
    assert set(values) <= set(variables), f"unknown variables {set(values) - set(variables)}"
    required = {v for v, body in variables.items() if "default" not in body}
    assert required <= set(values), f"{environment}.tfvars misses {required - set(values)}"
    assert unquote(values["environment"]) == environment
    assert re.fullmatch(r"\d{12}", unquote(values["aws_account_id"]))


def test_environments_are_separate_accounts() -> None:
    accounts = {unquote(parse(TERRAFORM / "envs" / f"{e}.tfvars")["aws_account_id"]) for e in ENVIRONMENTS}
    assert len(accounts) == len(ENVIRONMENTS)


def test_every_checkov_skip_gives_a_reason() -> None:
    skip = re.compile(r"checkov:skip=(CKV2?_[A-Z]+_\d+)(?::(.*))?")
    found = 0
    for path in TF_FILES:
        for comment in comments(parse(path)):
            match = skip.search(comment)
            if match:
                found += 1
                assert match.group(2) and len(match.group(2).strip()) > 20, (
                    f"{path}: {match.group(1)} has no reason"
                )
    assert found, "expected the documented skips"


# --- security properties ------------------------------------------------------------------


def test_s3_buckets_are_encrypted_versioned_private_and_lifecycled() -> None:
    for name in ("this", "access_logs"):
        versioning = resource("s3_buckets", "aws_s3_bucket_versioning", name)
        assert unquote(block(versioning, "versioning_configuration")["status"]) == "Enabled"

        public = resource("s3_buckets", "aws_s3_bucket_public_access_block", name)
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ):
            assert public[flag] is True, f"{name}: {flag}"

        sse = resource("s3_buckets", "aws_s3_bucket_server_side_encryption_configuration", name)
        default = block(block(sse, "rule"), "apply_server_side_encryption_by_default")
        assert unquote(default["sse_algorithm"]) in {"aws:kms", "AES256"}

        rule = block(resource("s3_buckets", "aws_s3_bucket_lifecycle_configuration", name), "rule")
        assert unquote(rule["status"]) == "Enabled"
        assert "noncurrent_version_expiration" in rule and "abort_incomplete_multipart_upload" in rule

        ownership = resource("s3_buckets", "aws_s3_bucket_ownership_controls", name)
        assert unquote(block(ownership, "rule")["object_ownership"]) == "BucketOwnerEnforced"

    # The DAGs, artifacts and data buckets use the environment's KMS key.
    sse = resource("s3_buckets", "aws_s3_bucket_server_side_encryption_configuration", "this")
    default = block(block(sse, "rule"), "apply_server_side_encryption_by_default")
    assert unquote(default["sse_algorithm"]) == "aws:kms"
    assert unquote(default["kms_master_key_id"]) == "var.kms_key_arn"

    # Every per-bucket setting covers every bucket of the for_each.
    for rtype, _ in typed(MODULES / "s3_buckets", "resource"):
        if rtype != "aws_s3_bucket" and (rtype, "this") in typed(MODULES / "s3_buckets", "resource"):
            assert unquote(resource("s3_buckets", rtype, "this")["for_each"]) == "aws_s3_bucket.this", rtype


def test_ecr_repositories_are_immutable_scanned_encrypted_and_lifecycled() -> None:
    repo = resource("ecr", "aws_ecr_repository", "this")
    assert unquote(repo["for_each"]) == "var.repositories"
    assert unquote(repo["name"]) == "each.key", "one repository named <project>/<model>"
    assert unquote(repo["image_tag_mutability"]) == "IMMUTABLE"
    assert block(repo, "image_scanning_configuration")["scan_on_push"] is True
    assert unquote(block(repo, "encryption_configuration")["encryption_type"]) == "KMS"

    lifecycle = resource("ecr", "aws_ecr_lifecycle_policy", "this")
    assert unquote(lifecycle["for_each"]) == "aws_ecr_repository.this"
    policy = lifecycle["policy"]
    assert "untagged" in policy and "imageCountMoreThan" in policy


def test_trigger_lambda_role_may_only_invoke_this_environments_rest_api_log_and_read_its_task_logs() -> None:
    document = data_source("lambda_trigger", "aws_iam_policy_document", "permissions")
    granted = [(actions(s), resources_of(s)) for s in statements(document)]
    assert len(granted) == 3

    # The status query's log tails: this environment's task log group only, read-only.
    reads = [r for a, r in granted if a == ["logs:GetLogEvents"]]
    assert reads == [[
        "arn:${var.partition}:logs:${var.region}:${var.account_id}:log-group:"
        "airflow-${var.mwaa_environment_name}-Task:log-stream:*"
    ]]

    invoke = [r for a, r in granted if a == ["airflow:InvokeRestApi"]]
    assert invoke == [["local.invoke_rest_api_arn"]]
    local_arn = next(b for b in blocks(MODULES / "lambda_trigger", "locals"))["invoke_rest_api_arn"]
    assert re.search(
        r":airflow:\$\{var\.region\}:\$\{var\.account_id\}:role/\$\{var\.mwaa_environment_name\}/", local_arn
    )

    logs = [(a, r) for a, r in granted if a not in (["airflow:InvokeRestApi"], ["logs:GetLogEvents"])]
    assert logs and all(action.startswith("logs:") for action in logs[0][0])
    assert logs[0][1] == ["${aws_cloudwatch_log_group.this.arn}:*"]

    every_action = {a for s in statements(document) for a in actions(s)}
    assert not any("*" in a for a in every_action)


def test_trigger_lambda_runs_the_handler_with_the_contracted_environment() -> None:
    function = resource("lambda_trigger", "aws_lambda_function", "this")
    assert unquote(function["handler"]) == "handler.handler"
    assert unquote(function["kms_key_arn"]) == "var.kms_key_arn"
    env = next(b for b in blocks(MODULES / "lambda_trigger", "locals"))["environment_variables"]
    assert unquote(env["MLOPS_TRIGGER_TARGET"]) == "mwaa"
    assert unquote(env["MLOPS_MWAA_ENVIRONMENT"]) == "var.mwaa_environment_name"
    assert unquote(env["MLOPS_ECR_REGISTRY"]) == "var.ecr_registry"
    assert unquote(env["MLOPS_AIRFLOW_UI_URL"]) == "var.airflow_ui_url"
    assert set(env) - META_KEYS == {
        "MLOPS_AIRFLOW_UI_URL",
        "MLOPS_TRIGGER_TARGET",
        "MLOPS_MWAA_ENVIRONMENT",
        "MLOPS_ECR_REGISTRY",
        "MLOPS_LOG_LEVEL",
    }
    group = resource("lambda_trigger", "aws_cloudwatch_log_group", "this")
    assert unquote(group["name"]) == "/aws/lambda/${var.function_name}"
    assert unquote(group["kms_key_id"]) == "var.kms_key_arn"

    default_zip = unquote(labelled(TERRAFORM, "variable")["lambda_zip_path"]["default"])
    assert (TERRAFORM / default_zip).resolve() == REPO / "lambda" / "build" / "trigger_lambda.zip"


LAMBDA_SOURCES = sorted((REPO / "lambda").glob("**/*.py"))


@pytest.mark.skipif(not LAMBDA_SOURCES, reason="lambda/ has no sources yet")
def test_trigger_lambda_environment_uses_names_the_handler_reads() -> None:
    read = set()
    for path in LAMBDA_SOURCES:
        read.update(re.findall(r"""(?:env|environ)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
    env = next(b for b in blocks(MODULES / "lambda_trigger", "locals"))["environment_variables"]
    assert set(env) - META_KEYS <= read, f"the handler never reads {set(env) - META_KEYS - read}"


def test_sns_topic_and_kms_key_are_encrypted_and_rotated() -> None:
    assert unquote(resource("sns", "aws_sns_topic", "this")["kms_master_key_id"]) == "var.kms_key_arn"
    key = resource("kms", "aws_kms_key", "this")
    assert key["enable_key_rotation"] is True
    assert "policy" in key


#: Actions that take no resource-level permission, so "*" is the only resource they accept.
UNSCOPED_ACTIONS = {
    "s3:GetAccountPublicAccessBlock",
    "cloudwatch:PutMetricData",
    "ecr:GetAuthorizationToken",
}


@pytest.mark.parametrize("document", ["mwaa_execution", "sagemaker_execution", "ci"])
def test_iam_policies_are_scoped(document: str) -> None:
    policy = data_source("iam", "aws_iam_policy_document", document)
    for statement in statements(policy):
        sid = unquote(statement.get("sid", "?"))
        granted = actions(statement)
        assert not any(a == "*" or a.endswith(":*") for a in granted), f"{sid}: wildcard action"
        if "*" in resources_of(statement):
            unscoped = {
                a for a in granted if a not in UNSCOPED_ACTIONS and not a.startswith("sagemaker:List")
            }
            assert not unscoped, f"{sid}: {unscoped} on every resource"
        if "cloudwatch:PutMetricData" in granted:
            assert "condition" in statement, f"{sid}: PutMetricData must be limited to our namespaces"


def test_mwaa_role_passes_only_the_sagemaker_role_and_publishes_only_to_the_topic() -> None:
    policy = data_source("iam", "aws_iam_policy_document", "mwaa_execution")
    by_action: dict[str, list[dict[str, Any]]] = {}
    for statement in statements(policy):
        for action in actions(statement):
            by_action.setdefault(action, []).append(statement)

    (pass_role,) = by_action["iam:PassRole"]
    assert resources_of(pass_role) == ["aws_iam_role.sagemaker_execution.arn"]
    condition = block(pass_role, "condition")
    assert unquote(condition["variable"]) == "iam:PassedToService"
    assert [unquote(v) for v in condition["values"]] == ["sagemaker.amazonaws.com"]

    (publish,) = by_action["sns:Publish"]
    assert resources_of(publish) == ["var.sns_topic_arn"]

    for needed in (
        "sagemaker:CreateTrainingJob",
        "sagemaker:StopTrainingJob",
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreateModelPackage",
        "sagemaker:UpdateModelPackage",
        "sagemaker:CreateModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DeleteEndpoint",
    ):
        assert needed in by_action, needed

    dags_access = [s for s in statements(policy) if "var.dags_bucket_arn" in resources_of(s)]
    assert dags_access and not any("s3:PutObject" in actions(s) for s in dags_access), (
        "Airflow must not rewrite its DAGs"
    )


def test_sagemaker_role_reads_data_writes_artifacts_and_pulls_model_images() -> None:
    policy = data_source("iam", "aws_iam_policy_document", "sagemaker_execution")
    by_sid = {unquote(s["sid"]): s for s in statements(policy)}
    assert "s3:PutObject" not in actions(by_sid["ReadData"])
    assert resources_of(by_sid["ReadData"]) == ["var.data_bucket_arn", "${var.data_bucket_arn}/*"]
    assert "s3:PutObject" in actions(by_sid["ReadWriteArtifacts"])
    assert resources_of(by_sid["PullModelImages"]) == ["local.ecr_repository_arns"]


def test_mwaa_environment_is_private_airflow_3_with_all_logs() -> None:
    env = resource("mwaa", "aws_mwaa_environment", "this")
    assert unquote(env["webserver_access_mode"]) == "PRIVATE_ONLY"
    assert unquote(env["kms_key"]) == "var.kms_key_arn"
    for key in ("requirements_s3_path", "plugins_s3_path", "startup_script_s3_path"):
        assert key in env
    logging = block(env, "logging_configuration")
    for log in ("dag_processing_logs", "scheduler_logs", "task_logs", "webserver_logs", "worker_logs"):
        assert block(logging, log)["enabled"] is True, log
    version = labelled(TERRAFORM, "variable")["airflow_version"]
    assert unquote(version["default"]).startswith("3.3")

    startup = next(b for b in blocks(MODULES / "mwaa", "locals"))["startup_sh"]
    assert "MLOPS_CONFIG_PATH=/usr/local/airflow/dags/mlops" in startup


def test_rollback_alarms_and_wiring_outputs_exist() -> None:
    outputs = labelled(TERRAFORM, "output")
    for name in (
        "mwaa_environment_name",
        "mwaa_environment_arn",
        "ecr_registry",
        "ecr_repository_urls",
        "trigger_lambda_name",
        "trigger_lambda_environment",
        "sns_topic_arn",
        "sagemaker_execution_role_arn",
        "artifacts_uri",
        "config_prefix_uri",
        "auto_rollback_alarms",
        "dashboard_name",
    ):
        assert name in outputs, name
    alarms = typed(MODULES / "cloudwatch", "resource")
    for name in ("endpoint_5xx", "endpoint_latency"):
        alarm = alarms[("aws_cloudwatch_metric_alarm", name)]
        assert unquote(alarm["alarm_actions"][0]) == "var.sns_topic_arn"
    assert ("aws_cloudwatch_dashboard", "this") in alarms


# --- the config defaults Terraform publishes load with the real config loader ----------------

SAMPLE_VALUES = {
    "region": "eu-west-1",
    "role_arn": "arn:aws:iam::123456789012:role/mlops-dev-sagemaker-execution",
    "artifacts_uri": "s3://mlops-dev-123456789012-artifacts/models",
    "topic_arn": "arn:aws:sns:eu-west-1:123456789012:mlops-dev-notifications",
    "auto_rollback_alarms": ["mlops-dev-demo-breast-cancer-5xx", "mlops-dev-demo-breast-cancer-latency"],
}


def published_defaults(resource_name: str) -> dict[str, Any]:
    """The yamlencode({...}) of a root aws_s3_object, with sample values for its expressions."""
    content = typed(TERRAFORM, "resource")[("aws_s3_object", resource_name)]["content"]
    match = re.fullmatch(r"\$\{yamlencode\((.*)\)\}", content, re.S)
    assert match, content
    tree = hcl2.loads(f"x = {match.group(1)}")["x"]

    def fill(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: fill(v, k) for k, v in node.items() if k not in META_KEYS}
        assert key in SAMPLE_VALUES, f"no sample value for {key}: add one to SAMPLE_VALUES"
        return SAMPLE_VALUES[key]

    return fill(tree)


def test_published_config_defaults_load_with_the_example_models(tmp_path: Path) -> None:
    """
    Terraform's published defaults load under every example: the org layer under all of them,
    the per-model layer (rollback alarms) under the SageMaker-served ones. A locally served model
    refuses inherited alarms, naming the defaults file, until its own mlops.yaml opts out.
    """
    import yaml

    from airflow_provider_mlops.config import loader
    from airflow_provider_mlops.exceptions import ConfigError

    examples = sorted((REPO / "examples").glob("*/mlops.yaml"))
    assert examples, "examples/ has no mlops.yaml"

    org = published_defaults("org_config_defaults")
    per_model = published_defaults("model_config_defaults")
    root = tmp_path / "mlops"  # s3://<dags bucket>/dags/mlops, MLOPS_CONFIG_PATH on MWAA
    root.mkdir()
    (root / loader.DEFAULTS_FILENAME).write_text(yaml.safe_dump(org))
    served_on = set()
    for example in examples:
        data = yaml.safe_load(example.read_text())
        folder = root / data["project"] / data["model"]
        folder.mkdir(parents=True)
        (folder / loader.CONFIG_FILENAME).write_text(example.read_text())
        serving = loader.load_config(folder / loader.CONFIG_FILENAME, root=root).config.serving_backend
        served_on.add(serving)
        model_defaults = folder / loader.DEFAULTS_FILENAME
        model_defaults.write_text(yaml.safe_dump(per_model))
        if serving == "local" and "auto_rollback_alarms" not in data.get("deployment", {}):
            with pytest.raises(ConfigError) as refused:
                loader.load_config(folder / loader.CONFIG_FILENAME, root=root)
            assert str(model_defaults) in str(refused.value) and "auto_rollback_alarms: []" in str(refused.value)
            data.setdefault("deployment", {})["auto_rollback_alarms"] = []
            (folder / loader.CONFIG_FILENAME).write_text(yaml.safe_dump(data))

        config = loader.load_config(folder / loader.CONFIG_FILENAME, root=root).config
        own = data.get("aws", {})
        assert config.aws.role_arn == own.get("role_arn", SAMPLE_VALUES["role_arn"])
        assert config.aws.artifacts_uri == own.get("artifacts_uri", SAMPLE_VALUES["artifacts_uri"])
        if serving == "sagemaker" and "auto_rollback_alarms" not in data.get("deployment", {}):
            assert config.deployment.auto_rollback_alarms == SAMPLE_VALUES["auto_rollback_alarms"]
        if "sns" not in data.get("notifications", {}):
            assert config.notifications.sns is not None
            assert config.notifications.sns.topic_arn == SAMPLE_VALUES["topic_arn"]
    assert served_on == {"local", "sagemaker"}, f"the examples should cover both serving backends, got {served_on}"
