"""MLflow, written by one process: the sweep driver.

Layout (DESIGN.md): experiment = sweep name; one parent run per sweep; one child run per trial
(tag `mlflow.parentRunId`) with the flattened resolved config as params, per-epoch metrics
(step = epoch), and at the end the model, the confusion matrix, per-class accuracy and the
per-step losses, all read from the trial's last Ray checkpoint. Every write goes through one
background thread (`MlflowWriter`), so Tune's event loop never waits on SQLite or artifact
uploads and there is exactly one writer however many trials run.

A tracking server that cannot be reached does not stop the sweep: its writes wait in the
writer's queue and are retried, in order, until the server is back (each retry written so that
a request which reached the server before its reply was lost is not recorded twice). Only at the
end of the sweep is waiting bounded (`RAYSWEEP_TRACKING_GRACE_S`): what is still queued then is
abandoned with one error saying how to record it later (`--resume`, from the checkpoints).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysweep import faults
from raysweep.config import METRICS as METRIC_KEYS
from raysweep.errors import UserError

TAG_TRIAL = "raysweep.trial_id"
TAG_STATUS = "raysweep.status"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ENV_GRACE = "RAYSWEEP_TRACKING_GRACE_S"
DEFAULT_GRACE_S = 120.0
# MLflow's own HTTP retries default to 7 with exponential backoff and a 120 s timeout: minutes
# per request while a server is down, during which the writer could neither report the outage
# nor keep its exit deadline. None (for this process, unless the user set them) leaves the
# waiting to the writer, which retries every write itself (and urllib3 logs no line per retry).
# Ending a run on a server also prints its link and fetches the run again for it: raysweep
# prints the experiment's link itself, and one request less per write is one failure less.
MLFLOW_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
RESUME_HINT = "raysweep run <sweep file> --resume"
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0
# A plain HTTP 500 is usually a passing server fault (a locked database), sometimes a request
# the server can never handle: a few tries, then it is an error like any other.
_SERVER_ERROR_ATTEMPTS = 4
_DOWN_STATUS = re.compile(
    r"too many (408|429|502|503|504) error responses|error code (502|503|504)"
)
_SERVER_ERROR = re.compile(r"too many 500 error responses|error code 500\b")


def resolve_tracking_uri(uri: str | None) -> str:
    """The tracking URI to use; a relative sqlite path becomes absolute (printed to the user)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def ui_hint(uri: str, experiment_id: str | None = None) -> str:
    """How to look at the runs: the `mlflow ui` command and the link to the runs table."""
    link = "http://127.0.0.1:5000"
    if experiment_id is not None:
        link += f"/#/experiments/{experiment_id}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        if experiment_id is None:
            return f"open {base}"
        return f"open {base}/#/experiments/{experiment_id}?workflowType=machine_learning"
    return f"mlflow ui --backend-store-uri {uri}   then open {link}"


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested mappings -> dotted keys (lists stay values)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def pip_requirements() -> list[str]:
    """Pinned requirements for logged models (inferring them costs seconds per model)."""
    from importlib.metadata import version

    return [f"torch=={version('torch')}", f"numpy=={version('numpy')}"]


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial's resolved config as the flat MLflow params of its run (`train.optimizer.lr`)."""
    return {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in flatten(config)}


def grace_seconds() -> float:
    """`$RAYSWEEP_TRACKING_GRACE_S`, else 120 s (see `MlflowWriter.wait` for why)."""
    value = os.environ.get(ENV_GRACE, "").strip()
    try:
        return max(0.0, float(value)) if value else DEFAULT_GRACE_S
    except ValueError as exc:
        raise UserError(f"${ENV_GRACE}: not a number of seconds: {value!r}") from exc


