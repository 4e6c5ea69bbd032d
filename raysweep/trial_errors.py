"""How a trial's error reads on the terminal: its message, or one short line for a lost process.

A trial's error is its traceback (the last line says what went wrong), or, when the process
running it died (killed, out of memory, crashed, its node gone), Ray's paragraph about a dead
actor and the common causes of that. On the terminal such a loss is one short phrase (which
process, and Ray's exit type); the whole text stays in the trial's MLflow run (`error.txt`),
and Ray's own report of the death in the run's log file (`raysweep.logfile`).
"""

from __future__ import annotations

import re

# What Ray's errors say when the process running a task or actor is gone.
LOST_MARKERS = (
    "The actor died unexpectedly",
    "The actor is dead because",
    "worker process has died",
    "A worker died or was killed",
    "ActorDiedError",
    "NodeDiedError",
    "WorkerCrashedError",
)
_NODE = re.compile(r"\bnode (has )?died|NodeDiedError|its node (was|is) (dead|removed)", re.I)
# Ray's memory monitor's own words (the usual paragraph names "the OOM killer" only as a
# possible cause, so that is not enough).
_MEMORY = re.compile(r"running low on memory|OutOfMemoryError", re.I)
_EXIT = re.compile(r"Worker exit type: ([A-Z_]+)")


def lost_process(error: str) -> str | None:
    """One phrase for an error saying the process running the trial was lost, else None:
    "its process died (Ray: worker exit SYSTEM_ERROR)", "its node died", "its process was
    killed: the node ran low on memory"."""
    if not any(marker in error for marker in LOST_MARKERS):
        return None
    if _MEMORY.search(error):
        return "its process was killed: the node ran low on memory"
    if _NODE.search(error):
        return "its node died"
    found = _EXIT.search(error)
    return "its process died" + (f" (Ray: worker exit {found.group(1)})" if found else "")


def last_line(error: str) -> str:
    """The last line of an error (its message, after any traceback); '' for none."""
    lines = error.strip().splitlines()
    return lines[-1].strip() if lines else ""


def error_reason(error: str) -> str:
    """What a person reads about a trial's error: a lost process in a few words, any other
    error's last line ('' for none)."""
    return lost_process(error) or last_line(error)
