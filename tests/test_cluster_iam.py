"""The instance profiles' policies (cluster/iam/*.json), linted and exercised offline.

Lint: valid policy documents; no wildcard action anywhere, `"Resource": "*"` only for read-only
actions; every EC2 action that changes something conditioned on this cluster's tag (and, for
launches, on the instance types the policy names). Behaviour: a small evaluator of the policies'
Allow statements (actions, resources, and the condition operators they use) answers concrete
requests the way IAM would: the head may launch a g5.xlarge worker of this cluster but not an
m6i.24xlarge or someone else's instance; a worker may write checkpoints but not MLflow's
artifacts. Consistency: cluster.yaml, the head's setup and docs/cluster.md name what the
policies grant. Nothing here calls AWS.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
IAM = ROOT / "cluster" / "iam"
CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())
CLUSTER_NAME = CONFIG["cluster_name"]
PLACEHOLDERS = {
    "YOUR-BUCKET": "my-bucket",
    "YOUR-ACCOUNT-ID": "123456789012",
    "YOUR-REGION": "us-west-2",
    "YOUR-SG-ID": "sg-0123456789abcdef0",
}
READ_ONLY = re.compile(r"^[a-z0-9]+:(Describe|Get|List)[A-Za-z]*$")
CLUSTER_TAG = "ray-cluster-name"
EC2 = "arn:aws:ec2:us-west-2:123456789012"


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _render(name: str) -> dict:
    """A policy with the placeholders filled in, as docs/cluster.md does with sed."""
    text = (IAM / name).read_text()
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return json.loads(text)


@pytest.fixture(scope="module")
def head() -> dict:
    return _render("head.json")


@pytest.fixture(scope="module")
def worker() -> dict:
    return _render("worker.json")


def _statements(*names: str) -> list[tuple[str, dict]]:
    return [(n, s) for n in names for s in json.loads((IAM / n).read_text())["Statement"]]


# --- lint -----------------------------------------------------------------------------------


def test_policy_files_are_valid_policy_documents() -> None:
    names = sorted(p.name for p in IAM.glob("*.json"))
    assert names == ["head.json", "trust-ec2.json", "worker.json"]
    for name in names:
        document = json.loads((IAM / name).read_text())
        assert document["Version"] == "2012-10-17", name
        sids = [s["Sid"] for s in document["Statement"]]
        assert len(sids) == len(set(sids)), name
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow", (name, statement)
            assert statement.get("Action"), (name, statement)
            assert ("Principal" in statement) == (name == "trust-ec2.json"), (name, statement)
            assert ("Resource" in statement) == (name != "trust-ec2.json"), (name, statement)
    trust = json.loads((IAM / "trust-ec2.json").read_text())["Statement"]
    assert trust == [
        {
            "Sid": "Ec2InstancesOnly",
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]


def test_no_wildcard_action_and_star_resources_only_for_reading() -> None:
    for name, statement in _statements("head.json", "worker.json"):
        actions = _listed(statement["Action"])
        assert not [a for a in actions if "*" in a], (name, statement["Sid"])
        if "*" in _listed(statement["Resource"]):
            writes = [a for a in actions if not READ_ONLY.match(a)]
            assert not writes, (name, statement["Sid"], writes)


def test_every_ec2_change_is_conditioned_on_this_cluster() -> None:
    """Every EC2 action that changes something is conditioned on the cluster's tag, except
    RunInstances on the resources a launch uses but does not create (image, subnet, the
    security group, ...): those statements cannot launch anything alone, because the instance
    itself needs the statement that demands the cluster's tag and a named instance type."""
    launch_statements = 0
    for name, statement in _statements("head.json", "worker.json"):
        ec2_changes = [
            a
            for a in _listed(statement["Action"])
            if a.startswith("ec2:") and not READ_ONLY.match(a)
        ]
        if not ec2_changes:
            continue
        assert name == "head.json", (name, statement["Sid"])  # workers change nothing in EC2
        resources = _listed(statement["Resource"])
        assert "*" not in resources, statement["Sid"]
        conditions = {
            k: v for block in statement.get("Condition", {}).values() for k, v in block.items()
        }
        tagged = {
            conditions.get(f"aws:RequestTag/{CLUSTER_TAG}"),
            conditions.get(f"aws:ResourceTag/{CLUSTER_TAG}"),
        }
        if ec2_changes == ["ec2:RunInstances"] and not any(":instance/" in r for r in resources):
            assert not tagged - {None} and "ec2:InstanceType" not in conditions
            continue
        assert CLUSTER_NAME in tagged, (statement["Sid"], conditions)
        if "ec2:RunInstances" in ec2_changes:
            launch_statements += 1
            assert conditions["ec2:InstanceType"], statement["Sid"]
            assert conditions["ec2:MetadataHttpTokens"] == "required", statement["Sid"]
    assert launch_statements == 1


# --- behaviour ------------------------------------------------------------------------------


