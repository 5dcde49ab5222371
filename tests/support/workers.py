"""The Procfile's worker processes as a test starts them, and the environment they get."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from loadtest_project import celery_app
from loadtest_project.procfile import ProcessGroup, read_procfile, wait_for_celery_nodes

# Engine timings for tests: the production defaults (a shorter flush and monitor interval).
# Passed to the workers through their environment.
WORKER_ENV = {
    "STATS_FLUSH_INTERVAL_S": "0.5",
    "MONITOR_INTERVAL_S": "0.5",
    "CONTROL_POLL_INTERVAL_S": "0.1",
    "STOP_GRACE_S": "0.5",
    "HEARTBEAT_TTL_S": "5",
    "CIRCUIT_BREAKER_FAILURES": "5",
    "CIRCUIT_BREAKER_COOLDOWN_S": "1",
    "CIRCUIT_BREAKER_MAX_COOLDOWN_S": "2",
    "LOAD_REDUCTION_WINDOW_S": "3",
    "LOG_LEVEL": "INFO",
    "REQUEST_LOG_KEPT": "30",  # small: a few seconds of a session fill the request log
    # Webhook retries within a test's patience: 0.2, 0.4, 0.8 s, then give up.
    "WEBHOOK_RETRY_BASE_S": "0.2",
    "WEBHOOK_MAX_RETRIES": "3",
    "WEBHOOK_TIMEOUT_S": "2",
    "SITE_URL": "http://loadtest.test",
}


def database_url_for_workers() -> str:
    """The URL of the test database pytest-django created, for the worker processes."""
    from django.db import connection

    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(config['NAME']).resolve()}"
    if "postgresql" in config["ENGINE"]:
        credentials = config["USER"] or ""
        if config.get("PASSWORD"):
            credentials += f":{config['PASSWORD']}"
        host = f"{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}"
        return f"postgres://{credentials}@{host}/{config['NAME']}"
    raise RuntimeError(f"No worker URL for database engine {config['ENGINE']}")


class Workers:
    """The running worker processes of a test session, and a way to add more."""

    def __init__(self, group: ProcessGroup, env: dict[str, str], log_dir: Path) -> None:
        self.group = group
        self.env = env
        self.log_dir = log_dir
        self.procfile = read_procfile()
        self.hostnames: list[str] = []

    def ensure(self, line: str, name: str, **extra_env: str) -> str:
        """Start the Procfile ``line`` as worker ``name`` unless it runs already."""
        hostname = f"{name}@{socket.gethostname()}"
        if hostname not in self.hostnames:
            self.start(line, name, **extra_env)
        return hostname

    def start(self, line: str, name: str, **extra_env: str):
        hostname = f"{name}@{socket.gethostname()}"
        env = {**self.env, **extra_env}
        env["WORKER_NAME" if line == "worker" else "CONTROL_NAME"] = name
        process = self.group.start(
            name, self.procfile[line], env=env, log_path=self.log_dir / f"{name}.log"
        )
        wait_for_workers([hostname])
        self.hostnames.append(hostname)
        return process

    def process(self, hostname: str):
        name = hostname.split("@", 1)[0]
        return next(process for process in self.group.processes if process.name == name)

    def stop(self, hostname: str, grace_s: float = 20.0) -> None:
        """SIGTERM (Celery's warm shutdown) the worker named ``hostname``, SIGKILL if slow."""
        process = self.process(hostname)
        self.group.stop(process, grace_s=grace_s)
        self.group.processes.remove(process)
        self.hostnames.remove(hostname)

    def kill(self, hostname: str) -> None:
        """SIGKILL the worker and its pool processes at once, as when its container dies."""
        process = self.process(hostname)
        process.kill_group()
        self.group.processes.remove(process)
        self.hostnames.remove(hostname)

    def freeze(self, hostname: str, frozen: bool) -> None:
        """SIGSTOP / SIGCONT the worker's whole process group (a hung or partitioned host)."""
        os.killpg(self.process(hostname).pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def log(self, name: str) -> str:
        """What process ``name`` wrote to its console (stdout and stderr)."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def log_file(self) -> str:
        """The shared LOG_FILE every process of the fixture appends to."""
        return Path(self.env["LOG_FILE"]).read_text(errors="replace")


def wait_for_workers(hostnames: list[str], timeout_s: float = 60.0) -> None:
    missing = wait_for_celery_nodes(celery_app, hostnames, timeout_s)
    if missing:
        raise RuntimeError(f"Celery workers did not answer a ping: {sorted(missing)}")
