"""The Procfile's `web` line as a real uvicorn process on the test database.

For what only a real server shows: events streamed rather than buffered, middleware on the
ASGI path, the client address as the server passes it on. Tests reach it with ``requests``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from loadtest_project.embedded_redis import free_port
from loadtest_project.procfile import ManagedProcess, ProcessGroup, read_procfile

SERVER_START_TIMEOUT_S = 20.0
ROOT = Path(__file__).resolve().parents[2]


_collected_static: Path | None = None


def collect_static(data_dir: Path) -> None:
    """Give ``data_dir`` a static folder: with DEBUG off the web process serves pages only
    with the collected files (and their manifest) in place.

    Collecting compresses a thousand files (about a minute of CPU, several on a busy
    machine), and every module with a web process needs the same result: the first call
    collects into a folder kept for the test run, the others link to it. Under pytest-xdist
    the test processes share that folder (in the run's temporary root, ``data_dir``'s
    grandparent): the first to get the lock collects, the others wait for it.
    """
    global _collected_static
    if _collected_static is None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            _collected_static = _collected_once_for_the_run(data_dir.parent.parent)
        else:
            cache = Path(tempfile.mkdtemp(prefix="loadtest-test-static-"))
            atexit.register(shutil.rmtree, cache, ignore_errors=True)
            _collect_into(cache)
            _collected_static = cache / "static"
    (data_dir / "static").symlink_to(_collected_static, target_is_directory=True)


def _collected_once_for_the_run(run_root: Path) -> Path:
    cache = run_root / "collected-static"
    cache.mkdir(exist_ok=True)
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (cache / "done").exists():
            _collect_into(cache)
            (cache / "done").touch()
    return cache / "static"


def _collect_into(folder: Path) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        env={**os.environ, "DATA_DIR": str(folder), "STATIC_ROOT": str(folder / "static")},
        cwd=ROOT,
        check=True,
        timeout=600,
    )


class WebServer:
    def __init__(
        self, base_url: str, group: ProcessGroup, process: ManagedProcess, log_path: Path
    ) -> None:
        self.base_url = base_url
        self.group = group
        self.process = process
        self.log_path = log_path

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL): clients see the server go away."""
        self.group.stop(self.process, grace_s=5)

    def start_again(self) -> None:
        """Start the stopped process again on the same port, as a restarted web would be."""
        self.process = self.group.restart(self.process)
        _wait_until_answering(self)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_until_answering(server: WebServer) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.process.running():
            raise RuntimeError(f"uvicorn exited early:\n{server.log()}")
        try:
            requests.get(server.url("/api/"), timeout=5.0)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or slow
            time.sleep(0.1)
    raise RuntimeError(f"uvicorn did not answer within {SERVER_START_TIMEOUT_S} s:\n{server.log()}")


@contextlib.contextmanager
def procfile_web(
    database_url: str, redis_url: str, data_dir: Path, log_path: Path, **env: str
) -> Iterator[WebServer]:
    """uvicorn on 127.0.0.1 (a free port) with production settings plus ``env``."""
    port = free_port()
    full_env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DATA_DIR": str(data_dir),
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **env,
    }
    group = ProcessGroup()
    process = group.start("web", read_procfile()["web"], env=full_env, log_path=log_path)
    server = WebServer(f"http://127.0.0.1:{port}", group, process, log_path)
    try:
        _wait_until_answering(server)
        yield server
    finally:
        group.stop_all(grace_s=5)
