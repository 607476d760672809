"""A PostgreSQL server of our own (own folder, own port) that a test may stop and start again.

Debian's server binaries refuse to run as root, so as root the server runs as the
`postgres` user and its folder belongs to it. Trust authentication on loopback only.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time

import psycopg

from tests.support.ports import free_port


def _bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found (Debian package postgresql)")
    return found[-1]


class PrivateServer:
    def __init__(self):
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="conveyor-pg-")
        self.data = os.path.join(self.base, "data")
        self.sockets = os.path.join(self.base, "run")
        os.makedirs(self.sockets)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")

    def _run(self, *command, check=True):
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def url(self, database="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self):
        self._run(_bin("initdb"), "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self, timeout=60):
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.base, "log"), "-o", options, "-w", "start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.2)
        raise RuntimeError(f"private PostgreSQL on {self.port} did not start: {self.log()[-1000:]}")

    def stop(self, mode="fast"):
        self._run(_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def create_database(self, name):
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self):
        try:
            with open(os.path.join(self.base, "log")) as handle:
                return handle.read()
        except OSError:
            return ""

    def destroy(self):
        self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)
