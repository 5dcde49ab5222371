"""Password guessing locks out: per user and per address, on the admin login, the browsable
API's login and the token endpoint; the locked-out client is told when to retry; each
lockout is audited and logged, never with the password.

Forms are posted as a browser does, CSRF token included (``enforce_csrf_checks``); the last
test does the same over HTTP against the Procfile's web line (uvicorn, the ASGI path).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
import requests
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.sessions.models import AuditEntry

from ..support.web import collect_static, procfile_web
from ..support.workers import database_url_for_workers

pytestmark = pytest.mark.django_db

LIMIT = settings.LOGIN_FAILURE_LIMIT
LOCKOUT_S = settings.LOGIN_LOCKOUT_MINUTES * 60
PASSWORD = "sam-the-staff-pw-42"
ADMIN_LOGIN = "/admin/login/"
API_LOGIN = "/api-auth/login/"
TOKEN = "/api/auth/token/"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("sam", password=PASSWORD, is_staff=True)


def sign_in(username: str, password: str, address: str, path: str = ADMIN_LOGIN):
    """A new browser at ``address`` opens the login page and submits the form."""
    browser = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    assert browser.get(path).status_code == 200
    form = {
        "username": username,
        "password": password,
        "csrfmiddlewaretoken": browser.cookies["csrftoken"].value,
        "next": "/admin/",
    }
    return browser.post(path, form)


def token_request(username: str, password: str, address: str):
    client = APIClient(REMOTE_ADDR=address)
    return client.post(TOKEN, {"username": username, "password": password}, format="json")


def assert_locked_page(response) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in locked" in page and "try again then" in page
    assert LOCKOUT_S - 60 <= int(response["Retry-After"]) <= LOCKOUT_S


def test_admin_login_locks_a_user_out_from_every_address(staff, django_user_model):
    statuses = [
        sign_in("sam", "wrong-guess", address=f"10.0.0.{n}").status_code
        for n in range(1, LIMIT + 1)
    ]
    assert statuses == [200] * (LIMIT - 1) + [429]  # the form again, then the lockout

    right_password_elsewhere = sign_in("sam", PASSWORD, address="10.0.9.9")
    assert_locked_page(right_password_elsewhere)

    # Those addresses failed once each: another user signs in from them as usual.
    django_user_model.objects.create_user("tess", password="tess-pw-42", is_staff=True)
    assert sign_in("tess", "tess-pw-42", address="10.0.0.1").status_code == 302


def test_admin_login_locks_an_address_out_for_every_user(staff):
    statuses = [
        sign_in(f"guess{n}", "wrong-guess", address="10.0.1.7").status_code for n in range(LIMIT)
    ]
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert_locked_page(sign_in("sam", PASSWORD, address="10.0.1.7"))
    assert sign_in("sam", PASSWORD, address="10.0.1.8").status_code == 302


def test_the_lock_lifts_once_the_lockout_time_has_passed(staff):
    for _ in range(LIMIT):
        sign_in("sam", "wrong-guess", address="10.0.2.1")
    assert sign_in("sam", PASSWORD, address="10.0.2.1").status_code == 429

    # As if LOGIN_LOCKOUT_MINUTES had gone by since the failures.
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert sign_in("sam", PASSWORD, address="10.0.2.1").status_code == 302


def test_the_browsable_api_login_locks_out_too(staff):
    statuses = [
        sign_in("sam", "wrong-guess", address="10.0.3.1", path=API_LOGIN).status_code
        for _ in range(LIMIT)
    ]
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert_locked_page(sign_in("sam", PASSWORD, address="10.0.3.2", path=API_LOGIN))


def test_the_token_endpoint_answers_429_json_saying_when_to_retry(staff):
    statuses = [token_request("sam", "wrong-guess", "10.0.4.1").status_code for _ in range(LIMIT)]
    assert statuses == [400] * (LIMIT - 1) + [429]

    before = timezone.now()
    locked = token_request("sam", PASSWORD, "10.0.4.2")  # the right password, too late
    assert locked.status_code == 429
    body = locked.json()
    assert "token" not in body
    assert "try again then" in body["detail"]
    until = datetime.fromisoformat(body["locked_until"])
    expected = before + settings.AXES_COOLOFF_TIME
    assert expected - timedelta(seconds=60) <= until <= expected
    assert LOCKOUT_S - 60 <= body["retry_after_s"] == int(locked["Retry-After"]) <= LOCKOUT_S


def test_a_lockout_is_audited_and_logged_without_the_password(staff, caplog):
    guess = "hunter2-Secret-Guess"
    with caplog.at_level(logging.WARNING):
        for _ in range(LIMIT):
            token_request("sam", guess, "10.0.5.1")
        sign_in("sam", guess, address="10.0.5.1")

    token_lockout, form_lockout = AuditEntry.objects.filter(
        action__startswith="login locked out"
    ).order_by("pk")
    assert (token_lockout.path, token_lockout.status_code) == (TOKEN, 429)
    assert (token_lockout.remote_addr, token_lockout.action) == (
        "10.0.5.1",
        "login locked out: 'sam'",
    )
    assert (form_lockout.path, form_lockout.status_code) == (ADMIN_LOGIN, 429)
    # One entry per request: the refused attempts before the lockout, then the lockout.
    assert AuditEntry.objects.filter(path=TOKEN).count() == LIMIT

    lockout_records = [r for r in caplog.records if r.name == "apps.sessions.access.lockout"]
    assert [r.levelno for r in lockout_records] == [logging.WARNING] * 2
    assert all("'sam' from 10.0.5.1" in r.getMessage() for r in lockout_records)
    assert guess not in caplog.text
    assert guess not in str(list(AuditEntry.objects.values()))
    assert guess not in str(list(AccessAttempt.objects.values()))


# --- over HTTP, against the Procfile's web line ---------------------------------------------


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """uvicorn with production settings and a limit of 3, its static files collected (the
    login pages need them with DEBUG off)."""
    with django_db_blocker.unblock():
        database_url = database_url_for_workers()
    data_dir = tmp_path_factory.mktemp("lockout-web-data")
    collect_static(data_dir)
    log_path = data_dir / "uvicorn.log"
    env = {"LOGIN_FAILURE_LIMIT": "3", "API_ANONYMOUS_RATE": "1000/minute"}
    with procfile_web(database_url, redis_url, data_dir, log_path, **env) as server:
        yield server
    assert "Traceback" not in server.log(), server.log()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_over_http_the_admin_form_and_the_token_endpoint_lock_out(web, staff):
    def browser_sign_in(password: str) -> requests.Response:
        browser = requests.Session()
        browser.get(web.url(ADMIN_LOGIN), timeout=10).raise_for_status()
        form = {
            "username": "sam",
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "next": "/admin/",
        }
        return browser.post(web.url(ADMIN_LOGIN), data=form, allow_redirects=False, timeout=10)

    assert browser_sign_in(PASSWORD).status_code == 302  # the form works
    statuses = [browser_sign_in("wrong-guess").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    locked = browser_sign_in(PASSWORD)
    assert locked.status_code == 429
    assert "Sign-in locked" in locked.text
    assert 0 < int(locked.headers["Retry-After"]) <= LOCKOUT_S

    token = requests.post(
        web.url(TOKEN), json={"username": "sam", "password": PASSWORD}, timeout=10
    )
    assert token.status_code == 429
    assert "try again then" in token.json()["detail"]
    # The third failure, the right password on the form, the token request.
    assert AuditEntry.objects.filter(action="login locked out: 'sam'").count() == 3
