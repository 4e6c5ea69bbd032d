"""The log file of `raysweep run`: other libraries' messages, kept off the terminal.

While a sweep runs, the terminal shows raysweep's own lines only. What Ray, MLflow, alembic,
matplotlib and the rest log (Ray's token-authentication WARNING, MLflow's "Creating initial
MLflow database tables" INFO), Python warnings (a matplotlib `UserWarning`) and the error
messages Ray's driver prints when a process dies ("A worker died or was killed while executing
a task...") go to one file per run, `~/.cache/raysweep/logs/<sweep>-<time>.log` (or under
$RAYSWEEP_LOG_DIR); `raysweep --debug run` shows them on the terminal too.

How: a file handler on the root logger, and every library logger that writes to the terminal
itself (Ray's "ray", MLflow's "mlflow", ...) loses that handler and propagates to the root
instead; MLflow is told not to attach its handlers when it is first imported
(`MLFLOW_CONFIGURE_LOGGING`), Ray's driver is started with `configure_logging=False` (see
`raysweep.ray_session.init_ray`); Python warnings are captured by `logging`. Ray's driver has no
setting for its error messages: `route_ray_errors` replaces the function its error-listener
thread prints them with (see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

LOG_DIR_ENV = "RAYSWEEP_LOG_DIR"
DEFAULT_LOG_DIR = "~/.cache/raysweep/logs"
KEEP_LOGS = 100  # the newest log files kept in the directory; older ones are removed
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Ray's error messages (a process died, ...), as `route_ray_errors` logs them.
RAY_ERRORS_LOGGER = "ray.error_messages"
# Environment defaults for the libraries (a value the user set wins): MLflow attaches no
# terminal handler of its own when imported, and draws no "Downloading artifacts" bars.
LIBRARY_ENV = {
    "MLFLOW_CONFIGURE_LOGGING": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

_CURRENT: list[LibraryLog] = []


def log_dir() -> Path:
    """Where the logs go: $RAYSWEEP_LOG_DIR, else ~/.cache/raysweep/logs."""
    return Path(os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR).expanduser()


def log_path(sweep_name: str, directory: Path | None = None, now: float | None = None) -> Path:
    """A new log file's path: `<directory>/<sweep name>-<local time>.log` (a number added when
    that file exists already)."""
    directory = directory or log_dir()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", sweep_name).strip("_") or "sweep"
    stem += time.strftime("-%Y%m%d-%H%M%S", time.localtime(now))
    path, n = directory / f"{stem}.log", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.log"
    return path


def _writes_to_terminal(handler: logging.Handler) -> bool:
    """A handler writing to stdout or stderr (as they are now, as they were at start-up, or
    anything else on file descriptor 1 or 2)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    if stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        return True
    try:
        return stream.fileno() in (1, 2)
    except (AttributeError, OSError, ValueError):  # no descriptor (a StringIO), or closed
        return False


class LibraryLog:
    """The log file of one run, with the root-logger state it replaced (`close` puts it
    back). `debug`: the same records are shown on `terminal` (default stderr) too."""

    def __init__(self, path: Path, debug: bool, terminal: TextIO | None = None) -> None:
        self.path = path
        self.debug = debug
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
        self.handlers[0].setFormatter(logging.Formatter(FORMAT))
        if debug:
            shown = logging.StreamHandler(terminal or sys.stderr)
            shown.setFormatter(logging.Formatter(TERMINAL_FORMAT))
            self.handlers.append(shown)
        root = logging.getLogger()
        self._root_level = root.level
        self._ray_print: Any = None
        root.setLevel(logging.INFO)
        for handler in self.handlers:
            root.addHandler(handler)
        for key, value in LIBRARY_ENV.items():
            os.environ.setdefault(key, value)
        # What MLflow itself would set: alembic's INFO is a hundred lines per new store.
        if logging.getLogger("alembic").level == logging.NOTSET:
            logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.captureWarnings(True)
        self.adopt()

    def adopt(self) -> None:
        """Route every logger that writes to the terminal itself through the root (and so to
        the file): its terminal handlers removed, propagation on. Called again once Ray is
        imported, which gives the "ray" logger its own terminal handler."""
        loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]
        for logger in loggers:
            if not isinstance(logger, logging.Logger):
                continue
            mine = [h for h in logger.handlers if _writes_to_terminal(h)]
            for handler in mine:
                logger.removeHandler(handler)
            if mine or not logger.handlers:
                logger.propagate = True

    def route_ray_errors(self) -> bool:
        """Send the error messages Ray's driver prints (a worker or node died, ...) to this
        log instead of stdout; False if this Ray has no such printer (they stay printed).

        Ray's driver starts a thread (`listen_error_messages` in ray/_private/worker.py) that
        receives the cluster's error messages and hands each to the module function
        `print_to_stdstream`, which prints it; no flag or environment variable turns it off
        (`log_to_driver=False` covers worker output, not these). The thread looks the function
        up at each message, so replacing it there routes exactly those messages: the sweep
        reports a lost process in one line of its own (`raysweep.progress.Console`). Call it
        after `ray.init` (the worker-log printer, used with `log_to_driver`, keeps Ray's own).
        """
        from ray._private import worker

        if not callable(getattr(worker, "print_to_stdstream", None)):
            return False
        if self._ray_print is None:
            self._ray_print = worker.print_to_stdstream
        logger = logging.getLogger(RAY_ERRORS_LOGGER)

        def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
            pid = data.get("pid", "")
            for line in data.get("lines", []):
                logger.warning("(%s) %s", pid, line)

        worker.print_to_stdstream = to_log
        return True

    def close(self) -> None:
        """Stop writing the file and put the root logger, warnings and Ray's error printer
        back as they were (the library loggers stay routed through the root)."""
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(self._root_level)
        logging.captureWarnings(False)
        if self._ray_print is not None:
            from ray._private import worker

            worker.print_to_stdstream = self._ray_print
            self._ray_print = None
        if self in _CURRENT:
            _CURRENT.remove(self)


def prune(directory: Path, keep: int = KEEP_LOGS) -> None:
    """Remove all but the newest `keep` log files of `directory`."""
    logs = sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        old.unlink(missing_ok=True)


def start(
    sweep_name: str, debug: bool, directory: Path | None = None, terminal: TextIO | None = None
) -> LibraryLog:
    """Open this run's log file and route the libraries' messages to it (and, with `debug`,
    to the terminal too); returns it. It stays open until the process exits (`close` ends it
    earlier: for tests)."""
    directory = directory or log_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: the logs go to the temp directory instead
        directory = Path(tempfile.gettempdir()) / "raysweep-logs"
    log = LibraryLog(log_path(sweep_name, directory), debug, terminal)
    with contextlib.suppress(OSError):  # an old log that cannot go is no reason to stop
        prune(directory)
    _CURRENT.append(log)
    return log


def current() -> LibraryLog | None:
    """The log of this process's running sweep, if one was started."""
    return _CURRENT[-1] if _CURRENT else None
