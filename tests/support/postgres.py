"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, loopback on a free port, stop/kill/start.

PostgreSQL refuses to run as root. When the tests run as root (CI containers), every server binary
runs as the `postgres` system user (`runuser -u postgres --`) in a temp dir owned by that user.
Authentication is `trust` on 127.0.0.1 and the private socket dir only: the cluster lives for one
test module and is deleted afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from tests.support.binaries import require_binary, skip_or_fail
from tests.support.net import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SUPERUSER = "postgres"


def pg_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL bin dir with initdb, or the dir of `initdb` on PATH."""
    for candidate in PG_BIN_DIRS:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def require_postgres() -> Path:
    """The PostgreSQL bin dir; skips locally (fails in CI) when PostgreSQL is not installed."""
    __tracebackhide__ = True  # report the skip or failure at the test that asked
    found = pg_bin_dir()
    if found is None:
        skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's `postgresql`")
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: the cluster runs as the `postgres` user via runuser.
        require_binary("runuser")
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            skip_or_fail(
                f"running as root needs a {SUPERUSER!r} system user (Debian's postgresql creates it)"
            )
    return found


@dataclass
class PostgresCluster:
    """One `initdb` cluster under `root`, served on 127.0.0.1:`port`."""

    root: Path
    port: int
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` (psycopg2 driver, as the services use)."""
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def libpq_url(self, database: str = "postgres") -> str:
        """libpq URL of `database` (pg_dump/pg_restore --dbname, psql)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string (psycopg2.connect, pg_dump --dbname)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=5"

    def as_owner(self, *argv: str | Path) -> list[str]:
        """argv run as the cluster's owner: the `postgres` user when we are root."""
        command = [str(a) for a in argv]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _run(self, *argv: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.as_owner(*argv), capture_output=True, text=True, timeout=timeout, check=False, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}{result.stderr}\n"
                f"{self.log_tail()}"
            )
        return result

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def init(self) -> PostgresCluster:
        self._run(
            self.bin_dir / "initdb",
            "--pgdata",
            self.data_dir,
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        return self

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
            # Tests need no crash-safety against power loss; every commit still reaches the OS.
            "-c fsync=off -c full_page_writes=off -c max_connections=50"
        )
        self._run(
            self.bin_dir / "pg_ctl",
            "--pgdata",
            self.data_dir,
            "--log",
            self.log_file,
            "--options",
            options,
            "--wait",
            "--timeout",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` (clean) or `-m immediate` (crash-like, recovery on next start)."""
        self._run(self.bin_dir / "pg_ctl", "--pgdata", self.data_dir, "--mode", mode, "--wait", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, as the OOM killer would; `start` then recovers."""
        pid_file = self.data_dir / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        for pid in [postmaster, *map(int, children)]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.running_pid(postmaster):
            time.sleep(0.05)
        # A killed postmaster leaves postmaster.pid and the socket lock file behind; while its zombie
        # is not reaped, the pid still exists and the next start would refuse. Nothing runs any more.
        pid_file.unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)

    @staticmethod
    def running_pid(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie (not reaped by its parent yet) no longer serves anything.
        status = Path(f"/proc/{pid}/status")
        return status.exists() and "\nState:\tZ" not in status.read_text()

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            self.as_owner(self.bin_dir / "pg_ctl", "--pgdata", self.data_dir, "status"),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def _autocommit(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        conn = psycopg2.connect(self.dsn())
        try:
            conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """Create `name` (if missing) and return its SQLAlchemy URL."""
        if not self._autocommit("SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
            self._autocommit(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._autocommit(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        """Stop (immediately) and delete the cluster."""
        if self.is_running():
            try:
                self.stop("immediate")
            except RuntimeError:
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway cluster, destroyed on exit whatever happens."""
    bin_dir = require_postgres()
    # Not pytest's tmp_path: that is private to root, and the `postgres` user must own the data dir.
    root = Path(tempfile.mkdtemp(prefix="mlstack-pg-"))
    (root / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "sock", "postgres", "postgres")
    cluster = PostgresCluster(root=root, port=free_port(), bin_dir=bin_dir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
