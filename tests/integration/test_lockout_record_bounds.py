"""A hostile sign-in cannot overflow the lockout's records: a 1 MiB user name (and user
agent) on every password form is a 4xx, and the failure is still counted, with every value
django-axes stores cut to its column (PostgreSQL refuses a longer value: a 500 and no
record; SQLite stores it whole, so the test measures the values rather than relying on the
database to refuse them).
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.db import models
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

HUGE_NAME = "n" * 2**20
HUGE_AGENT = "a" * 2**20
FORMS = ["/admin/login/", "/accounts/login/", "/api-auth/login/"]


def assert_records_fit_their_columns() -> None:
    """At least one attempt recorded, and no stored text longer than its column."""
    assert AccessAttempt.objects.exists()
    for model in (AccessAttempt, AccessFailureLog):
        for record in model.objects.all():
            for field in model._meta.get_fields():
                if isinstance(field, models.CharField) and field.max_length:
                    value = getattr(record, field.name) or ""
                    assert len(value) <= field.max_length, (model.__name__, field.name, len(value))


@pytest.mark.parametrize("path", FORMS)
def test_a_huge_user_name_on_a_sign_in_form_is_refused_and_recorded(path):
    browser = Client(
        enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT=HUGE_AGENT
    )
    assert browser.get(path).status_code == 200
    form = {
        "username": HUGE_NAME,
        "password": "wrong-password-1",
        "csrfmiddlewaretoken": browser.cookies["csrftoken"].value,
    }
    response = browser.post(path, form)
    # The form is shown again with its error (200), as for any wrong password.
    assert response.status_code == 200
    assert (
        b"correct username and password" in response.content or b"Please enter" in response.content
    )
    assert_records_fit_their_columns()


def test_a_huge_user_name_for_a_token_is_a_400_and_recorded():
    client = APIClient(REMOTE_ADDR="203.0.113.8", HTTP_USER_AGENT=HUGE_AGENT)
    response = client.post(
        "/api/auth/token/", {"username": HUGE_NAME, "password": "wrong-password-1"}, format="json"
    )
    assert response.status_code == 400, response.content[:300]
    assert_records_fit_their_columns()


def test_repeated_huge_user_names_still_lock_out():
    """The cut name is the one counted: the limit applies to it as to any other."""
    from django.conf import settings

    client = APIClient(REMOTE_ADDR="203.0.113.9")
    statuses = [
        client.post(
            "/api/auth/token/", {"username": HUGE_NAME, "password": "wrong"}, format="json"
        ).status_code
        for _ in range(settings.LOGIN_FAILURE_LIMIT + 1)
    ]
    assert statuses[-1] == 429, statuses
    assert_records_fit_their_columns()
