"""cluster.yaml and the head's scripts under cluster/, checked offline: Ray's own validation,
the head's `trial_driver` resource, shell syntax of every command list, the head's setup run
twice in a fake environment (idempotent, never touches Ray), the MLflow systemd unit, the SSH
guard, and the security promises docs/cluster.md makes. (The IAM policies: test_cluster_iam.py.)

Not run here: the AWS half of `ray up`'s config bootstrap (`fillout_available_node_types_resources`
and `AWSNodeProvider.bootstrap_config`). Both call AWS (instance-type catalogue, IAM, EC2 key
pairs, subnets, security groups) through boto3, which is neither installed nor reachable here.
"""

from __future__ import annotations

import ast
import configparser
import copy
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
CLUSTER = ROOT / "cluster"
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
    """`--name=value` / `--name value` flags of `program` inside a shell command line (for
    `ray`, of the `;`-separated part that runs `ray start`)."""
    if program == "ray":
        command = next(part for part in command.split(";") if re.search(r"\bray start\b", part))
    words = shlex.split(command)
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
    assert set(replacement) == {"provider", "auth", "head_setup_commands"}, replacement
    onprem = copy.deepcopy(config)
    for key in ("max_workers", "provider", "auth", "available_node_types", "head_node_type"):
        onprem.pop(key, None)
    onprem.pop("head_setup_commands")
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
    # No AWS there: the database URI from a file, NFS instead of the bucket, no SSH guard (no
    # security groups to read); the same head-setup.sh.
    setup = _one(prepared["head_setup_commands"], "head-setup.sh")
    assert "RAYSWEEP_DB_URI_FILE=" in setup and "RAYSWEEP_STORAGE=/" in setup
    assert "MLFLOW_ARTIFACTS_DESTINATION=/" in setup
    assert not any("ssh-guard" in c for c in prepared["head_setup_commands"])


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


# --- the head's setup, in a fake head -------------------------------------------------------
# cluster/head-setup.sh and cluster/ssh-guard.sh, run exactly as cluster.yaml runs them, with
# HOME and /etc under tmp_path; `sudo` just runs the command; `systemctl`, `curl` and the
# environment's Python log their calls (MLflow "answers"; the SSM parameter, the driver check
# and the security group's rules are faked through FAKE_* variables).

_FAKE_PYTHON = """echo "python $*" >> "$FAKE_LOG"
case "$1" in
  -c) exec test -z "$FAKE_NO_DRIVER" ;;
  */head_aws.py)
    [ -z "$FAKE_AWS_FAIL" ] || exit 2
    [ "$2" = parameter ] && echo "$FAKE_DB_URI"
    [ "$2" = ssh-sources ] && printf '%s\\n' $FAKE_SSH_SOURCES
    exit 0 ;;
esac
exit 1"""
_FAKES = {
    "sudo": 'exec "$@"',
    "systemctl": 'echo "systemctl $*" >> "$FAKE_LOG"',
    "journalctl": "true",
    "curl": 'echo "curl $*" >> "$FAKE_LOG"',
    "python": _FAKE_PYTHON,
}
DB_URI = "postgresql+psycopg://mlflow:s3cret@db.example:5432/mlflow?sslmode=require"


def _fake_head(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "raysweep").symlink_to(ROOT)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, body in _FAKES.items():
        (fake_bin / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake_bin / name).chmod(0o755)
    return {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "HOME": str(home),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_DB_URI": DB_URI,
        "RAYSWEEP_PYTHON": str(fake_bin / "python"),
        "RAYSWEEP_ETC": str(tmp_path / "etc" / "raysweep"),
        "RAYSWEEP_SYSTEMD_DIR": str(tmp_path / "etc" / "systemd"),
    }


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    Path(env["FAKE_LOG"]).unlink(missing_ok=True)
    return subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )


def _calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def _installed(env: dict[str, str]) -> dict[str, bytes]:
    home, etc = Path(env["HOME"]), Path(env["RAYSWEEP_ETC"])
    files = [home / ".raysweep-env", home / ".bashrc", etc / "mlflow.env"]
    files.append(Path(env["RAYSWEEP_SYSTEMD_DIR"]) / "raysweep-mlflow.service")
    return {str(f): f.read_bytes() for f in files}


@pytest.fixture
def head_setup(config: dict) -> str:
    """cluster.yaml's head-setup command, with the bucket filled in as the docs say."""
    command = _one(config["head_setup_commands"], "head-setup.sh")
    assert "RAYSWEEP_BUCKET=YOUR-BUCKET" in command
    return command.replace("YOUR-BUCKET", "my-bucket")


