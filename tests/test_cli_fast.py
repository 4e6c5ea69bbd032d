"""Fast tests of the `raysweep` command: help, validate, plan, models and user errors (no Ray).

The fast commands run as real subprocesses of the installed entry point; `models` (which builds
every model with torch) runs in-process so that torch is imported once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raysweep.cli import main

BIN = Path(sys.executable).with_name("raysweep")
CMD = [str(BIN)] if BIN.is_file() else [sys.executable, "-m", "raysweep.cli"]

SWEEP = """\
name: cli-test
dataset: {name: synthetic}
model: {name: lenet}
train: {epochs: 2, batch_size: 64, optimizer: {name: adam, lr: 1.0e-3}}
sweep:
  mode: grid
  axes:
    model.name: [lenet, vgg]
    train.optimizer.lr: [1.0e-3, 1.0e-2]
resources: {workers_per_trial: 1, cpus_per_worker: 1}
"""
BAD = SWEEP.replace("train: {epochs: 2,", "train: {optimzer: {lr: 0.1}, epochs: 2,")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CMD, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`raysweep.cli.main` in-process: (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


# ---- real subprocesses ------------------------------------------------------------------------


def test_help(tmp_path: Path) -> None:
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for command in ("validate", "plan", "run", "models"):
        assert command in proc.stdout
    assert "--debug" in proc.stdout


def test_help_validate_and_plan_do_not_import_torch_or_ray(sweep_dir: Path) -> None:
    """`raysweep --help`, every command's `--help`, `validate` and `plan` stay light."""
    code = (
        "import sys\n"
        "from raysweep.cli import cli, main\n"
        "helps = [[name, '--help'] for name in sorted(cli.commands)]\n"
        "for args in (['--help'], *helps, ['validate', 'sweep.yaml'],\n"
        "             ['plan', 'sweep.yaml'], ['plan', '--json', 'sweep.yaml'],\n"
        "             ['validate', 'bad.yaml']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        print('EXIT', *args, exc.code)\n"
        "heavy = ('torch', 'ray', 'mlflow', 'pandas', 'matplotlib')\n"
        "print('HEAVY', *[m for m in heavy if m in sys.modules])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=sweep_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok: sweep 'cli-test', 4 trials" in proc.stdout  # the commands really ran
    helped = {line.split()[1] for line in proc.stdout.splitlines() if line.endswith("--help 0")}
    commands = {"validate", "plan", "run", "models", "report", "best", "predict", "export"}
    assert helped >= commands, proc.stdout
    assert proc.stdout.splitlines()[-1] == "HEAVY", proc.stdout


def test_validate_ok(sweep_dir: Path) -> None:
    proc = cli("validate", "sweep.yaml", cwd=sweep_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "sweep.yaml: ok: sweep 'cli-test', 4 trials\n"
    assert proc.stderr == ""


def test_plan_text(sweep_dir: Path) -> None:
    proc = cli("plan", "sweep.yaml", cwd=sweep_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "sweep 'cli-test': 4 trials, 8 epochs in all"
    assert lines[1] == "base: model lenet, dataset synthetic, 2 epochs, adam lr 1e-3, batch 64"
    assert lines[2].startswith("each trial: 1 worker x (1 CPU) (inline); up to ")
    assert lines[4].split() == ["trial", "model.name", "train.optimizer.lr", "studies"]
    assert [line.split() for line in lines[5:9]] == [
        ["t000", "lenet", "1e-3", "main"],
        ["t001", "lenet", "0.01", "main"],
        ["t002", "vgg", "1e-3", "main"],
        ["t003", "vgg", "0.01", "main"],
    ]


def test_plan_json(sweep_dir: Path) -> None:
    proc = cli("plan", "--json", "sweep.yaml", "--set", "train.epochs=3", cwd=sweep_dir)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["name"] == "cli-test"
    assert data["count"] == 4 == len(data["trials"])
    assert data["epochs"] == 12
    assert data["resources_per_trial"]["workers"] == 1
    assert data["resources_per_trial"]["CPU"] == 1.0
    assert data["executor"] == "inline"
    assert data["parallel"] >= 1
    assert data["placement_problems"] == []
    trials = data["trials"]
    assert [t["trial_id"] for t in trials] == ["t000", "t001", "t002", "t003"]
    assert [
        (t["config"]["model"]["name"], t["config"]["train"]["optimizer"]["lr"]) for t in trials
    ] == [
        ("lenet", 1e-3),
        ("lenet", 1e-2),
        ("vgg", 1e-3),
        ("vgg", 1e-2),
    ]
    assert all(t["config"]["train"]["epochs"] == 3 for t in trials)
    assert trials[3]["name"] == "vgg lr=0.01"
    assert trials[3]["overrides"] == {"model.name": "vgg", "train.optimizer.lr": 0.01}
    assert trials[3]["studies"] == ["main"]


def test_bad_sweep_file_is_a_user_error(sweep_dir: Path) -> None:
    proc = cli("validate", "bad.yaml", cwd=sweep_dir)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("raysweep: error: bad.yaml: train.optimzer: unknown key")
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_flag(sweep_dir: Path) -> None:
    proc = cli("validate", "--bogus", "sweep.yaml", cwd=sweep_dir)
    assert proc.returncode == 2
    assert "raysweep: error: No such option '--bogus'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(sweep_dir: Path) -> None:
    proc = cli("--debug", "validate", "bad.yaml", cwd=sweep_dir)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ConfigError" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1].startswith("raysweep: error: bad.yaml:")


# ---- in-process (same code path, cheaper) -----------------------------------------------------


def test_missing_file(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["validate", str(sweep_dir / "nope.yaml")], capsys)
    assert code == 2
    assert err == f"raysweep: error: {sweep_dir / 'nope.yaml'}: no such sweep file\n"


def test_bad_set_text(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(sweep_dir / "sweep.yaml")
    code, _, err = run_main(["validate", path, "--set", "train.epochs"], capsys)
    assert code == 2
    assert err == "raysweep: error: --set 'train.epochs': expected dotted.key=value\n"
    code, _, err = run_main(["plan", path, "--set", "train.epochs=[1"], capsys)
    assert code == 2
    assert err.startswith("raysweep: error: --set 'train.epochs=[1': value is not valid YAML")


def test_plan_bad_trial_is_a_user_error(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(sweep_dir / "sweep.yaml")
    args = ["plan", path, "--set", "sweep.axes.train.optimizer.lr=[0.1,-1]"]
    code, out, err = run_main(args, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"raysweep: error: {path}: trial t001 (")
    assert "train.optimizer.lr: Input should be greater than 0" in err


def test_validate_with_overrides(sweep_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(sweep_dir / "sweep.yaml")
    args = ["validate", path, "--set", "sweep.mode=ofat", "--set", "sweep.repeats=2"]
    code, out, err = run_main(args, capsys)
    assert (code, err) == (0, "")
    assert out == f"{path}: ok: sweep 'cli-test', 6 trials\n"  # (base + vgg + lr 0.01) x 2


def test_plan_warns_when_a_trial_cannot_be_placed(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(sweep_dir / "sweep.yaml")
    code, out, _ = run_main(["plan", path, "--set", "resources.cpus_per_worker=100000"], capsys)
    assert code == 0
    assert "raysweep: warning: cannot be placed on this machine: a trial needs 100000 CPU" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([], capsys)
    assert code == 2
    assert "Commands:" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0
    assert "0.1.0" in out


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["--bogus", "validate"], "Usage: raysweep [OPTIONS] COMMAND [ARGS]..."),
        (["validate", "--bogus", "x.yaml"], "Usage: raysweep validate [OPTIONS] SPEC"),
        (["nope"], "Usage: raysweep [OPTIONS] COMMAND [ARGS]..."),
    ],
)
def test_usage_errors_print_the_usage_line_then_one_error_line(
    args: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(args, capsys)
    assert (code, out) == (2, "")
    first, second = err.splitlines()
    assert first == usage
    assert second.startswith("raysweep: error: ")
    assert "--bogus" in second or "'nope'" in second


def test_ctrl_c_exits_130(
    sweep_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import raysweep.commands

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(raysweep.commands, "run_validate", interrupted)
    code, out, err = run_main(["validate", str(sweep_dir / "sweep.yaml")], capsys)
    assert (code, out, err) == (130, "", "\nraysweep: interrupted\n")


def test_user_error_shows_itself_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Library code raises it; click's standalone mode calls `show` and exits `exit_code`."""
    import pickle

    import click

    from raysweep.errors import ConfigError, UserError

    exc = ConfigError("sweep.yaml: train.epochs: must be > 0")
    assert isinstance(exc, click.ClickException) and isinstance(exc, UserError)
    assert exc.exit_code == 2 and str(exc) == "sweep.yaml: train.epochs: must be > 0"
    exc.show()
    assert capsys.readouterr() == ("", "raysweep: error: sweep.yaml: train.epochs: must be > 0\n")
    again = pickle.loads(pickle.dumps(exc))  # Ray ships errors between processes
    assert type(again) is ConfigError and str(again) == str(exc)


# ---- run, with the sweep itself faked (no Ray, no MLflow) ---------------------------------------


@pytest.mark.parametrize(
    ("statuses", "exit_code"),
    [
        (["finished", "stopped", "diverged", "early_stopped"], 0),
        (["finished", "failed", "finished", "finished"], 1),
        (["finished", "failed", "killed", "killed"], 130),
    ],
)
def test_run_prints_how_the_sweep_ended_and_exits_with_its_code(
    statuses: list[str],
    exit_code: int,
    sweep_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import raysweep.runner
    import raysweep.tracking
    from raysweep.plan import Trial
    from raysweep.records import TrialOutcome
    from raysweep.sweep import RunOptions

    seen: dict[str, object] = {}

    def fake_run_sweep(
        sweep: object, trials: list[Trial], text: str, options: RunOptions, console: object
    ) -> dict[str, TrialOutcome]:
        seen.update(options=options, text=text)
        return {
            t.trial_id: TrialOutcome(t, status=s, error="Traceback\nValueError: boom")
            for t, s in zip(trials, statuses, strict=True)
        }

    monkeypatch.setattr(raysweep.runner, "run_sweep", fake_run_sweep)
    monkeypatch.setattr(raysweep.tracking, "experiment_id_for", lambda uri, name: "7")
    spec = str(sweep_dir / "sweep.yaml")
    args = ["--debug", "run", spec, "--set", "train.epochs=3", "--tracking-uri", "sqlite:///m.db"]
    code, out, err = run_main(args, capsys)
    assert (code, err) == (exit_code, "")
    options = seen["options"]
    assert isinstance(options, RunOptions)
    assert options.debug and options.tracking_uri == "sqlite:///m.db"
    assert seen["text"] == SWEEP
    lines = out.splitlines()
    assert lines[0] == "" and lines[1].startswith("trial_id  status")
    failed = [line for line in lines if line.startswith("raysweep: trial ")]
    listed = "raysweep: trial t001 (lenet lr=0.01) failed: ValueError: boom"
    assert failed == ([listed] if code else [])
    results = next(i for i, line in enumerate(lines) if "results in MLflow" in line)
    assert lines[results - 1] == ""
    assert lines[results].endswith("/#/experiments/7?workflowType=machine_learning")
    resume = f"finish them with: raysweep run {spec} --set train.epochs=3 --resume"
    assert lines[results + 1 :] == (
        [f"raysweep: interrupted: 2 trials unfinished; {resume}"] if code == 130 else []
    )


# ---- models (imports torch; in-process so once) -----------------------------------------------


def test_models_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.models import list_models

    code, out, err = run_main(["models"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["model", "params", "source"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == list_models()
    counts = {line.split()[0]: line.split()[1] for line in lines[1:]}
    # DESIGN.md: parameter counts the zoo must reproduce (3x32x32, 10 classes)
    assert counts["basic_cnn"] == "1,147,466"
    assert counts["lenet"] == "62,006"
    assert counts["nn"] == "285,162"


def test_models_json_for_another_input(capsys: pytest.CaptureFixture[str]) -> None:
    from raysweep.models import list_models

    code, out, err = run_main(["models", "--input", "1x28x28", "--json"], capsys)
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list_models()
    for row in rows:
        assert set(row) >= {"name", "params", "kwargs", "source"}
        assert isinstance(row["params"], int) and row["params"] > 0
    by_name = {r["name"]: r for r in rows}
    assert 0 < by_name["lenet"]["params"] < 62_006  # one input channel, 28x28
    assert by_name["lenet"]["kwargs"] == {"dropout": 0.0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "bad"], "--input 'bad': expected CxHxW"),
        (["--input", "3x32"], "--input '3x32': expected CxHxW"),
        (["--input", "1x28x32"], "--input '1x28x32': images must be square"),
        (["--num-classes", "1"], "raysweep: error: Invalid value for '--num-classes'"),
    ],
)
def test_models_bad_input(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(["models", *args], capsys)
    assert code == 2
    assert message in err
    assert "raysweep: error:" in err
    assert "Traceback" not in err
