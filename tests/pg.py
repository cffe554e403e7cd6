"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start it on a free
loopback port, yield a ``postgresql://`` URL, stop it and delete everything afterwards.

It does not use (or touch) the machine's own clusters or any service manager. The binaries are
the newest ``/usr/lib/postgresql/*/bin`` (Debian's packages; ``.ci/run`` installs them), else
``pg_config --bindir``, else ``postgres`` on PATH. ``initdb`` and ``postgres`` refuse to run as
root, so as root the server runs as the ``postgres`` system user (created when missing) and the
temporary folder belongs to it. Authentication is ``trust`` on 127.0.0.1 only.

A test module uses the session fixture by naming it at module level::

    from tests import pg

    postgres_url = pg.postgres_url
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
RUN_AS = "postgres"  # the system user the server runs as when the tests run as root
SUPERUSER = "nntune"  # the database role initdb creates
DATABASE = "nntune_test"
START_SECONDS = 60


def _has_tools(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in SERVER_TOOLS)


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres of the newest server found, or None."""
    debian = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_tools(p)),
        key=_version_key,
    )
    if debian:
        return debian[-1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            bindir = Path(found.stdout.strip())
            if _has_tools(bindir):
                return bindir
    postgres = shutil.which("postgres")
    if postgres:
        bindir = Path(postgres).resolve().parent
        if _has_tools(bindir):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_system_user(name: str) -> None:
    if subprocess.run(["id", "-u", name], capture_output=True).returncode == 0:
        return
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )


class PostgresServer:
    """One server process over its own data folder (see the module's docstring)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        # /tmp rather than $TMPDIR: the server's user must reach the folder, and its socket
        # path must stay under the 107-byte limit
        tmp = "/tmp" if os.access("/tmp", os.W_OK | os.X_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="nntune-pg-", dir=tmp))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        if self.as_root:
            _ensure_system_user(RUN_AS)
            shutil.chown(self.root, user=RUN_AS, group=None)
            os.chmod(self.root, 0o700)

    def _run(self, tool: str, *args: str, timeout: float = START_SECONDS) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        done = subprocess.run(
            command,
            cwd=self.root,  # readable by the server's user (the caller's cwd may not be)
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stdout}\n"
                f"{done.stderr}\n{log}"
            )

    def start(self) -> str:
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--auth=trust",
            f"--username={SUPERUSER}",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
        }
        for attempt in range(3):  # the free port may be taken between probing and binding
            self.port = _free_port()
            lines = [f"{k} = {v}" for k, v in {**settings, "port": str(self.port)}.items()]
            with open(self.data / "postgresql.conf", "a") as conf:  # the last setting wins
                conf.write("\n# tests/pg.py\n" + "\n".join(lines) + "\n")
            try:
                self._run("pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log),
                          "--wait", "--timeout", str(START_SECONDS))  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self._create_database()
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _create_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=10
        )
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate",
                          "--wait", timeout=30)  # fmt: skip
        except (RuntimeError, subprocess.TimeoutExpired):
            self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)  # postgres' immediate shutdown
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)


@contextlib.contextmanager
def postgres_server(bindir: Path) -> Iterator[str]:
    server = PostgresServer(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database on a private, freshly initialised PostgreSQL server (this session's
    only); skips the test when no PostgreSQL server binaries are installed."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin,"
            " pg_config --bindir or PATH; .ci/run installs Debian's postgresql package"
        )
    with postgres_server(bindir) as url:
        yield url