def test_head_environment_makes_raysweep_run_need_no_flags(head_setup: str, tmp_path) -> None:
    env = _fake_head(tmp_path)
    proc = _run(head_setup, env)
    assert proc.returncode == 0, proc.stderr
    home = Path(env["HOME"])
    lines = (home / ".raysweep-env").read_text().splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines)
    assert exports == {
        "RAY_ADDRESS": "auto",
        "RAY_AUTH_MODE": "token",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "RAYSWEEP_STORAGE": "s3://my-bucket/ray_results",
    }
    assert (home / ".bashrc").read_text().splitlines() == [". ~/.raysweep-env"]

    # raysweep reads exactly these variables.
    from raysweep.cli import run

    storage = next(p for p in run.params if p.name == "storage")
    assert storage.envvar == "RAYSWEEP_STORAGE"
    source = (ROOT / "raysweep" / "ray_session.py").read_text()
    assert 'os.environ.get("RAY_ADDRESS")' in source
    assert "MLFLOW_TRACKING_URI" in (ROOT / "raysweep" / "tracking.py").read_text()


def test_head_setup_runs_mlflow_on_postgresql_as_a_service(head_setup: str, tmp_path) -> None:
    env = _fake_head(tmp_path)
    proc = _run(head_setup, env)
    assert proc.returncode == 0, proc.stderr
    calls = _calls(env)
    # The URI comes from the SSM parameter cluster.yaml names, into a root-only file.
    assert any(c.endswith("head_aws.py parameter /raysweep/mlflow-db-uri") for c in calls)
    mlflow_env = Path(env["RAYSWEEP_ETC"]) / "mlflow.env"
    assert mlflow_env.stat().st_mode & 0o777 == 0o600
    assert dict(line.split("=", 1) for line in mlflow_env.read_text().splitlines()) == {
        "MLFLOW_BACKEND_STORE_URI": DB_URI,
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://my-bucket/mlflow",
    }
    assert "s3cret" not in proc.stdout + proc.stderr
    unit = (Path(env["RAYSWEEP_SYSTEMD_DIR"]) / "raysweep-mlflow.service").read_text()
    assert f"User={pwd.getpwuid(os.getuid()).pw_name}\n" in unit
    assert f"ExecStart={env['HOME']}/raysweep/.venv/bin/mlflow server " in unit
    assert "@" not in unit.split("[Unit]")[1]
    # Installed, enabled (starts at boot), started, and waited for.
    for expected in (
        "systemctl daemon-reload",
        "systemctl enable --quiet raysweep-mlflow",
        "systemctl restart raysweep-mlflow",
    ):
        assert expected in calls, calls
    assert calls[-1].startswith("curl ") and calls[-1].endswith("http://127.0.0.1:5000/health")


def test_head_setup_is_idempotent_and_restarts_mlflow_only_on_change(
    head_setup: str, tmp_path
) -> None:
    env = _fake_head(tmp_path)
    assert _run(head_setup, env).returncode == 0
    before = _installed(env)

    again = _run(head_setup, env)
    assert again.returncode == 0, again.stderr
    assert "updated" not in again.stdout, again.stdout
    assert _installed(env) == before
    calls = _calls(env)
    assert "systemctl start raysweep-mlflow" in calls  # a no-op when it runs
    assert not [c for c in calls if "restart" in c or "daemon-reload" in c], calls

    # A new URI (a rotated password): MLflow restarts with it; the unit itself is unchanged.
    env["FAKE_DB_URI"] = DB_URI.replace("s3cret", "n3w")
    assert _run(head_setup, env).returncode == 0
    calls = _calls(env)
    assert "systemctl restart raysweep-mlflow" in calls
    assert "systemctl daemon-reload" not in calls


