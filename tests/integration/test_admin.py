"""The Django admin: every model is listed, and sessions start and stop from it."""

import itertools

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from apps.sessions.choices import EventKind
from apps.sessions.models import (
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    RequestLogEntry,
    SessionEvent,
    Target,
    TimeSeriesPoint,
)

from ..support.admin_page import inline_management
from ..support.sessions import wait_for_status
from ..support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:loadtests_loadtestsession_changelist"


def change_page(session) -> str:
    return reverse("admin:loadtests_loadtestsession_change", args=[session.pk])


@pytest.mark.parametrize("model", list(apps.get_app_config("loadtests").get_models()))
def test_every_model_has_a_changelist(superuser_client, model):
    meta = model._meta
    response = superuser_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert response.status_code == 200


def test_invalid_session_in_admin_shows_errors_and_stores_nothing(superuser_client):
    target = Target.objects.create(name="t", base_url="http://127.0.0.1:9")
    Endpoint.objects.create(target=target, name="a", url="/a")
    response = superuser_client.post(
        reverse("admin:loadtests_loadtestsession_add"),
        {
            "session_name": "bad",
            "target": target.pk,
            "concurrent_users": 10,
            "duration_minutes": "1",
            "request_interval_min": 5,
            "request_interval_max": 1,
            "endpoint_weights": '{"nope": 1}',
            "max_errors_per_minute": 100,
        },
    )
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert "request_interval_min" in errors and "endpoint_weights" in errors
    assert LoadTestSession.objects.count() == 0