def _condition_holds(operator: str, key: str, wanted, context: dict) -> bool:
    if key not in context:
        return False  # no ...IfExists operators in these policies
    value = str(context[key]).lower() if operator == "Bool" else str(context[key])
    wanted = [str(w).lower() if operator == "Bool" else str(w) for w in _listed(wanted)]
    if operator in ("StringEquals", "Bool"):
        return value in wanted
    if operator == "StringLike":
        return any(fnmatch.fnmatchcase(value, w) for w in wanted)
    raise AssertionError(f"the evaluator does not know {operator}")


def _allows(policy: dict, action: str, resource: str, **context) -> bool:
    """Whether the policy's statements allow this request (IAM's wildcards: * and ?)."""
    for statement in policy["Statement"]:
        if not any(
            fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])
        ):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        conditions = statement.get("Condition", {})
        if all(
            _condition_holds(op, key, wanted, context)
            for op, block in conditions.items()
            for key, wanted in block.items()
        ):
            return True
    return False


def _launch(policy: dict, instance_type: str, **overrides) -> bool:
    """A worker launch as Ray's AWS node provider makes it: RunInstances authorizes every
    resource it touches, each against its own conditions."""
    context = {
        f"aws:RequestTag/{CLUSTER_TAG}": CLUSTER_NAME,
        "ec2:InstanceType": instance_type,
        "ec2:MetadataHttpTokens": "required",
        "ec2:Encrypted": "true",
    }
    context.update(overrides)
    context = {k: v for k, v in context.items() if v is not None}
    resources = [
        f"{EC2}:instance/*",
        f"{EC2}:volume/*",
        "arn:aws:ec2:us-west-2::image/ami-0abc",
        f"{EC2}:subnet/subnet-1",
        f"{EC2}:network-interface/*",
        f"{EC2}:security-group/{PLACEHOLDERS['YOUR-SG-ID']}",
        f"{EC2}:key-pair/ray-autoscaler_1_us-west-2",
        f"{EC2}:spot-instances-request/*",
    ]
    return all(_allows(policy, "ec2:RunInstances", r, **context) for r in resources)


def _worker_types() -> list[str]:
    head_type = CONFIG["head_node_type"]
    types = CONFIG["available_node_types"]
    return [t["node_config"]["InstanceType"] for n, t in types.items() if n != head_type]


def test_head_launches_only_this_clusters_workers(head: dict) -> None:
    for instance_type in _worker_types():
        assert _launch(head, instance_type), instance_type
    assert _launch(head, "g6.xlarge")  # the commented alternative in cluster.yaml
    assert not _launch(head, "p4d.24xlarge")  # $32/h: the policy must be edited first
    assert not _launch(head, "m6i.2xlarge")  # no second head
    assert not _launch(head, "g5.xlarge", **{f"aws:RequestTag/{CLUSTER_TAG}": "other"})
    assert not _launch(head, "g5.xlarge", **{f"aws:RequestTag/{CLUSTER_TAG}": None})
    assert not _launch(head, "g5.xlarge", **{"ec2:MetadataHttpTokens": "optional"})
    assert not _launch(head, "g5.xlarge", **{"ec2:Encrypted": "false"})
    other_group = f"{EC2}:security-group/sg-0000000000000000"
    assert not _allows(head, "ec2:RunInstances", other_group)  # the world-open one, say


def test_head_manages_only_this_clusters_instances(head: dict) -> None:
    instance = f"{EC2}:instance/i-0123"
    ours = {f"aws:ResourceTag/{CLUSTER_TAG}": CLUSTER_NAME}
    theirs = {f"aws:ResourceTag/{CLUSTER_TAG}": "someone-else"}
    for action in ("TerminateInstances", "StopInstances", "StartInstances", "CreateTags"):
        assert _allows(head, f"ec2:{action}", instance, **ours), action
        assert not _allows(head, f"ec2:{action}", instance, **theirs), action
        assert not _allows(head, f"ec2:{action}", instance), action  # untagged
    at_launch = {"ec2:CreateAction": "RunInstances", f"aws:RequestTag/{CLUSTER_TAG}": CLUSTER_NAME}
    assert _allows(head, "ec2:CreateTags", instance, **at_launch)
    for action in ("ModifyInstanceAttribute", "AuthorizeSecurityGroupIngress", "CreateVolume"):
        assert not _allows(head, f"ec2:{action}", f"{EC2}:instance/i-0123", **ours), action