def test_head_setup_never_touches_ray(config: dict) -> None:
    for script in ("head-setup.sh", "ssh-guard.sh"):
        text = (CLUSTER / script).read_text()
        assert not re.search(r"\bray (stop|start)\b", text), script
    assert not any("ray stop" in c for c in config["head_setup_commands"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bucket": "YOUR-BUCKET"}, "replace YOUR-BUCKET"),
        ({"FAKE_DB_URI": "sqlite:////home/ubuntu/mlflow/mlflow.db"}, "must be PostgreSQL"),
        ({"FAKE_DB_URI": "mysql://mlflow:s3cret@db/mlflow"}, "must be PostgreSQL"),
        ({"FAKE_DB_URI": "postgresql://mlflow:s3'cret@db/mlflow"}, "quote"),
        ({"FAKE_NO_DRIVER": "1"}, "no driver for postgresql+psycopg://"),
        ({"FAKE_AWS_FAIL": "1"}, ""),
    ],
)
def test_head_setup_refuses_a_database_it_cannot_use(
    head_setup: str, tmp_path, change: dict, message: str
) -> None:
    env = _fake_head(tmp_path)
    change = dict(change)
    command = head_setup.replace("my-bucket", change.pop("bucket", "my-bucket"))
    env.update(change)
    proc = _run(command, env)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "s3cret" not in proc.stdout + proc.stderr  # no password in ray up's output
    assert not (Path(env["RAYSWEEP_ETC"]) / "mlflow.env").exists()
    assert not [c for c in _calls(env) if c.startswith("systemctl")]


def test_head_setup_stops_the_old_nohup_mlflow_server(head_setup: str, tmp_path) -> None:
    """A head set up before this change ran `nohup mlflow server` (SQLite), pid in
    ~/mlflow/server.pid: the first new setup stops it so the service can take port 5000."""
    env = _fake_head(tmp_path)
    old = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = Path(env["HOME"]) / "mlflow" / "server.pid"
        pidfile.parent.mkdir()
        pidfile.write_text(f"{old.pid}\n")
        proc = _run(head_setup, env)
        assert proc.returncode == 0, proc.stderr
        assert old.wait(timeout=10) is not None
        assert not pidfile.exists()
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


# --- the MLflow server: a systemd unit -------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((CLUSTER / "raysweep-mlflow.service").read_text())
    return parser


def test_mlflow_unit_restarts_on_failure_starts_at_boot_and_binds_localhost() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]
    assert service["Type"] == "simple"  # mlflow server stays in the foreground
    words = shlex.split(service["ExecStart"])
    assert words[:2] == ["@HOME@/raysweep/.venv/bin/mlflow", "server"]
    flags = _flags(service["ExecStart"], "mlflow")
    assert flags == {"--host": "127.0.0.1", "--port": "5000"}
    # The store and the artifact destination come from the environment file head-setup.sh
    # writes (the URI holds the database password: on a command line `ps` would show it),
    # under the names `mlflow server` reads them from.
    assert service["EnvironmentFile"] == "/etc/raysweep/mlflow.env"
    assert 'etc="${RAYSWEEP_ETC:-/etc/raysweep}"' in (CLUSTER / "head-setup.sh").read_text()
    from mlflow.cli import server

    envvars = {p.name: p.envvar for p in server.params}
    assert envvars["backend_store_uri"] == "MLFLOW_BACKEND_STORE_URI"
    assert envvars["artifacts_destination"] == "MLFLOW_ARTIFACTS_DESTINATION"
    # MLflow's background job runner (eight processes raysweep never uses) is off, under the
    # name MLflow reads.
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION as jobs

    assert service["Environment"] == f"{jobs.name}=false"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit_as_installed(head_setup: str, tmp_path) -> None:
    env = _fake_head(tmp_path)
    assert _run(head_setup, env).returncode == 0
    unit = Path(env["RAYSWEEP_SYSTEMD_DIR"]) / "raysweep-mlflow.service"
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaint = re.compile(r"ignoring|unknown|not executable|failed|invalid", re.I)
    problems = [line for line in proc.stderr.splitlines() if complaint.search(line)]
    assert proc.returncode == 0 and not problems, proc.stderr


# --- Ray on the head: started once, never stopped by `ray up` ---------------------------------


def test_head_start_leaves_a_running_ray_alone(config: dict, tmp_path) -> None:
    """`ray up` runs the head's start commands every time, also when it only ships new code:
    with Ray running they must leave it (a `ray stop` would kill the running sweep); with Ray
    down (first boot, a head stopped by `ray down` and started again) they start it."""
    from ray.autoscaler._private.command_runner import _with_environment_variables
    from ray.autoscaler._private.util import with_envs

    venv_bin = tmp_path / "home" / "raysweep" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ray").write_text(
        '#!/bin/sh\necho "ray $*" >> "$FAKE_LOG"\n'
        '[ "$1" = status ] && exit "$FAKE_RAY_STATUS"\nexit 0\n'
    )
    (venv_bin / "ray").chmod(0o755)
    head = config["available_node_types"]["head"]
    # As Ray runs them (commands.py and updater.py): its variables exported in front.
    commands = with_envs(config["head_start_ray_commands"], {"RAY_enable_autoscaler_v2": "1"})
    script = "\n".join(
        _with_environment_variables(c, {"RAY_OVERRIDE_RESOURCES": head["resources"]})
        for c in commands
    )
    log = tmp_path / "calls.log"
    for status, expected in (("0", ["status"]), ("1", ["status", "start"])):
        log.unlink(missing_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "FAKE_LOG": str(log)}
        env["FAKE_RAY_STATUS"] = status
        proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        calls = log.read_text().splitlines()
        assert [c.split()[1] for c in calls] == expected, calls
    assert calls[-1].startswith("ray start --head ")
    assert not any("ray stop" in c for c in config["head_start_ray_commands"])


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


