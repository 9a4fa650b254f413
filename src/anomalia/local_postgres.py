"""A throwaway PostgreSQL server on loopback, from Debian's ``postgresql`` package: for the tests, the
benchmarks, and trying ``DATABASE_URL=postgresql+psycopg://…`` in one command::

    python -m anomalia.local_postgres --dir /tmp/anomalia-pg --port 5433   # prints the DATABASE_URL

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user the
package creates. Authentication is ``trust`` on 127.0.0.1 only: a development server, not
a production set-up.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install Debian's PostgreSQL server: apt-get install postgresql"


def binaries() -> Path:
    """The folder of ``initdb``/``pg_ctl`` (Debian keeps them off PATH, under /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise FileNotFoundError(f"no PostgreSQL server binaries (initdb) found; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalPostgres:
    """``initdb`` + ``pg_ctl start`` in ``folder`` on ``port``; :meth:`stop` shuts it down (fast mode)."""

    def __init__(self, folder: Path | None = None, port: int | None = None, *, durable: bool = True):
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="anomalia-pg-"))
        self.port = port or free_port()
        self.durable = durable
        """False turns fsync off: faster tests, but a machine crash could lose committed data."""
        self.bin = binaries()
        self.data = self.folder / "data"

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *command], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "LocalPostgres":
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "--no-sync", "-E", "UTF8", "--locale=C")
        options = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # name comes from the caller's code, never a client
        return self.url(name)

    def stop(self, remove: bool = True) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Start a local PostgreSQL for anomalia and print its DATABASE_URL.")
    parser.add_argument("--dir", type=Path, default=Path("pgdata"), help="server folder (kept between runs)")
    parser.add_argument("--port", type=int, default=5433)
    args = parser.parse_args()
    server = LocalPostgres(args.dir.resolve(), args.port).start()
    print(f"DATABASE_URL={server.url()}")
    print(f"stop it with: {'runuser -u postgres -- ' if os.geteuid() == 0 else ''}"
          f"{server.bin / 'pg_ctl'} -D {server.data} stop")


if __name__ == "__main__":
    main()
