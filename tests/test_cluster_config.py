"""cluster.yaml, checked offline: Ray's own validation, the head's `trial_driver` resource,
shell syntax of every command list, and the security promises docs/cluster.md makes.

Not run here: the AWS half of `ray up`'s config bootstrap (`fillout_available_node_types_resources`
and `AWSNodeProvider.bootstrap_config`). Both call AWS (instance-type catalogue, IAM, EC2 key
pairs, subnets, security groups) through boto3, which is neither installed nor reachable here.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
COMMAND_LISTS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)


@pytest.fixture(scope="module")
def text() -> str:
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def config(text: str) -> dict:
    return yaml.safe_load(text)


def _commands(config: dict, *lists: str) -> list[str]:
    return [cmd for name in (lists or COMMAND_LISTS) for cmd in config.get(name) or []]


def _one(commands: list[str], needle: str) -> str:
    found = [c for c in commands if needle in c]
    assert len(found) == 1, f"expected one command with {needle!r}, got {found}"
    return found[0]


def _flags(command: str, program: str) -> dict[str, str]:
    """`--name=value` / `--name value` flags of `program` inside a shell command line."""
    words = shlex.split(command.split(";")[-1] if program == "ray" else command)
    start = next(i for i, w in enumerate(words) if w.endswith(program))
    flags, rest = {}, words[start + 1 :]
    for i, word in enumerate(rest):
        if word.startswith("--"):
            if "=" in word:
                key, value = word.split("=", 1)
            elif i + 1 < len(rest) and not rest[i + 1].startswith("-"):
                key, value = word, rest[i + 1]
            else:
                key, value = word, ""
            flags[key] = value
    return flags


def _on_premise(config: dict, text: str) -> dict:
    """The config with the commented on-premise block swapped in, as the file says to."""
    block = text[text.index("# --- On-premise") :]
    block = block[block.index("# provider:") :]
    replacement = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
    assert set(replacement) == {"provider", "auth"}, replacement
    onprem = copy.deepcopy(config)
    for key in ("max_workers", "provider", "auth", "available_node_types", "head_node_type"):
        onprem.pop(key, None)
    onprem.update(replacement)
    return onprem


# --- Ray's own validation ------------------------------------------------------------------


def test_ray_validates_the_file_as_written(config: dict) -> None:
    from ray.autoscaler._private.util import validate_config

    validate_config(config)


def test_ray_prepares_and_validates_the_aws_config(config: dict) -> None:
    """What `ray up` does before it talks to AWS: merge Ray's AWS defaults, fold the common
    setup commands into the head's and workers', fill min/max workers, validate again."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] == "head"
    head_setup = prepared["head_setup_commands"]
    assert head_setup[: len(config["setup_commands"])] == config["setup_commands"]
    assert prepared["available_node_types"]["gpu_g5"]["max_workers"] == 8


def test_on_premise_variant_prepares_and_validates(config: dict, text: str) -> None:
    from ray.autoscaler._private.local.config import bootstrap_local
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(_on_premise(config, text))
    validate_config(prepared)
    bootstrap_local(prepared)
    assert prepared["provider"]["type"] == "local"
    workers = prepared["available_node_types"]["local.cluster.node"]
    assert workers["min_workers"] == workers["max_workers"] == 2
    # The head's CPU 0 and trial_driver come from the shared start command there too.
    assert "--num-cpus=0" in _one(prepared["head_start_ray_commands"], "ray start")


# --- the head, the workers, the driver resource ----------------------------------------------


def test_head_holds_trial_driver_and_no_cpu(config: dict) -> None:
    from raysweep.resources import DRIVER_RESOURCE

    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0, DRIVER_RESOURCE: 10000}
    start = _flags(_one(config["head_start_ray_commands"], "ray start"), "ray")
    assert "--head" in start
    assert json.loads(start["--resources"]) == {DRIVER_RESOURCE: 10000}
    assert start["--num-cpus"] == "0"
    assert start["--autoscaling-config"] == "~/ray_bootstrap_config.yaml"
    for name, node in config["available_node_types"].items():
        if name != config["head_node_type"]:
            assert DRIVER_RESOURCE not in node["resources"], name
            assert node["min_workers"] == 0, name
            assert node["resources"].get("GPU", 0) >= 1, name
    worker = _one(config["worker_start_ray_commands"], "ray start")
    assert DRIVER_RESOURCE not in worker and "--address=$RAY_HEAD_IP:6379" in worker