def _with_alternatives(text: str) -> dict:
    """cluster.yaml with its commented alternative node types (gpu_g6, gpu_p4d) uncommented,
    as a user enabling them would."""
    lines, in_block = [], False
    for line in text.splitlines():
        if re.fullmatch(r"  # gpu_\w+:", line):
            in_block = True
        elif in_block and not line.startswith("  #   "):
            in_block = False
        lines.append(line.replace("# ", "", 1) if in_block else line)
    return yaml.safe_load("\n".join(lines))


def test_no_node_type_lets_ray_create_a_world_open_security_group(config: dict, text: str) -> None:
    """Ray's own default group opens SSH to 0.0.0.0/0 (read from Ray's source: importing it
    needs boto3), and Ray creates one for every node type without SecurityGroupIds. Every node
    type here, the commented alternatives too, names the group you create, set in one place."""
    assert "security_group" not in config["provider"]
    full = _with_alternatives(text)
    groups = {
        n: t["node_config"].get("SecurityGroupIds") for n, t in full["available_node_types"].items()
    }
    assert set(groups) == {"head", "gpu_g5", "gpu_g6", "gpu_p4d"}
    assert all(g == ["YOUR-SG-ID"] for g in groups.values()), groups
    code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert sum("YOUR-SG-ID" in line for line in code) == 1  # one place to set it

    import ray.autoscaler._private.aws as aws_pkg

    source = (Path(aws_pkg.__file__).parent / "config.py").read_text()
    funcs = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    ssh = ast.literal_eval(funcs["_create_default_ssh_inbound_rules"].body[-1].value)
    assert ssh[0]["FromPort"] == 22 and ssh[0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    configure = ast.unparse(funcs["_configure_security_group"])
    assert "if 'SecurityGroupIds' not in node_type['node_config']" in configure
    assert "if not node_types_to_configure:\n        return config" in configure


def test_nodes_require_imdsv2_and_encrypted_disks(text: str) -> None:
    from ray.autoscaler._private.util import validate_config

    full = _with_alternatives(text)
    validate_config(full)  # the alternatives, uncommented, are valid too
    for name, node in full["available_node_types"].items():
        node_config = node["node_config"]
        assert node_config["MetadataOptions"]["HttpTokens"] == "required", name
        volumes = node_config["BlockDeviceMappings"]
        assert volumes and all(v["Ebs"]["Encrypted"] is True for v in volumes), name


@pytest.mark.parametrize(
    ("sources", "allowed"),
    [
        (["203.0.113.7/32"], True),
        (["203.0.113.0/24", "2001:db8::/64"], True),
        (["203.0.113.7/32", "0.0.0.0/0"], False),
        (["::/0"], False),
    ],
)
def test_ssh_guard_refuses_ssh_from_the_world_unless_told(
    config: dict, tmp_path, sources: list[str], allowed: bool
) -> None:
    """cluster.yaml's first head setup command, run as written: the head refuses to come up
    when its security group lets 0.0.0.0/0 or ::/0 reach port 22, unless the user changed
    RAYSWEEP_ALLOW_WORLD_SSH=0 to 1 there."""
    guard = config["head_setup_commands"][0]
    assert guard == "RAYSWEEP_ALLOW_WORLD_SSH=0 bash ~/raysweep/cluster/ssh-guard.sh"
    env = _fake_head(tmp_path)
    env["FAKE_SSH_SOURCES"] = " ".join(sources)
    proc = _run(guard, env)
    assert any(c.endswith("head_aws.py ssh-sources") for c in _calls(env))
    assert (proc.returncode == 0) == allowed, proc.stdout + proc.stderr
    if not allowed:
        assert "refusing" in proc.stderr and "RAYSWEEP_ALLOW_WORLD_SSH=1" in proc.stderr
        opted_in = _run(guard.replace("SSH=0", "SSH=1"), env)
        assert opted_in.returncode == 0 and "WARNING" in opted_in.stderr


def test_ssh_guard_fails_closed_when_it_cannot_read_the_group(config: dict, tmp_path) -> None:
    env = _fake_head(tmp_path)
    env["FAKE_AWS_FAIL"] = "1"
    assert _run(config["head_setup_commands"][0], env).returncode != 0


def _head_aws():
    import importlib.util

    spec = importlib.util.spec_from_file_location("head_aws", CLUSTER / "head_aws.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORLD = [{"CidrIp": "0.0.0.0/0"}]


def _tcp(low: int, high: int, **sources) -> dict:
    return {"IpProtocol": "tcp", "FromPort": low, "ToPort": high, **sources}


@pytest.mark.parametrize(
    ("rule", "sources"),
    [
        (_tcp(22, 22, IpRanges=WORLD), ["0.0.0.0/0"]),
        ({"IpProtocol": "-1", "IpRanges": WORLD}, ["0.0.0.0/0"]),  # all traffic
        ({"IpProtocol": "6", "FromPort": 0, "ToPort": 1024, "IpRanges": WORLD}, ["0.0.0.0/0"]),
        (_tcp(22, 22, Ipv6Ranges=[{"CidrIpv6": "::/0"}]), ["::/0"]),
        (_tcp(443, 443, IpRanges=WORLD), []),
        ({"IpProtocol": "udp", "FromPort": 22, "ToPort": 22, "IpRanges": WORLD}, []),
        (_tcp(22, 22, IpRanges=[{"CidrIp": "203.0.113.7/24"}]), ["203.0.113.0/24"]),
        ({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123"}]}, []),
        (_tcp(22, 22, PrefixListIds=[{"PrefixListId": "pl-1"}]), ["prefix-list:pl-1"]),
    ],
)
def test_ssh_sources_are_the_rules_that_reach_port_22(rule: dict, sources: list[str]) -> None:
    assert _head_aws().ssh_sources([rule]) == sources


def test_ssh_guard_checks_a_group_offline(tmp_path) -> None:
    """The real guard and the real Python, on `aws ec2 describe-security-groups` output (the
    docs' check from a laptop): Ray's default group is refused, the docs' group passes."""
    intracluster = {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123"}]}
    env = {**os.environ, "RAYSWEEP_PYTHON": sys.executable}
    for cidr, allowed in (("0.0.0.0/0", False), ("203.0.113.7/32", True)):
        rules = [intracluster, _tcp(22, 22, IpRanges=[{"CidrIp": cidr}])]
        path = tmp_path / "groups.json"
        path.write_text(json.dumps({"SecurityGroups": [{"IpPermissions": rules}]}))
        proc = subprocess.run(
            ["bash", str(CLUSTER / "ssh-guard.sh"), "--rules", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (proc.returncode == 0) == allowed, proc.stdout + proc.stderr
        assert cidr in proc.stdout + proc.stderr


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
        "cluster/iam/head.json",
        "RAYSWEEP_ALLOW_WORLD_SSH=1",
        "raysweep-mlflow",
        "--resume",
        "ray up cluster.yaml --restart-only",
    ):
        assert needle in doc, needle


def test_every_file_the_cluster_docs_name_is_in_the_repository() -> None:
    """docs/cluster.md walks through commands that use files of this repository (cluster.yaml,
    cluster/iam/*.json, the head's scripts, sweep files, tests): every one of them exists."""
    doc = (ROOT / "docs" / "cluster.md").read_text()
    top = "cluster|experiments|scripts|tests|docs|raysweep"
    named = set(
        re.findall(
            rf"(?:(?<=file://)|(?<![\w/.~-]))(?:~/raysweep/)?((?:{top})/[\w./-]*[\w/]|cluster\.yaml)",
            doc,
        )
    )
    assert {"cluster.yaml", "cluster/iam/trust-ec2.json", "cluster/head-setup.sh"} <= named, named
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, missing


# --- planning against the autoscaling cluster ------------------------------------------------


def test_sweeps_are_planned_at_the_size_the_cluster_can_grow_to(config: dict, tmp_path) -> None:
    """With GPU workers at min 0 the live cluster has no GPU and no CPU until trials ask; the
    plan uses the autoscaling config `ray up` leaves on the head (here: cluster.yaml itself)."""
    from raysweep.config import SweepSpec
    from raysweep.errors import UserError
    from raysweep.resources import autoscaling_capacity, with_capacity
    from raysweep.sections import ResourcesSpec
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
    requests, parallel = plan_resources(spec, with_capacity(live, capacity), None)
    assert requests["main"].gpus_per_worker == 1.0  # GPUs on auto: the cluster will have them
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