def set_mlflow_http_defaults() -> None:
    """`MLFLOW_HTTP_ENV` for this process, each unless the user set it."""
    for key, value in MLFLOW_HTTP_ENV.items():
        os.environ.setdefault(key, value)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from or during: MLflow raises its MlflowException inside
    `except` without `from`, so the requests error is only the `__context__`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def outage_reason(exc: BaseException) -> str | None:
    """A few words on why `exc` means the tracking server cannot be reached now; None if it
    is any other error (a bad request, a missing run), which retrying would not fix."""
    import requests
    import urllib3

    chain = list(_causes(exc))
    # The most telling cause first: requests reports a read timeout as a ConnectionError.
    kinds: list[tuple[str, tuple[type[BaseException], ...]]] = [
        ("connection refused", (ConnectionRefusedError,)),
        ("connection reset", (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)),
        ("timed out", (requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError)),
        (
            "connection failed",
            (
                requests.ConnectionError,
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ProtocolError,
            ),
        ),
    ]
    for words, types in kinds:
        if any(isinstance(err, types) for err in chain):
            return words
    for err in chain:
        # Statuses show only in the text: urllib3's "too many 503 error responses" once
        # MLflow's retries are spent, or MLflow's "failed with error code 503 != 200".
        found = _DOWN_STATUS.search(str(err))
        if found:
            return f"HTTP {found.group(1) or found.group(2)}"
    return None


def _server_error(exc: BaseException) -> bool:
    """An HTTP 500 from the server (see `_SERVER_ERROR_ATTEMPTS`)."""
    return any(_SERVER_ERROR.search(str(err)) for err in _causes(exc))


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


