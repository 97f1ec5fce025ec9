"""A throwaway PostgreSQL server on loopback, for tests of the production instance settings."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

INSTALL_HINT = (
    "install PostgreSQL (`apt-get update && apt-get install -y postgresql`; .ci/run does)"
)


@dataclass(frozen=True)
class PgServer:
    """Where the test server listens and how to log in."""

    host: str
    port: int
    user: str
    password: str
    db_name: str

    def dsn(self, db_name: str | None = None) -> str:
        """A libpq connection string (TCP, password auth)."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={db_name or self.db_name}"
        )


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's versioned folders."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> str | None:
    # initdb and postgres refuse to run as root; Debian's package creates `postgres`.
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError as err:
        raise RuntimeError("running as root needs a `postgres` user: " + INSTALL_HINT) from err


def _run(cmd: list[str], user: str | None, log: Path | None = None) -> None:
    done = subprocess.run(cmd, user=user, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr}\n{tail}")


def create_database(server: PgServer, db_name: str) -> PgServer:
    """Create an empty database on `server`; returns the server pointed at it."""
    import psycopg2

    conn = psycopg2.connect(server.dsn("postgres"))
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        conn.cursor().execute(f'CREATE DATABASE "{db_name}"')
    finally:
        conn.close()
    return replace(server, db_name=db_name)


@contextmanager
def postgres_server(pg_bin: Path, db_name: str = "rs_dagster") -> Iterator[PgServer]:
    """Init, start and yield a server; always stop it and delete its files on exit."""
    user = _server_user()
    # Not pytest's tmp_path: that is 0700 root, which the `postgres` user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="rs-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pw"
    server = PgServer("127.0.0.1", _free_port(), "dagster", "not-a-real-secret", db_name)
    pwfile.write_text(server.password)
    if user:
        shutil.chown(root, user)
        shutil.chown(pwfile, user)
    started = False
    try:
        _run([str(pg_bin / "initdb"), "-D", str(data), "-U", server.user, f"--pwfile={pwfile}",
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
             user)  # fmt: skip
        opts = (f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        started = True
        _run([str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t",
              "30", "start"], user, log)  # fmt: skip
        yield create_database(server, db_name)
    finally:
        if started:
            subprocess.run([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], user=user, capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
