"""`raysweep run`'s log file (`raysweep.logfile`): other libraries' log records, Python warnings
and Ray's driver error messages go to the file and not to the terminal, and to both with
`--debug`. In-process (a library logger with its own terminal handler, as Ray's and MLflow's
have), plus one subprocess that imports MLflow after the log is open and creates a store, as a
sweep does; no Ray cluster."""

from __future__ import annotations

import inspect
import io
import logging
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from raysweep import logfile

ROOT = Path(__file__).resolve().parents[1]
# A line of what Ray's raylet publishes when a trial's process is killed.
WORKER_DIED = (
    "A worker died or was killed while executing a task by an unexpected system error. To "
    "troubleshoot the problem, check the logs for the dead worker. Worker exit type: SYSTEM_ERROR"
)


@pytest.fixture
def library() -> Iterator[Callable[[], logging.Logger]]:
    """Makes a library logger that prints to the terminal itself (stderr as the test sees it:
    made in the test's body) and does not propagate, as MLflow configures its own at import;
    put back afterwards."""
    logger = logging.getLogger("somelib")

    def make() -> logging.Logger:
        logger.addHandler(logging.StreamHandler(sys.stderr))
        logger.propagate = False
        logger.setLevel(logging.INFO)
        return logger

    yield make
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[list[logfile.LibraryLog]]:
    """The logs a test starts, closed after it (the root logger put back)."""
    logs: list[logfile.LibraryLog] = []
    yield logs
    for log in logs:
        log.close()


def test_a_librarys_records_and_warnings_go_to_the_file_not_the_terminal(
    library: Callable[[], logging.Logger],
    opened: list[logfile.LibraryLog],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lib = library()
    log = logfile.start("my sweep/1", debug=False, directory=tmp_path)
    opened.append(log)
    assert log.path.parent == tmp_path and log.path.name.startswith("my_sweep_1-")
    lib.warning("Token authentication is disabled for this Ray cluster")
    lib.info("Creating initial MLflow database tables...")
    logging.getLogger("otherlib.sub").warning("a logger with no handler of its own")
    warnings.warn("The figure layout has changed to tight", UserWarning, stacklevel=1)
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")
    text = log.path.read_text()
    assert "WARNING somelib: Token authentication is disabled" in text, text
    assert "INFO somelib: Creating initial MLflow database tables..." in text, text
    assert "WARNING otherlib.sub: a logger with no handler of its own" in text, text
    assert "UserWarning: The figure layout has changed to tight" in text, text


def test_debug_shows_them_on_the_terminal_too(
    library: Callable[[], logging.Logger], opened: list[logfile.LibraryLog], tmp_path: Path
) -> None:
    lib = library()
    terminal = io.StringIO()
    log = logfile.start("s", debug=True, directory=tmp_path, terminal=terminal)
    opened.append(log)
    lib.warning("Token authentication is disabled")
    warnings.warn("tight_layout not applied", UserWarning, stacklevel=1)
    shown = terminal.getvalue()
    assert "WARNING somelib: Token authentication is disabled" in shown, shown
    assert "UserWarning: tight_layout not applied" in shown, shown
    assert "Token authentication is disabled" in log.path.read_text()


def test_close_puts_the_root_logger_and_warnings_back(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    log = logfile.start("s", debug=False, directory=tmp_path)
    assert logfile.current() is log
    log.close()
    assert (list(root.handlers), root.level) == before
    assert logfile.current() is None
    assert warnings.showwarning.__module__ == "warnings"


def test_each_run_gets_its_own_file_and_old_ones_are_pruned(tmp_path: Path) -> None:
    first = logfile.log_path("s", tmp_path, now=0)
    first.write_text("x")
    assert logfile.log_path("s", tmp_path, now=0) == first.with_name(first.stem + "-2.log")
    for i in range(5):
        (tmp_path / f"old-{i}.log").write_text("x")
    logfile.prune(tmp_path, keep=3)
    assert len(list(tmp_path.glob("*.log"))) == 3


def test_rays_error_messages_go_to_the_file(
    opened: list[logfile.LibraryLog], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What Ray's driver thread `listen_error_messages` does with a published error (a dead
    worker), with the printer `route_ray_errors` put in its place; without it, stdout."""
    from ray._private import worker

    # The routing relies on the listener calling the module's `print_to_stdstream` by name.
    assert "print_to_stdstream(" in inspect.getsource(worker.listen_error_messages)
    message = {"lines": [WORKER_DIED], "pid": "raylet", "is_err": False}
    log = logfile.start("s", debug=False, directory=tmp_path)
    opened.append(log)
    assert log.route_ray_errors()
    worker.print_to_stdstream(message, ignore_prefix=False)
    assert capsys.readouterr().out == ""
    assert f"WARNING ray.error_messages: (raylet) {WORKER_DIED}" in log.path.read_text()
    log.close()
    worker.print_to_stdstream(message, ignore_prefix=False)  # Ray's own printer is back
    assert "A worker died or was killed" in capsys.readouterr().out


def test_mlflow_imported_after_the_log_opens_logs_to_it(tmp_path: Path) -> None:
    """As in `raysweep run`: the log opens, then MLflow is imported and creates a new SQLite
    store ("Creating initial MLflow database tables..."): nothing on the terminal."""
    code = (
        "import sys; from pathlib import Path; from raysweep import logfile\n"
        "log = logfile.start('s', debug=False, directory=Path(sys.argv[1]))\n"
        "from mlflow.tracking import MlflowClient\n"
        "MlflowClient(f'sqlite:///{sys.argv[1]}/mlflow.db').search_experiments()\n"
        "print(log.path)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    text = Path(proc.stdout.strip()).read_text()
    assert "Creating initial MLflow database tables" in text, text