def test_head_passes_only_the_worker_role_and_reads_only_its_parameters(head: dict) -> None:
    worker_role = "arn:aws:iam::123456789012:role/raysweep-worker"
    assert _allows(
        head, "iam:PassRole", worker_role, **{"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not _allows(
        head, "iam:PassRole", worker_role, **{"iam:PassedToService": "lambda.amazonaws.com"}
    )
    for role in ("raysweep-head", "admin"):
        arn = f"arn:aws:iam::123456789012:role/{role}"
        assert not _allows(
            head, "iam:PassRole", arn, **{"iam:PassedToService": "ec2.amazonaws.com"}
        )
    ami = CONFIG["available_node_types"]["gpu_g5"]["node_config"]["ImageId"]
    parameter = ami.removeprefix("resolve:ssm:")
    assert _allows(head, "ssm:GetParameters", f"arn:aws:ssm:us-west-2::parameter{parameter}")
    assert not _allows(head, "ssm:GetParameters", "arn:aws:ssm:us-west-2::parameter/aws/service/x")
    db = "arn:aws:ssm:us-west-2:123456789012:parameter/raysweep/mlflow-db-uri"
    assert _allows(head, "ssm:GetParameter", db)
    other = "arn:aws:ssm:us-west-2:123456789012:parameter/prod/db-password"
    assert not _allows(head, "ssm:GetParameter", other)


def _object(prefix: str) -> str:
    return f"arn:aws:s3:::my-bucket/{prefix}/some/key"


def test_only_the_head_writes_mlflow_artifacts_workers_write_only_checkpoints(
    head: dict, worker: dict
) -> None:
    writes = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
    for action in writes:
        assert _allows(worker, action, _object("ray_results")), action
        assert _allows(head, action, _object("ray_results")), action
        assert _allows(head, action, _object("mlflow")), action
        for prefix in ("mlflow", "datasets", "other"):
            assert not _allows(worker, action, _object(prefix)), (action, prefix)
        assert not _allows(head, action, _object("datasets")), action
        assert not _allows(worker, action, "arn:aws:s3:::another-bucket/ray_results/x"), action
    for policy in (head, worker):
        assert _allows(policy, "s3:GetObject", _object("datasets"))
        assert _allows(policy, "s3:GetObject", _object("ray_results"))
        assert _allows(policy, "s3:ListBucket", "arn:aws:s3:::my-bucket")
        assert not _allows(policy, "s3:PutBucketPolicy", "arn:aws:s3:::my-bucket")
    assert not _allows(worker, "s3:GetObject", _object("mlflow"))
    # Workers may do nothing outside the bucket.
    for action in (
        "ec2:RunInstances",
        "ec2:TerminateInstances",
        "iam:PassRole",
        "ssm:GetParameter",
    ):
        assert not any(action in _listed(s["Action"]) for s in worker["Statement"]), action


# --- what the policies must agree with --------------------------------------------------------


def test_cluster_yaml_uses_the_profiles_and_instance_types_the_policies_name(head: dict) -> None:
    types = CONFIG["available_node_types"]
    head_type = CONFIG["head_node_type"]
    for name, node in types.items():
        expected = "raysweep-head" if name == head_type else "raysweep-worker"
        assert node["node_config"]["IamInstanceProfile"] == {"Name": expected}, name
    launch = next(s for s in head["Statement"] if s["Sid"] == "LaunchOnlyThisClustersWorkerTypes")
    allowed_types = set(launch["Condition"]["StringEquals"]["ec2:InstanceType"])
    assert set(_worker_types()) <= allowed_types
    assert types[head_type]["node_config"]["InstanceType"] not in allowed_types
    assert launch["Condition"]["StringEquals"][f"aws:RequestTag/{CLUSTER_TAG}"] == CLUSTER_NAME
    pass_role = next(s for s in head["Statement"] if s["Action"] == "iam:PassRole")
    assert pass_role["Resource"].endswith(":role/raysweep-worker")
    # The one security group the head may launch into is the one every node type names.
    group = types[head_type]["node_config"]["SecurityGroupIds"]
    assert group == ["YOUR-SG-ID"]
    assert "security-group/YOUR-SG-ID" in (IAM / "head.json").read_text()


def test_head_setup_uses_the_prefixes_and_parameter_the_policies_grant() -> None:
    setup = (ROOT / "cluster" / "head-setup.sh").read_text()
    assert "s3://$bucket/ray_results" in setup and "s3://$bucket/mlflow" in setup
    head_text = (IAM / "head.json").read_text()
    worker_text = (IAM / "worker.json").read_text()
    for prefix in ("ray_results", "mlflow", "datasets"):
        assert f"YOUR-BUCKET/{prefix}/*" in head_text, prefix
    command = next(c for c in CONFIG["head_setup_commands"] if "head-setup.sh" in c)
    parameter = re.search(r"RAYSWEEP_DB_URI_PARAMETER=(\S+)", command).group(1)
    assert head_text.count(f':parameter{parameter}"') == 1
    assert "ssm:" not in worker_text


def test_docs_apply_every_placeholder_and_both_policies() -> None:
    doc = (ROOT / "docs" / "cluster.md").read_text()
    used = set(re.findall(r"YOUR-[A-Z-]+[A-Z]", "".join(p.read_text() for p in IAM.glob("*.json"))))
    assert used == set(PLACEHOLDERS)
    substituted = set(re.findall(r"s/(YOUR-[A-Z-]+[A-Z])/", doc))
    assert used <= substituted, used - substituted
    for role in ("raysweep-head", "raysweep-worker"):
        policy = "head" if role == "raysweep-head" else "worker"
        assert re.search(rf"render {policy}\.json\b[^\n]*\n?[^\n]*--role-name {role}\b", doc), role
    assert "file://cluster/iam/trust-ec2.json" in doc
