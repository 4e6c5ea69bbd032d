"""The MLflow writer against a real tracking server that goes away: writes queued during an
outage land exactly once when it is back, an outage that never ends costs a bounded wait and one
clear error, retries do not duplicate runs or metrics, and a model is logged once however often
logging is repeated. No Ray; a local `mlflow server` on loopback, stopped and started again."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raysweep.records import TAG_STATUS, TAG_TRIAL
from raysweep.tracking import MLFLOW_HTTP_ENV, MlflowWriter
from raysweep.write_queue import _server_error, outage_reason

ROOT = Path(__file__).resolve().parents[1]
MLFLOW = ROOT / ".venv" / "bin" / "mlflow"
CONFIG = {"model": {"name": "lenet"}, "train": {"optimizer": {"lr": 0.01}}}


def free_port() -> int:
    """A TCP port nothing listens on now (the server is started on it, and again after a stop)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def poll(check, timeout: float, what: str) -> None:
    """Return once `check()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class TrackingServer:
    """`mlflow server` on loopback over one SQLite store and artifact root, stoppable.

    With `backend` (a database URI, e.g. PostgreSQL's) it serves that store instead, with
    `workers` server processes, and proxies artifacts to `root/art` as on a cluster's head
    (clients upload them through the server)."""

    def __init__(self, root: Path, port: int, backend: str | None = None, workers: int = 1) -> None:
        self.root = root
        self.port = port
        self.uri = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.backend = backend
        self.workers = workers

    def start(self) -> None:
        """Start it (its own process group) and wait until /health answers."""
        command = [
            str(MLFLOW),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            self.backend or f"sqlite:///{self.root / 'db'}",
            "--artifacts-destination" if self.backend else "--default-artifact-root",
            str(self.root / "art"),
        ]
        # No background job runner: nothing here uses it, and it is two more processes.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with (self.root / "server.log").open("a") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        poll(lambda: healthy(self.uri) or self.proc.poll() is not None, 90, "mlflow server")
        if self.proc.poll() is not None:
            pytest.fail(f"mlflow server exited:\n{(self.root / 'server.log').read_text()}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop the whole server (its workers too) and wait until the port refuses."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=60)
        self.proc = None
        poll(lambda: not healthy(self.uri), 30, "the server to stop answering")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-server"), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> TrackingServer:
    """The module's server, running; MLflow's HTTP settings as the writer sets them, undone."""
    for key, value in MLFLOW_HTTP_ENV.items():
        monkeypatch.setenv(key, value)
    if not tracking_server.running:
        tracking_server.start()
    return tracking_server


def epoch_metrics(step: int) -> dict[str, float]:
    return {"epoch": step, "train_loss": 1.0 / step, "test_acc": 0.5 + step / 10}


def children(writer: MlflowWriter, parent_id: str) -> list:
    return writer.client.search_runs(
        [writer.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'"
    )


def steps(writer: MlflowWriter, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in writer.client.get_metric_history(run_id, key))


def test_writes_queued_while_the_server_is_down_land_once_when_it_is_back(
    server: TrackingServer,
) -> None:
    outages: list[str] = []
    recoveries: list[str] = []
    writer = MlflowWriter(
        server.uri, "outage-back", outages.append, recoveries.append, max_backoff_s=0.5
    )
    parent = writer.start_parent("outage sweep", {"raysweep.role": "sweep"}, {"trials": 1})
    server.stop(signal.SIGTERM)
    child = writer.submit(writer.create_child, parent, "t000", {TAG_TRIAL: "t000"}, CONFIG)
    for step in (1, 2, 3):
        writer.submit(writer.log_epoch, child, epoch_metrics(step))
    writer.submit(writer.log_final, child, {"best_test_acc": 0.8}, {TAG_STATUS: "finished"})
    writer.submit(writer.end, child, "FINISHED")
    poll(lambda: outages, 30, "the outage warning")
    assert not child.done()  # queued, not lost

    server.start()
    assert writer.wait(grace_s=60)
    assert writer.flush() == []

    (run,) = children(writer, parent)
    assert run.info.run_id == child.result()
    assert run.info.status == "FINISHED"
    assert run.data.params["train.optimizer.lr"] == "0.01"
    assert run.data.tags[TAG_STATUS] == "finished"
    assert steps(writer, child.result(), "test_acc") == [1, 2, 3]
    assert steps(writer, child.result(), "train_loss") == [1, 2, 3]
    assert len(writer.client.get_metric_history(child.result(), "best_test_acc")) == 1
    assert len(outages) == 1 and "unreachable" in outages[0] and "training goes on" in outages[0]
    assert len(recoveries) == 1 and "reachable again" in recoveries[0]


def test_an_outage_that_never_ends_gives_one_clear_error_after_the_grace_period(
    server: TrackingServer,
) -> None:
    writer = MlflowWriter(server.uri, "outage-forever", max_backoff_s=0.5)
    parent = writer.start_parent("forever sweep", {"raysweep.role": "sweep"}, {"trials": 1})
    server.stop()
    child = writer.submit(writer.create_child, parent, "t000", {TAG_TRIAL: "t000"}, CONFIG)
    for step in (1, 2):
        writer.submit(writer.log_epoch, child, epoch_metrics(step))
    started = time.monotonic()
    assert not writer.wait(grace_s=2)
    waited = time.monotonic() - started
    # After the grace period, writes still hitting a dead server are given up at once.
    writer.submit(writer.log_final, parent, {}, {"raysweep.status": "done"})
    writer.submit(writer.end, parent, "FINISHED")
    errors = writer.flush(grace_s=2)
    assert 2 <= waited < 15, waited
    assert time.monotonic() - started < 20
    assert child.result() is None
    assert len(errors) == 1, errors
    assert re.fullmatch(
        rf"MLflow at {re.escape(server.uri)} unreachable since \d\d:\d\d:\d\d; 5 writes not "
        r"recorded; the checkpoints are kept: run `raysweep run <sweep file> --resume` once it "
        r"is back to record them",
        errors[0],
    ), errors[0]
    assert not writer._thread.is_alive()


def lose_first_reply(monkeypatch: pytest.MonkeyPatch, client: object, method: str) -> None:
    """`client.method` does its request, but the first time its reply is lost (a reset)."""
    import requests
    from mlflow.exceptions import MlflowException

    real = getattr(client, method)
    lost: list[bool] = []

    def call(*args: object, **kwargs: object) -> object:
        result = real(*args, **kwargs)
        if not lost:
            lost.append(True)
            try:
                raise requests.ConnectionError(ConnectionResetError(104, "Connection reset"))
            except requests.ConnectionError as exc:
                # As MLflow's rest_utils does: the requests error is only the context.
                raise MlflowException(f"API request failed with exception {exc}")  # noqa: B904
        return result

    monkeypatch.setattr(client, method, call)


def test_a_retried_write_whose_request_had_reached_the_server_is_not_recorded_twice(
    server: TrackingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = MlflowWriter(server.uri, "lost-replies", max_backoff_s=0.5)
    lose_first_reply(monkeypatch, writer.client, "create_run")
    parent = writer.start_parent("lost sweep", {"raysweep.role": "sweep"}, {"trials": 1})
    lose_first_reply(monkeypatch, writer.client, "create_run")
    child = writer.submit(writer.create_child, parent, "t000", {TAG_TRIAL: "t000"}, CONFIG)
    writer.wait()
    lose_first_reply(monkeypatch, writer.client, "log_batch")
    writer.submit(writer.log_epoch, child, epoch_metrics(1))
    writer.wait()
    lose_first_reply(monkeypatch, writer.client, "log_batch")
    writer.submit(writer.log_final, child, {"best_test_acc": 0.7}, {TAG_STATUS: "finished"})
    assert writer.flush() == []

    sweeps = writer.client.search_runs([writer.experiment_id], "tags.`raysweep.role` = 'sweep'")
    assert [r.info.run_id for r in sweeps] == [parent]
    assert [r.info.run_id for r in children(writer, parent)] == [child.result()]
    assert steps(writer, child.result(), "test_acc") == [1]
    assert len(writer.client.get_metric_history(child.result(), "best_test_acc")) == 1
    assert writer.client.get_run(child.result()).data.tags[TAG_STATUS] == "finished"


def test_a_bad_write_is_recorded_once_and_the_writes_behind_it_go_on(
    server: TrackingServer,
) -> None:
    writer = MlflowWriter(server.uri, "bad-write")
    parent = writer.start_parent("bad sweep", {"raysweep.role": "sweep"}, {"trials": 1})
    bad = writer.submit(writer.log_final, "no-such-run", {"x": 1.0}, {})
    writer.submit(writer.log_final, parent, {}, {"raysweep.status": "done"})
    errors = writer.flush()
    assert bad.result() is None
    assert len(errors) == 1 and errors[0].startswith("log_final: "), errors
    assert writer.client.get_run(parent).data.tags["raysweep.status"] == "done"


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's `status` (and JSON body), after `delay_s`."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        time.sleep(self.server.delay_s)  # type: ignore[attr-defined]
        body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _failure(uri: str) -> Exception:
    from mlflow.tracking import MlflowClient

    with pytest.raises(Exception) as caught:
        MlflowClient(uri).get_experiment("1")
    return caught.value


@pytest.mark.parametrize(
    ("status", "reason"), [(503, "HTTP 503"), (502, "HTTP 502"), (400, None), (500, None)]
)
def test_outage_reason_tells_an_unreachable_server_from_a_bad_request(
    stub_server: http.server.ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    reason: str | None,
) -> None:
    """What MLflow's client really raises (its HTTP retries as the writer sets them); a 500 is
    tried a few times (`_server_error`), then recorded like a bad request."""
    for key, value in MLFLOW_HTTP_ENV.items():
        monkeypatch.setenv(key, value)
    stub_server.status, stub_server.delay_s = status, 0.0  # type: ignore[attr-defined]
    exc = _failure(f"http://127.0.0.1:{stub_server.server_address[1]}")
    assert outage_reason(exc) == reason, repr(exc)
    assert _server_error(exc) == (status == 500)


def test_outage_reason_of_a_refused_connection_and_a_timeout(
    stub_server: http.server.ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in MLFLOW_HTTP_ENV.items():
        monkeypatch.setenv(key, value)
    assert outage_reason(_failure(f"http://127.0.0.1:{free_port()}")) == "connection refused"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    stub_server.status, stub_server.delay_s = 200, 3.0  # type: ignore[attr-defined]
    exc = _failure(f"http://127.0.0.1:{stub_server.server_address[1]}")
    assert outage_reason(exc) == "timed out", repr(exc)


# ---- the model --------------------------------------------------------------------------


def write_checkpoint(directory: Path) -> Path:
    """A trial checkpoint as `raysweep.train` writes it (state.pt), for a LeNet on digits."""
    import torch

    from raysweep.models import create_model
    from raysweep.storage import STATE_FILE

    meta = {
        "model": "lenet",
        "model_kwargs": {},
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 28,
        "mean": [0.5],
        "std": [0.25],
        "classes": [str(i) for i in range(10)],
        "dataset": "digits",
    }
    model = create_model("lenet", in_channels=1, num_classes=10, image_size=28)
    state = {
        "epoch": 2,
        "model": model.state_dict(),
        "history": [epoch_metrics(1), epoch_metrics(2)],
        "step_log": [(1, 0.01, 2.3), (2, 0.01, 1.1)],
        "confusion": [[5 if i == j else 0 for j in range(10)] for i in range(10)],
        "meta": meta,
    }
    directory.mkdir(parents=True)
    torch.save(state, directory / STATE_FILE)
    return directory


def models_of(writer: MlflowWriter, run_id: str) -> list:
    return list(
        writer.client.search_logged_models(
            [writer.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    )


def test_model_logging_is_held_at_its_fault_point_and_repeats_to_one_usable_model(
    server: TrackingServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import torch

    checkpoint = write_checkpoint(tmp_path / "checkpoint_000001")
    holds = tmp_path / "holds"
    holds.mkdir()
    monkeypatch.setenv("RAYSWEEP_HOLD", "model_logging:t000")
    monkeypatch.setenv("RAYSWEEP_HOLD_DIR", str(holds))
    writer = MlflowWriter(server.uri, "model-once")
    parent = writer.start_parent("model sweep", {"raysweep.role": "sweep"}, {"trials": 1})
    run_id = writer.create_child(parent, "t000", {TAG_TRIAL: "t000"}, CONFIG)
    # Leftovers of an attempt killed while logging the model, and of one that failed:
    pending = writer.client.create_logged_model(writer.experiment_id, "model", run_id)
    failed = writer.client.create_logged_model(writer.experiment_id, "model", run_id)
    writer.client.finalize_logged_model(failed.model_id, "FAILED")

    logged = writer.submit(writer.log_checkpoint, run_id, str(checkpoint), True, "t000")
    poll((holds / "model_logging-t000.held").exists, 60, "the model_logging hold")
    files = {a.path for a in writer.client.list_artifacts(run_id)}
    assert {"confusion_matrix.json", "per_class_accuracy.json", "steps.parquet"} <= files
    assert {m.model_id for m in models_of(writer, run_id)} == {pending.model_id, failed.model_id}
    (holds / "model_logging-t000.release").touch()
    logged.result(timeout=120)
    # Still RUNNING: only the recorder ends the run, after its status tag (MLflow's own
    # `start_run` context would have ended it FINISHED here).
    assert writer.client.get_run(run_id).info.status == "RUNNING"
    # `--resume` after a crash past the model: logging again leaves the one model.
    writer.submit(writer.log_checkpoint, run_id, str(checkpoint), True, "t000")
    assert writer.flush() == []

    (model,) = models_of(writer, run_id)
    assert str(model.status) == "READY"
    assert model.model_id not in (pending.model_id, failed.model_id)
    assert steps(writer, run_id, "test_acc") == [1, 2]  # backfilled from the checkpoint, once
    loaded = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    assert loaded(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_stuck_write_does_not_keep_the_process_from_exiting(server: TrackingServer) -> None:
    script = (
        "import sys, threading\n"
        "from raysweep.tracking import MlflowWriter\n"
        f"writer = MlflowWriter({server.uri!r}, 'stuck-exit')\n"
        "writer.submit(threading.Event().wait)  # never returns, like a write to a dead server\n"
        "sys.exit(3)\n"
    )
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
