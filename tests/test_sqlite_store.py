"""A new SQLite MLflow store copied from the cached empty one (raysweep.sqlite_store) is the store
MLflow would have made itself; an existing file is never touched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from raysweep import sqlite_store


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(sqlite_store.CACHE_DIR_ENV, str(directory))
    monkeypatch.chdir(tmp_path)  # where MLflow puts a new store's default artifacts
    return directory


def _schema(db: Path) -> tuple[list[tuple[str, list[str]]], list[tuple[str]]]:
    """Every table and index with its definition's clauses (sorted: Alembic's batch migrations
    write a table's constraints in an order that varies from process to process)."""
    with sqlite3.connect(db) as con:
        tables = con.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    clauses = [
        (name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
        for name, sql in tables
    ]
    return clauses, version


def test_a_seeded_store_is_the_store_mlflow_makes(tmp_path: Path, cache: Path) -> None:
    from mlflow.tracking import MlflowClient

    seeded, made = tmp_path / "seeded.db", tmp_path / "made.db"
    assert sqlite_store.seed(f"sqlite:///{seeded}")
    assert (cache / "mlflow-stores").is_dir()
    clients = {db: MlflowClient(f"sqlite:///{db}") for db in (seeded, made)}
    for client in clients.values():
        client.create_experiment("sweep")
    assert _schema(seeded) == _schema(made)
    defaults = [c.get_experiment("0") for c in clients.values()]
    assert [d.name for d in defaults] == ["Default", "Default"]
    assert defaults[0].artifact_location == defaults[1].artifact_location
    assert [c.get_experiment_by_name("sweep").experiment_id for c in clients.values()] == ["1"] * 2
    # The next new store is a copy of the same cached one.
    assert sqlite_store.seed(f"sqlite:///{tmp_path / 'again.db'}")
    assert len(list((cache / "mlflow-stores").iterdir())) == 1


def test_an_existing_file_and_other_stores_are_left_alone(tmp_path: Path, cache: Path) -> None:
    existing = tmp_path / "mlflow.db"
    existing.write_text("not mine")
    assert not sqlite_store.seed(f"sqlite:///{existing}")
    assert existing.read_text() == "not mine"
    assert not sqlite_store.seed(f"sqlite:///{tmp_path / 'no-such-dir' / 'mlflow.db'}")
    assert not sqlite_store.seed("http://127.0.0.1:5000")
    assert not cache.exists()  # nothing was made for them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]
