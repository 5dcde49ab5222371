"""Fixtures for the real processes the tests talk to: Redis, Celery workers, HTTP servers.

Redis is the one in TEST_REDIS_URL, or a private embedded server started here. Workers are
the Procfile's own `worker` and `control` lines, started as subprocesses against the test
database (a file, so that they can open it), exactly as in production minus Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.conf import settings as django_settings
from django.test import override_settings
from rest_framework.test import APIClient

from apps.sessions.access import roles
from apps.workers.control import KEY_PREFIX
from loadtest_project import celery_app
from loadtest_project.embedded_redis import EmbeddedRedis, redis_answers
from loadtest_project.procfile import ProcessGroup

from .support.broker import use_broker
from .support.servers import CountingServer
from .support.shop_server import ShopServer
from .support.users import client_for, persona
from .support.workers import WORKER_ENV, Workers, database_url_for_workers

TIERS = ("unit", "integration", "browser", "containers")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test is marked with its tier, the folder it lives in (``-m "not browser"``).

    The container test (minutes, root, a Docker engine) runs only when asked for with
    ``-m containers`` (.ci/run does, after the suite): the suite itself leaves it out."""
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))
        if _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    if "containers" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("containers") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    """Whether the test shares a module-scoped fixture (a web process, a browser): under
    pytest-xdist (--dist loadgroup) the module's tests then run in one process, which starts
    it once."""
    fixture_info = getattr(item, "_fixtureinfo", None)
    if fixture_info is None:
        return False
    return any(
        definitions[-1].scope == "module" for definitions in fixture_info.name2fixturedefs.values()
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis | None]:
    """The private Redis of this test run, or None when TEST_REDIS_URL names one."""
    url = os.environ.get("TEST_REDIS_URL")
    if url and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        # Parallel test processes would see each other's sessions, queues and channels.
        pytest.exit("TEST_REDIS_URL is one Redis for every test process: run with -n 0.", 2)
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
def _quick_password_hashing() -> Iterator[None]:
    """Users are created and signed in by the thousand here: hash their passwords quickly
    (the default hashers stay, to verify a hash made elsewhere)."""
    quick = "tests.support.hashers.QuickPBKDF2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=[quick, *django_settings.PASSWORD_HASHERS]):
        yield


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
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def workers(django_db_setup, django_db_blocker, redis_url, tmp_path_factory) -> Iterator[Workers]:
    """One load worker (2 processes), one control worker and beat, for the whole test session.

    Tests add load workers as they need them (``ensure``); they stay for later tests.
    """
    log_dir = tmp_path_factory.mktemp("worker-logs")
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
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
def two_load_workers(workers):
    """Two load workers alive before and after the test (one may be killed in it)."""
    names = ["load-test-1", "load-test-2"]
    for name in names:
        workers.ensure("worker", name)
    yield workers
    for name in names:
        workers.ensure("worker", name)


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer().start()
    yield server
    server.stop()


@pytest.fixture
def shop() -> Iterator[ShopServer]:
    """The demo shop's stand-in (login, cart, checkout), on a port of its own."""
    server = ShopServer().start()
    yield server
    server.stop()


@pytest.fixture
def forget_redis_sessions(redis_client) -> Iterator[None]:
    """After a test, remove every session's Redis keys: leftover shards see no state and stop."""
    yield
    keys = list(redis_client.scan_iter(f"{KEY_PREFIX}:*"))
    if keys:
        redis_client.delete(*keys)


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


@pytest.fixture
def superuser_client(client, django_user_model):
    """Django's test client signed in as a superuser (the admin site's pages)."""
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-42")
    client.force_login(admin)
    return client


@pytest.fixture
def unconsumed_broker(redis_url):
    """Shards queued by this process go to a broker no worker consumes (another database of
    the same Redis): in a full run the load workers are up, and a shard they started would
    add its own counts to the ones a test checks."""
    url = urlunsplit(urlsplit(redis_url)._replace(path="/15"))
    previous = celery_app.conf.broker_url
    client = redis.Redis.from_url(url)
    use_broker(url)
    try:
        yield client
    finally:
        use_broker(previous)
        client.flushdb()
        client.close()
