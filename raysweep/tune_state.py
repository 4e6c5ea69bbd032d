"""Whether Tune's saved state in a sweep's storage can be read back (`--resume`).

Tune writes its experiment state, its search algorithm's and its searcher's to a local staging
directory and then copies them into storage with pyarrow's `copy_files`, which is not atomic: a
driver killed during the copy leaves those files empty or cut short (seen: all three at 0
bytes). Tune's restore then fails, and its fallback, starting the experiment over with the
restored Tuner, crashed a `mode: tpe` sweep (`KeyError: 'run'`: its search algorithm never got
the experiment). Such a state is not restored at all: a new Tuner runs every trial under the
same experiment directory, and each goes on from what its own directory holds (its newest
checkpoint on disk, its done marker), as after a driver that died before Tune saved anything.
"""

from __future__ import annotations

import fnmatch
import json
import pickle
from typing import Any

# Tune's saved state files: the name pattern (Tune reads the newest name of each) and whether
# it is JSON (with pickled parts inside) or a pickle.
SAVED_STATE = (
    ("experiment_state-*.json", "json"),
    ("search_gen_state-*.json", "pickle"),
    ("searcher-state-*.pkl", "pickle"),
)


def unreadable_state(fs: Any, root: str) -> str | None:
    """The name of the first of Tune's newest saved state files under `root` (on the pyarrow
    filesystem `fs`) that cannot be read back whole, or None if every one can."""
    import pyarrow.fs

    selector = pyarrow.fs.FileSelector(root, allow_not_found=True)
    names = [e.base_name for e in fs.get_file_info(selector) if e.type == pyarrow.fs.FileType.File]
    for pattern, kind in SAVED_STATE:
        matching = fnmatch.filter(names, pattern)
        if not matching:
            continue
        newest = max(matching)
        with fs.open_input_stream(f"{root}/{newest}") as fh:
            data = fh.read()
        try:
            if kind == "json":
                json.loads(data)
            else:
                pickle.loads(data)  # Tune's own files, which Tune unpickles next anyway
        except Exception:  # noqa: BLE001 - cut short anywhere: any decoding error
            return newest
    return None
