"""Fixtures for the real processes the tests talk to: Redis, Celery workers, HTTP servers.

Redis is the one in TEST_REDIS_URL, or a private embedded server started here. Workers are
the Procfile's own `worker` and `control` lines, started as subprocesses against the test
database (a file, so that they can open it), exactly as in production minus Docker.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import override_settings
from rest_framework.test import APIClient

from apps.sessions.access import roles
from apps.sessions.access.roles import sync_roles
from apps.workers.control import KEY_PREFIX
from loadtest_project import celery_app
from loadtest_project.embedded_redis import EmbeddedRedis, redis_answers
from loadtest_project.procfile import ProcessGroup, read_procfile, wait_for_celery_nodes

from .servers import CountingServer

# Engine timings for tests: the production defaults, except a shorter stop grace so a test
# of a hung request does not wait 5 s. Passed to the workers through their environment.
WORKER_ENV = {
    "STATS_FLUSH_INTERVAL_S": "0.5",
    "MONITOR_INTERVAL_S": "0.5",
    "CONTROL_POLL_INTERVAL_S": "0.1",
    "STOP_GRACE_S": "3",
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The container test (minutes, root, a Docker engine) runs only when asked for with
    ``-m containers`` (.ci/run does, after the suite): the suite itself leaves it out."""
    if "containers" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("containers") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis | None]:
    """The private Redis of this test run, or None when TEST_REDIS_URL names one."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        if not redis_answers(url):
            pytest.exit(f"TEST_REDIS_URL={url} does not answer.", returncode=2)
        yield None
        return
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url if redis_server is not None else os.environ["TEST_REDIS_URL"]


@pytest.fixture(scope="session", autouse=True)
def _use_test_redis(redis_url: str) -> Iterator[None]:
    """Point this process (it publishes sessions, queues tasks, counts API calls in the cache)
    at the test Redis."""
    previous = (django_settings.REDIS_URL, celery_app.conf.broker_url)
    django_settings.REDIS_URL = redis_url
    django_settings.CELERY_BROKER_URL = redis_url
    celery_app.conf.broker_url = redis_url
    cache = {**django_settings.CACHES["default"], "LOCATION": redis_url}
    # Rate limits stay out of the way except in the tests that set them.
    with override_settings(
        CACHES={"default": cache},
        API_USER_RATE="100000/minute",
        API_ANONYMOUS_RATE="100000/minute",
    ):
        yield
    django_settings.REDIS_URL, celery_app.conf.broker_url = previous


@pytest.fixture(scope="session", autouse=True)
def _allow_the_test_servers() -> Iterator[None]:
    """Test servers listen on random ports of this machine: allow any port there (the
    workers fixture hands the same list to the worker processes)."""
    with override_settings(ALLOWED_TARGET_HOSTS=["localhost:*", "127.0.0.1:*"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _plain_static_storage() -> Iterator[None]:
    """Serve static files from the apps in tests: no collectstatic manifest is built here."""
    storages = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield


@pytest.fixture(scope="session")
def redis_client(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _database_url_for_workers() -> str:
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


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker, redis_url, tmp_path_factory) -> Iterator[Workers]:
    """One load worker (2 processes), one control worker and beat, for the whole test session.

    Tests add load workers as they need them (``ensure``); they stay for later tests.
    """
    log_dir = tmp_path_factory.mktemp("worker-logs")
    with django_db_blocker.unblock():
        database_url = _database_url_for_workers()
    env = {
        **WORKER_ENV,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path_factory.mktemp("worker-data")),
        "WORKER_CONCURRENCY": "2",
        "ALLOWED_TARGET_HOSTS": ",".join(django_settings.ALLOWED_TARGET_HOSTS),
        # Every process appends to one file, as in a deployment with LOG_FILE set.
        "LOG_FILE": str(log_dir / "service.log"),
    }
    group = ProcessGroup()
    running = Workers(group, env, log_dir)
    try:
        running.start("control", "control-test")
        running.start("worker", "load-test-1")
        group.start("beat", running.procfile["beat"], env=env, log_path=log_dir / "beat.log")
        yield running
    finally:
        group.stop_all(grace_s=10)


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer().start()
    yield server
    server.stop()


@pytest.fixture
def forget_redis_sessions(redis_client) -> Iterator[None]:
    """After a test, remove every session's Redis keys: leftover shards see no state and stop."""
    yield
    keys = list(redis_client.scan_iter(f"{KEY_PREFIX}:*"))
    if keys:
        redis_client.delete(*keys)


def persona(username: str, role: str):
    """A user in one of the role groups (recreated if a transactional test flushed them)."""
    sync_roles(Group, Permission)
    user = get_user_model().objects.create_user(username, password=f"{username}-pw-42")
    user.groups.add(Group.objects.get(name=role))
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def operator(db):
    return persona("olivia", roles.OPERATOR)


@pytest.fixture
def administrator(db):
    return persona("ada", roles.ADMIN)


@pytest.fixture
def viewer(db):
    return persona("vera", roles.VIEWER)


@pytest.fixture
def api(operator) -> APIClient:
    """The operator's client: what most tests do is run sessions."""
    return client_for(operator)


@pytest.fixture
def admin_api(administrator) -> APIClient:
    return client_for(administrator)


@pytest.fixture
def viewer_api(viewer) -> APIClient:
    return client_for(viewer)


def wait_until(
    condition: Callable[[], object],
    timeout_s: float,
    interval_s: float = 0.1,
    what: str = "Condition met",
):
    """Poll ``condition`` until it returns something truthy; fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(interval_s)
