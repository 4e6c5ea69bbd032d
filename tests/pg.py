"""A throwaway PostgreSQL server for tests: Debian's `postgresql` package, on loopback only.

`PostgresServer` runs `initdb` on a new temp directory and `pg_ctl start` on a free port, with
`listen_addresses=127.0.0.1`, no Unix socket and trust authentication for one role (nothing
outside this machine can reach it); `stop` stops it and deletes the directory. PostgreSQL
refuses to run as root, so under root (CI, these machines) the server runs as the `postgres`
user the package created (`runuser`). The `postgres` fixture in tests/conftest.py starts one per
session and skips its tests, saying why, where PostgreSQL is not installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "raysweep"
MISSING = (
    "PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run installs it): "
    "no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH"
)


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: Debian's newest version, or PATH."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(debian):
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temp directory, on 127.0.0.1:`port`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = _free_port()
        # Under /tmp, not pytest's tmp_path: its parents are root-only (mode 700), and under
        # root the server runs as `postgres`, which must reach its data directory.
        self.base = Path(tempfile.mkdtemp(prefix="rs-pg-", dir="/tmp"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def uri(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """An SQLAlchemy URI of `database` (what `mlflow server --backend-store-uri` takes)."""
        return f"{driver}://{ROLE}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, as_server: bool = True) -> None:
        command = [*(self.as_user if as_server else []), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{log}"
            )

    def start(self) -> None:
        """initdb (trust auth for ROLE, no fsync: a test database) and start, waiting until
        it accepts connections."""
        b = self.bindir
        self._run(
            str(b / "initdb"),
            f"--pgdata={self.data}",
            f"--username={ROLE}",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(b / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "120",
            "-o",
            options,
        )

    def create_database(self, name: str) -> None:
        """CREATE DATABASE `name` (as ROLE, over TCP)."""
        self._run(
            str(self.bindir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            ROLE,
            name,
            as_server=False,
        )

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and delete its directory."""
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "i")
        shutil.rmtree(self.base, ignore_errors=True)