@pytest.mark.integration
def test_admin_actions_start_and_stop_a_session(
    superuser_client, workers, counting_server, forget_redis_sessions
):
    target = Target.objects.create(name="counting", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    session = LoadTestSession.objects.create(
        session_name="from admin",
        target=target,
        concurrent_users=3,
        request_interval_min=0.05,
        request_interval_max=0.1,
        duration_minutes=0,
    )
    changelist = reverse("admin:loadtests_loadtestsession_changelist")

    superuser_client.post(
        changelist, {"action": "start_sessions", "_selected_action": [session.pk]}
    )
    wait_for_status(session.pk, {"running"}, timeout_s=15)
    wait_until(lambda: counting_server.total > 10, timeout_s=10)
    superuser_client.post(changelist, {"action": "stop_sessions", "_selected_action": [session.pk]})
    session = wait_for_status(session.pk, {"stopped", "failed"}, timeout_s=20)

    assert session.status == "stopped"
    assert session.started_by.username == session.stopped_by.username == "root"
    assert session.total_requests == counting_server.total
    page = superuser_client.get(
        reverse("admin:loadtests_loadtestsession_change", args=[session.pk])
    )
    assert page.status_code == 200


def finished_session(status: str = "stopped", **fields) -> LoadTestSession:
    target = Target.objects.create(name=f"t-{LoadTestSession.objects.count()}",
                                   base_url="http://127.0.0.1:9")  # fmt: skip
    return LoadTestSession.objects.create(session_name="s", target=target, status=status, **fields)


def test_the_add_form_preselects_the_default_target(superuser_client, settings):
    settings.TARGET_APP_URL = "http://127.0.0.1:5001"
    Target.objects.create(name="other", base_url="http://127.0.0.1:9")
    default = Target.objects.create(name="demo", base_url="http://127.0.0.1:5001")
    page = superuser_client.get(reverse("admin:loadtests_loadtestsession_add"))
    assert page.context["adminform"].form["target"].value() == default.pk
    assert f'<option value="{default.pk}" selected>' in page.content.decode()


def test_counts_have_thousands_separators_and_milliseconds_one_decimal(superuser_client):
    session = finished_session(total_requests=1234567, total_failures=8901)
    EndpointStats.objects.create(session=session, name="ping", method="GET", url="/ping",
                                 requests=1234567, p95_ms=12.3456789, max_ms=1234.56)  # fmt: skip
    TimeSeriesPoint.objects.create(session=session, timestamp=timezone.now(), requests=45678,
                                   latency_sum_ms=45678 * 3.14159)  # fmt: skip
    RequestLogEntry.objects.create(session=session, at=timezone.now(), endpoint="ping",
                                   method="GET", path="/ping", latency_ms=7.777)  # fmt: skip
    pages = {
        "session list": superuser_client.get(reverse(CHANGELIST)),
        "session page": superuser_client.get(change_page(session)),
        "stats list": superuser_client.get(reverse("admin:loadtests_endpointstats_changelist")),
        "time series": superuser_client.get(reverse("admin:loadtests_timeseriespoint_changelist")),
        "request log": superuser_client.get(reverse("admin:loadtests_requestlogentry_changelist")),
    }
    text = {name: page.content.decode() for name, page in pages.items()}
    assert "1,234,567" in text["session list"] and "8,901" in text["session list"]
    for name in ("session page", "stats list"):
        assert "1,234,567" in text[name] and "12.3<" in text[name] and "1,234.6<" in text[name]
        assert "12.345" not in text[name]
    assert "45,678" in text["time series"] and "3.1<" in text["time series"]
    assert "7.8<" in text["request log"] and "7.777" not in text["request log"]


@pytest.mark.parametrize("status", ["stopping", "completed", "stopped", "failed"])
def test_a_session_that_can_no_longer_change_shows_its_configuration_read_only(
    superuser_client, status
):
    """Only its tags stay editable (labels, not configuration): a forged field is ignored."""
    session = finished_session(status, concurrent_users=5)
    page = superuser_client.get(change_page(session)).content.decode()
    assert 'name="concurrent_users"' not in page and 'name="session_name"' not in page
    assert 'name="tags"' in page and 'name="_save"' in page
    page = superuser_client.get(change_page(session))
    forged = superuser_client.post(
        change_page(session), {"concurrent_users": 50, "tags": "", **inline_management(page)}
    )
    assert forged.status_code == 302
    assert LoadTestSession.objects.get(pk=session.pk).concurrent_users == 5


@pytest.mark.parametrize("status", ["pending", "running"])
def test_a_session_that_can_change_keeps_its_save_button(superuser_client, status):
    page = superuser_client.get(change_page(finished_session(status))).content.decode()
    assert 'name="_save"' in page


_names = itertools.count()
RESULTS = {
    "endpointstats": lambda s: EndpointStats.objects.create(session=s, name=f"a{next(_names)}",
                                                            method="GET", url="/a"),
    "timeseriespoint": lambda s: TimeSeriesPoint.objects.create(session=s,
                                                                timestamp=timezone.now()),
    "errorsample": lambda s: ErrorSample.objects.create(session=s, at=timezone.now(),
                                                        endpoint="a", failure_class="http_5xx",
                                                        message="boom"),
    "sessionevent": lambda s: SessionEvent.objects.create(session=s, at=timezone.now(),
                                                          kind=EventKind.USERS_CHANGED,
                                                          message="m"),
    "requestlogentry": lambda s: RequestLogEntry.objects.create(session=s, at=timezone.now(),
                                                                endpoint="a", method="GET",
                                                                path="/a", latency_ms=1.0),
}  # fmt: skip


@pytest.mark.parametrize("model_name", sorted(RESULTS))
def test_results_are_filterable_by_session(superuser_client, model_name):
    mine, other = finished_session(), finished_session()
    wanted = {RESULTS[model_name](mine).pk for _ in range(2)}
    RESULTS[model_name](other)
    changelist = reverse(f"admin:loadtests_{model_name}_changelist")
    page = superuser_client.get(changelist, {"session__id__exact": mine.pk})
    assert page.status_code == 200
    assert {row.pk for row in page.context["cl"].result_list} == wanted


def test_each_session_links_to_its_dashboard(superuser_client):
    session = finished_session()
    link = f'href="/sessions/{session.pk}/"'
    assert link in superuser_client.get(reverse(CHANGELIST)).content.decode()
    assert link in superuser_client.get(change_page(session)).content.decode()
