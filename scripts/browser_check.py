"""Check, in a real browser, that a sweep shows up in the MLflow UI, or that a report page
renders.

MLflow UI: starts `mlflow ui` on the sweep's store (127.0.0.1 only), opens the experiment's runs
table (`#/experiments/<id>?workflowType=machine_learning`, DESIGN.md) in headless Chromium, and
checks that the rendered DOM names the sweep's parent run (and counts its children), then
finds every child run by name on the UI's compare-runs page of those children (see `check`).

Report page (`--page report.html`, what `raysweep report` writes): opens a copy of the page
with a few lines of script added that, once the page has loaded, write each image's decoded
size into the DOM, and checks from Chromium's `--dump-dom` that every figure decoded
(`naturalWidth > 0`; see `check_page`). The page itself has no script.

Optionally saves screenshots. Exit status 0 when everything was found, 1 when not, 2 on a
setup error.

    python scripts/browser_check.py --tracking-uri sqlite:///mlflow.db --experiment NAME \
        [--screenshot ui.png] [--port 5055]
    python scripts/browser_check.py --page raysweep-report/NAME/report.html [--screenshot p.png]
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class CheckResult:
    """What the browser showed: the URL, the run names looked for, those missing."""

    url: str
    expected: list[str]
    missing: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        """True when every expected run name was in the page."""
        return not self.missing


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expected_names(tracking_uri: str, experiment: str) -> tuple[str, str, str, dict[str, str]]:
    """(experiment id, parent run id, parent run name, {child run id: name}) of the newest
    sweep of the experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"browser_check: no experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs(
        [found.experiment_id],
        "tags.`raysweep.role` = 'sweep'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"browser_check: experiment {experiment!r} has no sweep run")
    parent = runs[0]
    children = client.search_runs(
        [found.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    names = {c.info.run_id: c.info.run_name for c in children}
    return found.experiment_id, parent.info.run_id, parent.info.run_name, names


def start_ui(tracking_uri: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`mlflow ui` on 127.0.0.1:port, in its own process group (so it can be stopped whole)."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_bin), "ui", "--backend-store-uri", tracking_uri]
    # One worker: with uvicorn's default 4, its supervisor kills workers that are slow to import
    # MLflow (seen on a loaded 2-core machine: "Child process died" in a loop, never serving).
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # No background job runner (MLflow's GenAI jobs; nothing here uses them): it is eight more
    # processes importing MLflow, ~14 CPU-s to start, and they poll while the UI runs.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    with log.open("wb") as fh:
        return subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the UI answers (or fail if it exits or takes longer than `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(f"mlflow ui did not answer on port {port} within {timeout:.0f} s")


def stop_ui(proc: subprocess.Popen[bytes]) -> None:
    """Stop the UI server and the workers it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def chromium(url: str, extra: list[str], budget_ms: int, timeout: float) -> str:
    """Run headless Chromium on `url`; returns its stdout (the DOM with --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="browser-check-") as profile:
        cmd = [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            url,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc.stdout


def _find(url: str, needles: list[str], budget_ms: int, attempts: int) -> list[str]:
    """The needles (run names, text) missing from the DOM of `url`, retried with more time."""
    missing = list(needles)
    for attempt in range(attempts):  # a loaded machine may need more virtual time
        dom = chromium(url, ["--dump-dom"], budget_ms * (attempt + 1), timeout=300)
        missing = [n for n in needles if n not in dom and html.escape(n) not in dom]
        if not missing:
            break
    return missing


def _shoot(url: str, path: Path, budget_ms: int) -> Path | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = ["--window-size=1400,720", "--hide-scrollbars", f"--screenshot={path.resolve()}"]
    chromium(url, extra, budget_ms * 2, timeout=300)
    return path if path.is_file() else None


def check(
    tracking_uri: str,
    experiment: str,
    port: int | None = None,
    screenshot: Path | None = None,
    budget_ms: int = 15000,
    attempts: int = 3,
    ready_timeout: float = 480.0,
) -> CheckResult:
    """Open the experiment's runs table in Chromium and look for the sweep's runs by name.

    The runs table nests the trial runs under their parent, collapsed, and a headless page
    cannot click the expander (nor did a `searchFilter` in the URL take effect in MLflow
    3.17). So the parent's name and the table's "N matching runs" (parent + children) are
    checked in the runs table, and every child's name in the compare-runs page of the
    children (`#/compare-runs?runs=[...]`), the UI's own link from the table's Compare button.
    `screenshot` gets the runs table; `<stem>_compare.png` beside it the compare page.
    """
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found (apt-get install chromium)")
    experiment_id, parent_id, parent_name, children = expected_names(tracking_uri, experiment)
    port = port or free_port()
    base = f"http://127.0.0.1:{port}/#"
    url = f"{base}/experiments/{experiment_id}?workflowType=machine_learning"
    runs = quote(json.dumps(sorted(children)))
    compare_url = (
        f"{base}/compare-runs?runs={runs}&experiments={quote(json.dumps([experiment_id]))}"
    )
    result = CheckResult(url=url, expected=[parent_name, *children.values()])
    count = f"<strong>{1 + len(children)}</strong> matching runs"
    with tempfile.TemporaryDirectory(prefix="mlflow-ui-") as tmp:
        log = Path(tmp) / "mlflow-ui.log"
        proc = start_ui(tracking_uri, port, log)
        try:
            wait_ready(port, proc, timeout=ready_timeout)
            result.missing = _find(url, [parent_name, count], budget_ms, attempts)
            if count in result.missing:
                result.missing[result.missing.index(count)] = f"{1 + len(children)} matching runs"
            result.missing += _find(compare_url, list(children.values()), budget_ms, attempts)
            if screenshot is not None:
                result.screenshot = _shoot(url, screenshot, budget_ms)
                compare = screenshot.with_name(f"{screenshot.stem}_compare{screenshot.suffix}")
                _shoot(compare_url, compare, budget_ms)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; log:\n{log.read_text()[-3000:]}") from None
        finally:
            stop_ui(proc)
    return result


# Added to a copy of the page: once it has loaded, each image's decoded size, as JSON text in
# an element that --dump-dom prints (the report page itself has no script).
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((img) => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
  }));
  const out = document.createElement("pre");
  out.id = "raysweep-image-check";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""
PROBE_RESULT = re.compile(r'<pre id="raysweep-image-check">(.*?)</pre>', re.S)


@dataclass
class PageResult:
    """What Chromium made of a report page: every image with its decoded size."""

    path: Path
    images: list[dict] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken(self) -> list[str]:
        """The images (by alt text) that did not decode."""
        return [i["alt"] for i in self.images if not (i["complete"] and i["width"] > 0)]

    @property
    def ok(self) -> bool:
        """True when the page had images and every one of them decoded."""
        return bool(self.images) and not self.broken


def check_page(
    page: Path, screenshot: Path | None = None, budget_ms: int = 15000, attempts: int = 3
) -> PageResult:
    """Open a copy of `page` with `PROBE` added in headless Chromium; read every image's
    decoded size from the dumped DOM. `screenshot` gets the page itself (top of it)."""
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found (apt-get install chromium)")
    text = page.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise RuntimeError(f"{page}: no </body>: not an HTML page")
    result = PageResult(path=page)
    with tempfile.TemporaryDirectory(prefix="page-check-") as tmp:
        probe = Path(tmp) / "page.html"
        probe.write_text(text.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        for attempt in range(attempts):  # a loaded machine may need more virtual time
            dom = chromium(probe.as_uri(), ["--dump-dom"], budget_ms * (attempt + 1), 300)
            found = PROBE_RESULT.search(dom)
            if found:
                result.images = json.loads(html.unescape(found.group(1)))
                break
    if screenshot is not None:
        result.screenshot = _shoot(page.resolve().as_uri(), screenshot, budget_ms)
    return result


def page_main(args: argparse.Namespace) -> int:
    """`--page`: print each image's decoded size; 0 when every image decoded."""
    try:
        result = check_page(args.page, args.screenshot, args.budget_ms)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"browser_check: {exc}", file=sys.stderr)
        return 2
    print(f"browser_check: {result.path.resolve().as_uri()}")
    for image in result.images:
        state = "ok     " if image["alt"] not in result.broken else "BROKEN "
        print(f"  {state} {image['width']}x{image['height']}  {image['alt']}")
    if result.screenshot:
        print(f"browser_check: screenshot {result.screenshot}")
    if not result.images:
        print("browser_check: no images found (did the page load?)")
    print(f"browser_check: {'ok' if result.ok else 'FAILED'}: {len(result.images)} images")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Command line: print what was found; 0 when every run name (or image) was there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment")
    parser.add_argument("--page", type=Path, help="A report.html to check instead of the UI.")
    parser.add_argument("--port", type=int)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--budget-ms", type=int, default=15000, help="Chromium virtual time.")
    parser.add_argument(
        "--ready-timeout", type=float, default=480.0, help="Seconds to wait for `mlflow ui`."
    )
    args = parser.parse_args(argv)
    if args.page is not None:
        return page_main(args)
    if not (args.tracking_uri and args.experiment):
        parser.error("--tracking-uri and --experiment are required (or --page)")
    try:
        result = check(
            args.tracking_uri,
            args.experiment,
            args.port,
            args.screenshot,
            args.budget_ms,
            ready_timeout=args.ready_timeout,
        )
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"browser_check: {exc}", file=sys.stderr)
        return 2
    print(f"browser_check: {result.url}")
    for name in result.expected:
        print(f"  {'missing' if name in result.missing else 'found  '}  {name}")
    for text in result.missing:
        if text not in result.expected:
            print(f"  missing  {text!r}")
    if result.screenshot:
        print(f"browser_check: screenshot {result.screenshot}")
    print(f"browser_check: {'ok' if result.ok else 'FAILED'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
