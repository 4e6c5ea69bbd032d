"""Named fault points: where a test (or someone chasing a bug) holds raysweep, then kills it.

Off unless `$RAYSWEEP_HOLD` is set (one dict lookup per call otherwise). The variable lists the
points to hold at, comma-separated, each `point[:trial_id[:epoch]]` (`*` or nothing matches any):

    RAYSWEEP_HOLD=after_checkpoint:t001:2,trial_ended:t000  RAYSWEEP_HOLD_DIR=/tmp/holds

When a process reaches a matching point it creates `<RAYSWEEP_HOLD_DIR>/<key>.held` (JSON: the
point, trial, epoch and its pid), then waits until `<key>.release` appears (or until it is
killed, which is what the tests do). Each listed point holds once per hold directory, whichever
process gets there first: a trial restarted after the kill runs on. `<key>` is the entry as
written in `$RAYSWEEP_HOLD` with `:` and `*` replaced by `-` and `any`.

Points (docs/architecture.md says what a kill at each leaves behind and how `--resume` ends it):

- `run_created`       the driver's MLflow writer: a run created, its params not logged yet (trial
                      id: a trial's run; `sweep`: the parent's).
- `before_trials`     the driver: parent run created, before Tune starts any trial.
- `mid_epoch`         a trial's rank 0: halfway through an epoch's steps (epoch = the one running).
- `after_checkpoint`  a trial's rank 0: the epoch's result and checkpoint were handed to Ray.
- `trial_ended`       the driver's MLflow writer: a trial's last result is in, its run not closed.
- `model_logging`     the driver's MLflow writer: a trial's files are logged, its model is next.
- `report`            the driver: the end-of-run report is logged, the parent run not ended.

Every process of a sweep sees the variables: the driver passes them to Ray's workers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV_HOLD = "RAYSWEEP_HOLD"
ENV_DIR = "RAYSWEEP_HOLD_DIR"
POINTS = (
    "run_created",
    "before_trials",
    "mid_epoch",
    "after_checkpoint",
    "trial_ended",
    "model_logging",
    "report",
)
_POLL_S = 0.05


def hold_env() -> dict[str, str]:
    """The fault variables set in this process (to hand on to Ray's workers)."""
    return {k: os.environ[k] for k in (ENV_HOLD, ENV_DIR) if os.environ.get(k)}


def _entries(value: str) -> list[tuple[str, str, str, str]]:
    """(key, point, trial, epoch) per entry of $RAYSWEEP_HOLD; unknown points are an error."""
    entries = []
    for raw in filter(None, (part.strip() for part in value.split(","))):
        point, trial, epoch = ([*raw.split(":"), "*", "*"])[:3]
        if point not in POINTS:
            raise ValueError(f"${ENV_HOLD}: unknown fault point {point!r} (one of {POINTS})")
        key = raw.replace(":", "-").replace("*", "any")
        entries.append((key, point, trial or "*", epoch or "*"))
    return entries


def _matches(pattern: str, value: object) -> bool:
    return pattern == "*" or pattern == str(value)


def hold(point: str, trial: str = "", epoch: int | None = None) -> None:
    """Wait at `point` if $RAYSWEEP_HOLD names it (and this trial and epoch); else return."""
    value = os.environ.get(ENV_HOLD)
    if not value:
        return
    directory = Path(os.environ.get(ENV_DIR) or ".")
    for key, p, t, e in _entries(value):
        if p != point or not _matches(t, trial) or not _matches(e, epoch if epoch else ""):
            continue
        held = directory / f"{key}.held"
        record = {"point": point, "trial": trial, "epoch": epoch, "pid": os.getpid()}
        draft = directory / f".{key}.{os.getpid()}"
        draft.write_text(json.dumps(record))
        try:
            os.link(draft, held)  # atomic, and once per directory: the first process wins
        except FileExistsError:
            continue
        finally:
            draft.unlink()
        release = directory / f"{key}.release"
        while not release.exists():
            time.sleep(_POLL_S)


def announce(role: str, trial: str) -> None:
    """Write this process's pid to `<RAYSWEEP_HOLD_DIR>/<role>-<trial>.pid` (fault mode only).

    Lets a test find the process that drives a trial (a Tune actor) and kill it, while one of
    the trial's workers is held at a point."""
    if not os.environ.get(ENV_HOLD):
        return
    directory = Path(os.environ.get(ENV_DIR) or ".")
    draft = directory / f".{role}-{trial}.{os.getpid()}"
    draft.write_text(str(os.getpid()))
    draft.replace(directory / f"{role}-{trial}.pid")
