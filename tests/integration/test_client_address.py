"""One client address for the throttles, the lockout and the audit log: X-Forwarded-For
counts only as far as NUM_PROXIES trusted proxies wrote it, so a made-up header neither
resets a limit nor hides where a request came from."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from django.test import RequestFactory
from rest_framework.test import APIClient

from apps.sessions.models import AuditEntry
from loadtest_project.client_address import client_address

from ..support.web import procfile_web
from ..support.workers import database_url_for_workers

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"


@pytest.fixture(autouse=True)
def fresh_throttle_counts(redis_client):
    """Anonymous counts are keyed by address, shared with every other test: start at zero."""

    def forget() -> None:
        keys = list(redis_client.scan_iter("lt-cache*throttle_*"))
        if keys:
            redis_client.delete(*keys)

    forget()
    yield
    forget()


def anonymous_post(client, forwarded_for: str):
    return client.post(TOKEN, {}, format="json", HTTP_X_FORWARDED_FOR=forwarded_for)


def test_a_made_up_forwarded_for_does_not_reset_the_anonymous_throttle(settings):
    settings.API_ANONYMOUS_RATE = "2/minute"
    client = APIClient(REMOTE_ADDR="198.51.100.20")
    statuses = [anonymous_post(client, f"203.0.113.{n}").status_code for n in range(1, 4)]
    assert statuses == [400, 400, 429]


def test_behind_one_trusted_proxy_the_address_it_forwards_is_the_client(settings):
    settings.API_ANONYMOUS_RATE = "2/minute"
    settings.NUM_PROXIES = 1
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    assert [anonymous_post(proxy, "203.0.113.1").status_code for _ in range(3)] == [400, 400, 429]
    # Another client behind the same proxy has a count of its own...
    assert anonymous_post(proxy, "203.0.113.2").status_code == 400
    # ...and what a client writes left of the proxy's entry changes nothing.
    assert anonymous_post(proxy, "198.51.100.9, 203.0.113.1").status_code == 429


def test_the_audit_log_records_the_same_address(settings):
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    client.post("/api/emergency-stop/", HTTP_X_FORWARDED_FOR="203.0.113.7")  # 401, audited
    settings.NUM_PROXIES = 1
    client.post("/api/emergency-stop/", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert list(AuditEntry.objects.order_by("pk").values_list("remote_addr", flat=True)) == [
        "10.0.0.1",
        "203.0.113.7",
    ]


def test_the_lockout_counts_the_same_address(django_user_model):
    django_user_model.objects.create_user("sam", password="sam-the-staff-pw-42")
    client = APIClient(REMOTE_ADDR="198.51.100.30")
    statuses = [
        client.post(
            TOKEN,
            {"username": f"guess{n}", "password": "wrong"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        ).status_code
        for n in range(settings.LOGIN_FAILURE_LIMIT)
    ]
    assert statuses[-1] == 429  # one address, whatever the header said
    right = client.post(
        TOKEN,
        {"username": "sam", "password": "sam-the-staff-pw-42"},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.99",
    )
    assert right.status_code == 429


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "203.0.113.1", "10.0.0.1"),  # no proxy trusted: the header is ignored
        (1, "203.0.113.1", "203.0.113.1"),
        (1, " 198.51.100.1 ,203.0.113.1 ", "203.0.113.1"),
        (2, "198.51.100.1, 203.0.113.1", "198.51.100.1"),
        (2, "203.0.113.1", "203.0.113.1"),  # fewer hops than proxies: the leftmost
        (1, "not-an-address", "10.0.0.1"),  # a broken proxy: the peer stands
        (1, "", "10.0.0.1"),
        (1, "2001:DB8::1", "2001:db8::1"),
    ],
)
def test_client_address(settings, proxies, forwarded_for, expected):
    settings.NUM_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_address(request) == expected


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    data_dir = tmp_path_factory.mktemp("forwarded-web-data")
    env = {"API_ANONYMOUS_RATE": "2/minute"}
    with procfile_web(database_url, redis_url, data_dir, data_dir / "uvicorn.log", **env) as server:
        yield server


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_over_http_a_made_up_forwarded_for_does_not_reset_the_throttle(web):
    """uvicorn itself must not take the header from a local client (its default does)."""
    statuses = [
        requests.post(
            web.url(TOKEN), json={}, headers={"X-Forwarded-For": f"203.0.113.{n}"}, timeout=10
        ).status_code
        for n in range(1, 4)
    ]
    assert statuses == [400, 400, 429]
    assert set(AuditEntry.objects.values_list("remote_addr", flat=True)) == {"127.0.0.1"}
