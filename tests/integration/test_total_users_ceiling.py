"""MAX_TOTAL_USERS holds under a race: many starts (or live resizes) asked for at the same
moment through the API, each in its own thread with its own database connection, as requests
served side by side are, never add up past the ceiling; those that do not fit are a 400
naming MAX_TOTAL_USERS, and those that fit are all accepted.

Shards go to a broker no worker consumes, and every session's Redis state is removed after
the test: nothing is sent to anyone.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models import Sum

from apps.sessions.choices import ACTIVE_STATUSES
from apps.sessions.models import LoadTestSession

from ..support.sessions import create_session, make_target
from ..support.users import client_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("unconsumed_broker", "forget_redis_sessions"),
]

CALLERS = 8
USERS = 100


class NowhereServer:
    """A base URL for the target; nothing is sent (no worker consumes the broker)."""

    base_url = "http://127.0.0.1:9/"


def all_at_once(operator, calls) -> list:
    """Each ``(method, path, body)`` from its own thread, released together; the answers."""
    barrier = threading.Barrier(len(calls))
    answers: list = [None] * len(calls)

    def call(index: int, method: str, path: str, body) -> None:
        client = client_for(operator)
        try:
            barrier.wait(timeout=30)
            answers[index] = getattr(client, method)(path, body, format="json")
        finally:
            connection.close()  # this thread's own connection

    threads = [
        threading.Thread(target=call, args=(index, *request)) for index, request in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(answer is not None for answer in answers), answers
    return answers


def active_users() -> int:
    return (
        LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
            users=Sum("concurrent_users")
        )["users"]
        or 0
    )


def assert_refused_by_the_ceiling(response) -> None:
    assert response.status_code == 400, response.content
    assert "MAX_TOTAL_USERS" in response.json()["concurrent_users"][0]


def test_simultaneous_starts_never_pass_the_ceiling(operator, settings):
    settings.MAX_TOTAL_USERS = 5 * USERS  # five of the eight fit
    api = client_for(operator)
    target = make_target(api, NowhereServer)
    sessions = [create_session(api, target, concurrent_users=USERS) for _ in range(CALLERS)]

    answers = all_at_once(
        operator, [("post", f"/api/sessions/{pk}/start/", None) for pk in sessions]
    )

    accepted = [answer for answer in answers if answer.status_code == 202]
    for refused in (answer for answer in answers if answer.status_code != 202):
        assert_refused_by_the_ceiling(refused)
    assert len(accepted) == 5, [answer.status_code for answer in answers]
    assert active_users() == 5 * USERS
    assert LoadTestSession.objects.filter(status="pending").count() == CALLERS - 5


def test_simultaneous_resizes_never_pass_the_ceiling(operator, settings):
    settings.MAX_TOTAL_USERS = CALLERS * USERS + 3 * USERS  # room for three of the eight
    api = client_for(operator)
    target = make_target(api, NowhereServer)
    sessions = [create_session(api, target, concurrent_users=USERS) for _ in range(CALLERS)]
    for pk in sessions:
        assert api.post(f"/api/sessions/{pk}/start/").status_code == 202

    answers = all_at_once(
        operator,
        [("patch", f"/api/sessions/{pk}/", {"concurrent_users": 2 * USERS}) for pk in sessions],
    )

    grown = [answer for answer in answers if answer.status_code == 200]
    for refused in (answer for answer in answers if answer.status_code != 200):
        assert_refused_by_the_ceiling(refused)
    assert len(grown) == 3, [answer.status_code for answer in answers]
    assert active_users() == CALLERS * USERS + 3 * USERS