@dataclass
class _Write:
    """One queued MLflow call and the Future its caller holds."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] = field(default_factory=Future)
    deadline: float | None = None  # monotonic; this write's own limit (start_parent)


@dataclass
class _Outage:
    """The server has been unreachable since `since` (wall clock)."""

    since: float
    reason: str
    announced: bool = False  # on_outage was called


class MlflowWriter:
    """All MLflow writes of a sweep, in order, on one background thread.

    Writes that fail because the server cannot be reached are retried (capped backoff) until
    they succeed, or until the grace period of `wait`/`flush` is over; other failures are
    recorded once (`flush` returns them) and the sweep goes on. `on_outage(text)` is called
    once when the server becomes unreachable, `on_recovered(text)` when it answers again
    (both from the writer thread; the driver prints them).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        on_outage: Callable[[str], None] | None = None,
        on_recovered: Callable[[str], None] | None = None,
        *,
        resume_hint: str = RESUME_HINT,
        max_backoff_s: float = _MAX_BACKOFF_S,
    ) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        set_mlflow_http_defaults()
        self.uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        try:
            self.experiment_id = self._open_experiment(experiment)
        except Exception as exc:
            reason = outage_reason(exc)
            if reason is None:
                raise
            raise UserError(f"MLflow at {tracking_uri} cannot be reached ({reason})") from exc
        self._on_outage = on_outage
        self._on_recovered = on_recovered
        self._resume_hint = resume_hint
        self._grace_s = grace_seconds()  # checked now: a bad value fails before anything runs
        self._max_backoff_s = max_backoff_s
        self._errors: list[str] = []
        self._queue: deque[_Write] = deque()
        self._cond = threading.Condition()
        self._nudge = threading.Event()  # wakes a backoff pause when a deadline is set
        self._local = threading.local()  # `retrying`: set on the writer thread per attempt
        self._closed = False
        self._busy = False
        self._deadline: float | None = None  # monotonic; set while wait()/flush() wait
        self._outage: _Outage | None = None
        self._gave_up = False  # a grace period ran out and the server is still unreachable
        self._lost = 0
        self._lost_since: float | None = None
        self._lost_futures: set[Future[Any]] = set()
        # A daemon thread: a write stuck on a dead server must not keep the process alive
        # (a ThreadPoolExecutor's threads are joined at interpreter exit).
        self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
        self._thread.start()

    def _open_experiment(self, name: str) -> str:
        """The id of experiment `name`, created (or restored from deleted) if need be."""
        found = self.client.get_experiment_by_name(name)
        if found is None:
            return self.client.create_experiment(name)
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    # ---- the queue ------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a write; failures are collected (tracking must not kill the sweep).

        Arguments that are Futures (of earlier writes) are replaced by their results; a write
        whose Future argument came to nothing (its run was never created) is skipped."""
        return self._enqueue(_Write(fn, args))

    def wait(self, grace_s: float | None = None) -> bool:
        """Block until every write queued so far is done (one thread: writes run in order).

        The wait is bounded only while the server is unreachable: once `grace_s` (default
        `$RAYSWEEP_TRACKING_GRACE_S`, else 120 s) have passed since this call, the writes
        still queued are abandoned (`flush` returns one error saying so). 120 s outlasts a
        tracking server's restart (seconds) and a network blip, and is short next to a sweep;
        a longer wait gains nothing, since `--resume` records every trial from its checkpoints.
        Returns False if writes were abandoned (now or earlier)."""
        self._drain(grace_s)
        return self._lost == 0

    def flush(self, grace_s: float | None = None) -> list[str]:
        """Wait for every queued write (bounded as in `wait`), stop the thread; returns the
        errors seen, ending with one for the writes abandoned to an unreachable server."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._drain(grace_s)
        self._thread.join()
        return self.errors()

    def errors(self) -> list[str]:
        """The failed writes so far, and the abandoned ones summed up in one message."""
        errors = list(self._errors)
        if self._lost:
            since = _clock(self._lost_since or time.time())
            errors.append(
                f"MLflow at {self.uri} unreachable since {since}; {self._lost} writes not "
                f"recorded; the checkpoints are kept: run `{self._resume_hint}` once it is "
                "back to record them"
            )
        return errors

    def _enqueue(self, write: _Write) -> Future[Any]:
        with self._cond:
            if self._closed:
                raise RuntimeError("the MLflow writer is closed (flush() was called)")
            self._queue.append(write)
            self._cond.notify_all()
        return write.future

    def _drain(self, grace_s: float | None) -> None:
        """Wait until the queue is empty and the thread idle, with a deadline for outages."""
        deadline = time.monotonic() + (self._grace_s if grace_s is None else max(0.0, grace_s))
        with self._cond:
            self._deadline = deadline
            self._nudge.set()
            self._cond.wait_for(lambda: not self._queue and not self._busy)
            if self._deadline == deadline:
                self._deadline = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                write = self._queue.popleft()
                self._busy = True
            try:
                self._perform(write)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any write
                self._errors.append(f"{_name(write.fn)}: {exc}")
                if not write.future.done():
                    write.future.set_result(None)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _perform(self, write: _Write) -> None:
        if not write.future.set_running_or_notify_cancel():
            return
        futures = [a for a in write.args if isinstance(a, Future)]
        # Writes run in order on this thread, so an earlier write's Future is done by now.
        if any(f.result() is None for f in futures):
            # Its run was never created: the cause is recorded already (an error, or lost).
            if any(f in self._lost_futures for f in futures):
                self._lose(write)
            write.future.set_result(None)
            return
        args = tuple(a.result() if isinstance(a, Future) else a for a in write.args)
        write.future.set_result(self._attempt(write, args))

    def _attempt(self, write: _Write, args: tuple[Any, ...]) -> Any:
        """The write's result, retried while the server is unreachable; None if it failed."""
        for attempt in itertools.count():
            self._local.retrying = attempt > 0
            try:
                result = write.fn(*args)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, none raised
                if not self._retry_after(write, exc, attempt):
                    return None
            else:
                self._note_recovered()
                return result
            finally:
                self._local.retrying = False
        raise AssertionError("unreachable")  # itertools.count() never ends

    def _retry_after(self, write: _Write, exc: Exception, attempt: int) -> bool:
        """After a failed try: pause and say True to try again, or record the write as failed
        (an error) or abandoned (past the deadline) and say False."""
        reason = outage_reason(exc)
        if reason is None:
            if _server_error(exc) and attempt + 1 < _SERVER_ERROR_ATTEMPTS:
                self._pause(attempt, write)
                return True
            self._errors.append(f"{_name(write.fn)}: {exc}")
            return False
        # Announced from the second failure on: one dropped connection is no outage.
        self._note_outage(reason, announce=attempt > 0)
        if self._past_deadline(write):
            self._give_up(write)
            return False
        self._pause(attempt, write)
        return True

    def _retrying(self) -> bool:
        """Whether the write running on this thread is a retry (its last try may have landed)."""
        return bool(getattr(self._local, "retrying", False))

    # ---- outages ----------------------------------------------------------------------------

    def _note_outage(self, reason: str, announce: bool) -> None:
        if self._outage is None:
            self._outage = _Outage(time.time(), reason)
        if not announce or self._outage.announced:
            return
        self._outage.announced = True
        with self._cond:
            queued = len(self._queue) + 1
        self._tell(
            self._on_outage,
            f"MLflow at {self.uri} unreachable since {_clock(self._outage.since)} ({reason}); "
            f"training goes on, {queued} writes queued and retried until it is back",
        )

    def _note_recovered(self) -> None:
        self._gave_up = False
        outage, self._outage = self._outage, None
        if outage is None or not outage.announced:
            return
        with self._cond:
            queued = len(self._queue)
        self._tell(
            self._on_recovered,
            f"MLflow reachable again after {time.time() - outage.since:.0f} s; recording the "
            f"{queued} writes still queued",
        )

    def _tell(self, callback: Callable[[str], None] | None, text: str) -> None:
        if callback is None:
            return
        with contextlib.suppress(Exception):  # a broken printer must not stop the writes
            callback(text)

    def _past_deadline(self, write: _Write) -> bool:
        if self._gave_up:
            return True
        now = time.monotonic()
        with self._cond:
            limits = [d for d in (self._deadline, write.deadline) if d is not None]
        return any(now >= d for d in limits)

    def _give_up(self, write: _Write) -> None:
        """Abandon `write` and every write queued behind it (the server is still down)."""
        self._gave_up = True
        self._lose(write)
        with self._cond:
            queued = list(self._queue)
            self._queue.clear()
        for other in queued:
            if other.future.set_running_or_notify_cancel():
                self._lose(other)
                other.future.set_result(None)

    def _lose(self, write: _Write) -> None:
        self._lost += 1
        self._lost_futures.add(write.future)
        if self._lost_since is None:
            self._lost_since = self._outage.since if self._outage else time.time()

    def _pause(self, attempt: int, write: _Write) -> None:
        """Capped exponential backoff, cut short at a deadline or when one is set."""
        delay = min(_FIRST_BACKOFF_S * 2**attempt, self._max_backoff_s)
        with self._cond:
            limits = [d for d in (self._deadline, write.deadline) if d is not None]
        if limits:
            delay = max(0.0, min(delay, min(limits) - time.monotonic()))
        self._nudge.wait(delay)
        self._nudge.clear()

    # ---- runs -----------------------------------------------------------------------------

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """Create the sweep's parent run now (the caller waits: children need its id).

        Retried like any write while the server is unreachable, for at most the grace
        period; then (or on any other failure) a UserError: nothing has started yet."""
        since_ms = int(time.time() * 1000)
        write = _Write(
            self._create_parent,
            (run_name, tags, params, since_ms),
            deadline=time.monotonic() + self._grace_s,
        )
        run_id = self._enqueue(write).result()
        if run_id is None:
            lost = write.future in self._lost_futures
            why = self.errors()[-1] if lost or not self._errors else self._errors[-1]
            raise UserError(f"could not create the sweep's MLflow run: {why}")
        return run_id

    def _create_parent(
        self, run_name: str, tags: dict[str, str], params: dict[str, Any], since_ms: int
    ) -> str:
        run_id = self._find_run(run_name, tags, since_ms) if self._retrying() else None
        if run_id is None:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
            run_id = run.info.run_id
        self._log_params(run_id, {k: str(v)[:6000] for k, v in params.items()})
        return run_id

    def _find_run(self, run_name: str, tags: dict[str, str], since_ms: int) -> str | None:
        """A run named `run_name` with `tags`, started since `since_ms` (an earlier try's)."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"attributes.start_time >= {since_ms}"
        )
        for run in runs:
            if run.info.run_name == run_name and all(
                run.data.tags.get(k) == str(v) for k, v in tags.items()
            ):
                return run.info.run_id
        return None

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Params in batches of 100 (logging the same value again is a no-op in MLflow)."""
        from mlflow.entities import Param

        batch = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i : i + 100])

    def find_child(self, parent_id: str, trial_id: str) -> str | None:
        """The existing child run of `trial_id` under `parent_id` (resume), if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' "
            f"and tags.`{TAG_TRIAL}` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def create_child(
        self, parent_id: str, name: str, tags: dict[str, str], config: dict[str, Any]
    ) -> str:
        """A nested run for one trial, with the flattened resolved config as params.

        A retry first looks for the child its failed try may have created (same parent,
        same trial id), so a lost reply does not make two runs for one trial."""
        run_id = None
        if self._retrying() and TAG_TRIAL in tags:
            run_id = self.find_child(parent_id, tags[TAG_TRIAL])
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=name,
                tags={"mlflow.parentRunId": parent_id, **tags},
            )
            run_id = run.info.run_id
        self._log_params(run_id, trial_params(config))
        return run_id

    def log_epoch(self, run_id: str, metrics: dict[str, Any]) -> None:
        """One epoch's metrics, step = epoch, in one batch (a retry skips what landed)."""
        from mlflow.entities import Metric

        step = int(metrics["epoch"])
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(metrics[k]), now, step)
            for k in METRIC_KEYS
            if isinstance(metrics.get(k), int | float)
        ]
        if self._retrying():
            batch = [m for m in batch if not self._has_step(run_id, m.key, step)]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def _has_step(self, run_id: str, key: str, step: int) -> bool:
        return any(m.step == step for m in self.client.get_metric_history(run_id, key))

    def log_final(self, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Per-trial results (best_test_acc, best_epoch, ...) and tags."""
        from mlflow.entities import Metric, RunTag

        if self._retrying() and metrics:
            # Tags are set idempotently; a metric with this value already there has landed.
            logged = self.client.get_run(run_id).data.metrics
            metrics = {k: v for k, v in metrics.items() if logged.get(k) != float(v)}
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """A text artifact (sweep file, plan, error)."""
        self.client.log_text(run_id, text, artifact_file)

    def reopen(self, run_id: str, tags: dict[str, str]) -> None:
        """A resumed trial's run is RUNNING again."""
        self.client.update_run(run_id, status="RUNNING")
        self.log_final(run_id, {}, tags)

    def end(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run_id, status)

    def log_checkpoint(
        self, run_id: str, checkpoint_path: str, log_model: bool, trial_id: str = ""
    ) -> None:
        """Model, confusion matrix, per-class accuracy and per-step losses from a checkpoint.

        Safe to repeat (a retry, or `--resume` after a crash in here): files are overwritten
        and the model is logged only if the run has no usable one yet."""
        from raysweep.artifacts import load_state, trial_artifacts

        state = load_state(checkpoint_path)
        self._backfill_epochs(run_id, state["history"])
        with tempfile.TemporaryDirectory() as tmp:
            trial_artifacts(state, Path(tmp))
            self.client.log_artifacts(run_id, tmp)
        faults.hold("model_logging", trial_id)
        if log_model:
            self._log_model(run_id, state)

    def _backfill_epochs(self, run_id: str, history: list[dict[str, float]]) -> None:
        # A driver killed between a checkpoint and its MLflow write loses that epoch's metrics
        # in MLflow; the checkpoint has them all.
        logged = {m.step for m in self.client.get_metric_history(run_id, "test_acc")}
        for epoch, metrics in enumerate(history, start=1):
            if epoch not in logged:
                self.log_epoch(run_id, {**metrics, "epoch": epoch})

    def _model_ready(self, run_id: str) -> bool:
        """Whether the run has a READY model `model`; deletes unfinished ones (PENDING,
        FAILED: a killed or failed earlier try), since `runs:/<id>/model` loads the first
        LoggedModel of that name and run, whatever its state."""
        from mlflow.entities import LoggedModelStatus

        models = self.client.search_logged_models(
            [self.experiment_id],
            filter_string=f"name = 'model' AND source_run_id = '{run_id}'",
        )
        ready = False
        for model in models:
            if model.status == LoggedModelStatus.READY:
                ready = True
            else:
                self.client.delete_logged_model(model.model_id)
        return ready

    def _log_model(self, run_id: str, state: dict[str, Any]) -> None:
        import mlflow
        import numpy as np

        from raysweep.artifacts import rebuild_model

        if self._model_ready(run_id):
            return
        model = rebuild_model(state)
        meta = state["meta"]
        example = np.zeros(
            (2, meta["in_channels"], meta["image_size"], meta["image_size"]), dtype=np.float32
        )
        with mlflow.start_run(run_id=run_id):
            mlflow.pytorch.log_model(
                model,
                name="model",
                input_example=example,
                pip_requirements=pip_requirements(),
                metadata={"raysweep": meta},
            )


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", fn))


def experiment_id_for(tracking_uri: str, name: str) -> str | None:
    """The id of experiment `name`; None if there is none or the server cannot be reached."""
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(tracking_uri).get_experiment_by_name(name)
    except Exception as exc:
        if outage_reason(exc) is None:
            raise
        return None
    return found.experiment_id if found else None