def test_spot_workers_on_demand_head(config: dict) -> None:
    types = config["available_node_types"]
    assert "InstanceMarketOptions" not in types["head"]["node_config"]
    assert types["gpu_g5"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def test_every_node_gets_the_repo_and_the_locked_environment(config: dict) -> None:
    assert config["file_mounts"]["~/raysweep"] == "."
    setup = config["setup_commands"]
    assert any("pip install" in c and "uv" in c for c in setup), setup
    sync = _one(setup, "uv sync")
    assert "cd ~/raysweep" in sync and "--frozen" in sync
    assert any("$HOME/raysweep/.venv/bin" in c and ".bashrc" in c for c in setup), setup
    assert ".venv" in config["rsync_exclude"]  # each node builds its own
    for cmd in _commands(config, "head_start_ray_commands", "worker_start_ray_commands"):
        if "ray " in cmd:
            assert "~/raysweep/.venv/bin/ray " in cmd, cmd


def test_head_environment_makes_raysweep_run_need_no_flags(config: dict) -> None:
    env_cmd = _one(config["head_setup_commands"], "> ~/.raysweep-env")
    exports = dict(
        w.removeprefix("export ").split("=", 1)
        for w in shlex.split(env_cmd)
        if w.startswith("export ")
    )
    assert exports["RAY_ADDRESS"] == "auto"
    assert exports["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert exports["RAYSWEEP_STORAGE"].startswith("s3://")
    assert exports["RAY_AUTH_MODE"] == "token"
    sourced = _one(config["head_setup_commands"], ". ~/.raysweep-env")
    assert "grep -qxF" in sourced  # appended once, however often `ray up` runs

    # raysweep reads exactly these variables.
    from raysweep.cli import run

    storage = next(p for p in run.params if p.name == "storage")
    assert storage.envvar == "RAYSWEEP_STORAGE"
    source = (ROOT / "raysweep" / "sweep.py").read_text()
    assert 'os.environ.get("RAY_ADDRESS")' in source
    assert "MLFLOW_TRACKING_URI" in (ROOT / "raysweep" / "tracking.py").read_text()


def test_mlflow_server_on_the_head_binds_localhost(config: dict) -> None:
    cmd = _one(config["head_start_ray_commands"], "mlflow server")
    flags = _flags(cmd, "mlflow")
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "5000"
    assert flags["--backend-store-uri"] == "sqlite:////home/ubuntu/mlflow/mlflow.db"
    assert flags["--artifacts-destination"].startswith("s3://")
    assert cmd.startswith("nohup ") and "server.pid" in cmd
    env_cmd = _one(config["head_setup_commands"], "> ~/.raysweep-env")
    bucket = re.search(r"RAYSWEEP_STORAGE=s3://([^/]+)/", env_cmd).group(1)
    assert flags["--artifacts-destination"] == f"s3://{bucket}/mlflow"
    # boto3 for the S3 artifact store and the AWS autoscaler: the locked `cluster` group.
    sync = _one(config["setup_commands"], "uv sync")
    assert "--group cluster" in sync
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^cluster = \["boto3', pyproject, re.M)
    assert '\nname = "boto3"' in (ROOT / "uv.lock").read_text()


# --- security -------------------------------------------------------------------------------


def test_token_auth_stays_on(config: dict, text: str) -> None:
    commands = _commands(config)
    assert "RAY_AUTH_MODE=disabled" not in text
    assert set(re.findall(r"RAY_AUTH_MODE=(\w+)", "\n".join(commands))) == {"token"}
    for cmd in commands:
        if re.search(r"\bray start\b", cmd):
            assert "RAY_AUTH_MODE=token" in cmd, cmd
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert "--disable-security-middleware" not in text


def test_dashboard_listens_on_localhost(config: dict) -> None:
    head = _flags(_one(config["head_start_ray_commands"], "ray start"), "ray")
    assert head["--dashboard-host"] == "127.0.0.1"
    assert "0.0.0.0" not in "\n".join(_commands(config))


def test_security_group_opens_only_ssh(config: dict) -> None:
    """No extra inbound rule in the file, no node type bringing its own group, and Ray's
    default group (read from Ray's source: importing it needs boto3) opens port 22 only to
    the outside, plus all traffic between the cluster's own nodes."""
    group = config["provider"]["security_group"]
    for rule in group.get("IpPermissions", []):
        assert rule.get("FromPort") == rule.get("ToPort") == 22, rule
    for name, node in config["available_node_types"].items():
        assert "SecurityGroupIds" not in node["node_config"], name
        assert "NetworkInterfaces" not in node["node_config"], name

    import ray.autoscaler._private.aws as aws_pkg

    source = (Path(aws_pkg.__file__).parent / "config.py").read_text()
    funcs = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    ssh = ast.literal_eval(funcs["_create_default_ssh_inbound_rules"].body[-1].value)
    assert [(r["FromPort"], r["ToPort"], r["IpProtocol"]) for r in ssh] == [(22, 22, "tcp")]
    merged = ast.unparse(funcs["_create_default_inbound_rules"])
    assert "intracluster_rules" in merged and "ssh_rules" in merged and "extended_rules" in merged


# --- shell syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMAND_LISTS)
def test_command_lists_are_valid_bash(config: dict, name: str) -> None:
    """Each list joined into one script, as written and as Ray runs it (with the exported
    variables Ray prefixes to start commands), passes `bash -n`."""
    from ray.autoscaler._private.util import with_envs, with_head_node_ip

    bash = shutil.which("bash")
    assert bash, "bash is needed for this check"
    commands = config.get(name) or []
    variants = [commands]
    if commands:
        variants.append(with_envs(with_head_node_ip(commands, "10.0.0.1"), {"RAY_X": "1"}))
    for cmds in variants:
        script = "\n".join(cmds) + "\n"
        proc = subprocess.run([bash, "-n"], input=script, capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}:\n{script}\n{proc.stderr}"


def test_docs_cover_the_cluster_workflow() -> None:
    doc = (ROOT / "docs" / "cluster.md").read_text()
    for needle in (
        "ray up cluster.yaml",
        "ray dashboard cluster.yaml",
        "ray attach cluster.yaml -p 5000",
        "ray down cluster.yaml",
        "raysweep run",
        "provider:",
        "ray start --head",
        "ray start --address",
        "spot",
        "IamInstanceProfile",
    ):
        assert needle in doc, needle


# --- planning against the autoscaling cluster ------------------------------------------------


def test_sweeps_are_planned_at_the_size_the_cluster_can_grow_to(config: dict, tmp_path) -> None:
    """With GPU workers at min 0 the live cluster has no GPU and no CPU until trials ask; the
    plan uses the autoscaling config `ray up` leaves on the head (here: cluster.yaml itself)."""
    from raysweep.config import ResourcesSpec, SweepSpec
    from raysweep.errors import UserError
    from raysweep.resources import autoscaling_capacity, with_capacity
    from raysweep.sweep import plan_resources

    capacity = autoscaling_capacity(CLUSTER_YAML)
    workers = config["available_node_types"]["gpu_g5"]
    per_node = workers["resources"]
    count = min(workers["max_workers"], config["max_workers"])
    assert capacity == {
        "CPU": per_node["CPU"] * count,
        "GPU": per_node["GPU"] * count,
        "trial_driver": 10000.0,
    }

    live = {"CPU": 0.0, "trial_driver": 10000.0, "memory": 3e10}  # just after `ray up`
    spec = SweepSpec.model_validate(
        {"name": "s", "dataset": {"name": "synthetic"}, "model": {"name": "lenet"}}
    )
    with pytest.raises(UserError, match="needs 1 CPU"):
        plan_resources(spec, live, None)
    req, parallel = plan_resources(spec, with_capacity(live, capacity), None)
    assert req.gpus_per_worker == 1.0  # GPUs on auto: the cluster will have them
    assert parallel == count
    assert with_capacity(live, capacity)["memory"] == 3e10

    big = spec.model_copy(update={"resources": ResourcesSpec(workers_per_trial=count + 1)})
    with pytest.raises(UserError, match="can|needs"):
        plan_resources(big, with_capacity(live, capacity), None)


def test_capacity_caps_worker_types_by_max_workers_and_ignores_missing_files(tmp_path) -> None:
    from raysweep.resources import autoscaling_capacity

    assert autoscaling_capacity(tmp_path / "missing.yaml") == {}
    (tmp_path / "broken.yaml").write_text("max_workers: [\n")
    assert autoscaling_capacity(tmp_path / "broken.yaml") == {}
    cfg = {
        "max_workers": 3,
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 2}},
            "small": {"max_workers": 10, "resources": {"CPU": 4, "GPU": 1}},
            "big": {"max_workers": 1, "resources": {"CPU": 96, "GPU": 8}},
            "unsized": {"max_workers": 5},
        },
    }
    (tmp_path / "boot.yaml").write_text(yaml.safe_dump(cfg))
    assert autoscaling_capacity(tmp_path / "boot.yaml") == {"CPU": 2 + 12 + 96, "GPU": 3 + 8}
