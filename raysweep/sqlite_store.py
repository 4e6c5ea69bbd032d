"""A new SQLite MLflow store, copied from an empty one made once per MLflow version.

MLflow makes a new SQLite store by creating its tables and then running every schema migration
since its first release: about a second of CPU for each new store file (every test's, every
quickstart's), at the start of a sweep. raysweep keeps one empty, fully migrated store per MLflow
version (`~/.cache/raysweep/mlflow-stores/`, or under $RAYSWEEP_CACHE_DIR) and copies it; MLflow
then opens the copy as it opens any store: it checks the schema version and adds its default
experiment, with the artifact location it would have given it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

CACHE_DIR_ENV = "RAYSWEEP_CACHE_DIR"
DEFAULT_CACHE_DIR = "~/.cache/raysweep"
SQLITE = "sqlite:///"


def seed(tracking_uri: str) -> bool:
    """Create the SQLite file `tracking_uri` names, if it does not exist yet, as a copy of the
    empty store (made first if need be); True if it did.

    Best effort: on any failure (no writable cache, an MLflow that builds stores differently)
    nothing is created and MLflow makes the store itself, as without this module."""
    if not tracking_uri.startswith(SQLITE):
        return False
    target = Path(tracking_uri[len(SQLITE) :])
    if target.exists() or not target.parent.is_dir():
        return False
    draft = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copyfile(empty_store(), draft)
        # A hard link creates the name only if nothing has it: a store another process made
        # meanwhile is never replaced, and no reader ever sees a half-copied file.
        os.link(draft, target)
        return True
    except Exception:  # noqa: BLE001 - see the docstring
        return False
    finally:
        draft.unlink(missing_ok=True)


def empty_store() -> Path:
    """The cached empty store of the installed MLflow version (made now if missing)."""
    import mlflow

    directory = Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()
    path = directory / "mlflow-stores" / f"mlflow-{mlflow.__version__}.db"
    if path.is_file():
        return path
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # What MLflow runs for a store without tables (its tables, then every migration);
        # its default experiment is left to the store that opens a copy.
        engine = sqlalchemy.create_engine(f"{SQLITE}{draft}")
        try:
            _initialize_tables(engine)
        finally:
            engine.dispose()
        os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return path
