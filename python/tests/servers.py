"""Real Redis and PostgreSQL for the store tests: a redis-server per test on a free port, and a
fresh database per test in the PostgreSQL that .ci/setup-services starts."""

import os
import socket
import subprocess
import tempfile
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self):
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory()
        self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--protected-mode", "no", "--dir", self._dir.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self._proc.terminate()
        self._proc.wait(10)

    def close(self):
        self.stop()
        self._dir.cleanup()


def postgres_url():
    """A new database; None when PostgreSQL is not running (the test is then skipped)."""
    base = os.environ.get("TOKENCACHE_TEST_POSTGRES", "postgres://tokencache@127.0.0.1:15432/tokencache")
    name = "tc_py_" + uuid.uuid4().hex[:12]
    done = subprocess.run(["psql", base, "-qAtc", "CREATE DATABASE " + name], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return base.rsplit("/", 1)[0] + "/" + name
