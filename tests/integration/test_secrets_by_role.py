"""Who reads an endpoint's secrets: every read surface masks them for every role, except
the configuration shown to the roles that may edit endpoints (issue 22, items 3 and 4).

A viewer (and an operator) read the API's endpoints, ``/stats/``, the live snapshot the
streams send, the dashboard and the admin's endpoint and session pages with every header
value and every secret of the body and query string masked; an administrator editing an
endpoint in the admin sees the real values, and saving the form (or sending back what the
API showed) keeps them.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.sessions.models import Endpoint, LoadTestSession, Target
from apps.workers.control import SessionKeys
from apps.workers.secrets import REDACTED

from ..support.admin_page import logged_in
from ..support.sessions import BRISK, create_session, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Every secret starts with MARK, so "MARK not in text" proves none is shown.
MARK = "sEcR"
HEADERS = {"Authorization": f"Bearer {MARK}1-bearer-token", "Cookie": f"sid={MARK}2-cookie"}
BODY = json.dumps({"user": "ada", "password": f"{MARK}3-password"})
URL = f"/ping?api_key={MARK}4-query-key&page=2"


def secret_endpoint(base_url: str = "http://127.0.0.1:9") -> Endpoint:
    target = Target.objects.create(name="guarded", base_url=base_url)
    return Endpoint.objects.create(
        target=target, name="ping", url=URL, method="POST", headers=HEADERS, body=BODY
    )


# --- the API ------------------------------------------------------------------------------


def test_viewer_reads_endpoints_masked(viewer_api):
    endpoint = secret_endpoint()
    for response in (
        viewer_api.get(f"/api/endpoints/{endpoint.pk}/"),
        viewer_api.get("/api/endpoints/"),
        viewer_api.get(f"/api/targets/{endpoint.target_id}/"),
    ):
        assert response.status_code == 200
        assert MARK not in response.content.decode(), response.content
    shown = viewer_api.get(f"/api/endpoints/{endpoint.pk}/").json()
    assert shown["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED}
    assert shown["url"] == f"/ping?api_key={REDACTED}&page=2"
    assert json.loads(shown["body"]) == {"user": "ada", "password": REDACTED}


def test_only_an_editor_may_reveal(viewer_api, api, admin_api):
    endpoint = secret_endpoint()
    url = f"/api/endpoints/{endpoint.pk}/?reveal=true"
    for refused in (viewer_api, api):  # viewer, operator: neither edits endpoints
        response = refused.get(url)
        assert response.status_code == 403, response.content
        assert MARK not in response.content.decode()
    shown = admin_api.get(url).json()
    assert (shown["headers"], shown["body"], shown["url"]) == (HEADERS, BODY, URL)
    # Asked for nothing, an administrator reads masked values too.
    assert MARK not in admin_api.get(f"/api/endpoints/{endpoint.pk}/").content.decode()


def test_searching_urls_tells_a_viewer_nothing(viewer_api, admin_api):
    secret_endpoint()
    guess = f"/api/endpoints/?search={MARK}4-query"
    assert viewer_api.get(guess).json()["count"] == 0  # a right guess and a wrong one alike
    assert viewer_api.get("/api/endpoints/?search=ping").json()["count"] == 1  # by name still
    assert admin_api.get(guess).json()["count"] == 1


def test_sending_back_what_was_read_keeps_every_secret(admin_api):
    endpoint = secret_endpoint()
    url = f"/api/endpoints/{endpoint.pk}/"
    shown = admin_api.get(url).json()
    response = admin_api.put(url, {**shown, "description": "edited"}, format="json")
    assert response.status_code == 200, response.json()
    stored = Endpoint.objects.get(pk=endpoint.pk)
    assert (stored.headers, stored.body, stored.url) == (HEADERS, BODY, URL)
    assert stored.description == "edited"


# --- the admin ------------------------------------------------------------------------------


def test_staff_viewer_reads_the_admin_endpoint_pages_masked(viewer):
    endpoint = secret_endpoint()
    browser = logged_in(viewer)
    pages = [
        reverse("admin:loadtests_endpoint_change", args=[endpoint.pk]),
        reverse("admin:loadtests_endpoint_changelist"),
        reverse("admin:loadtests_target_change", args=[endpoint.target_id]),
    ]
    for page in pages:
        response = browser.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert MARK not in html, page
    html = browser.get(pages[0]).content.decode()
    assert "api_key=[redacted]&amp;page=2" in html  # the rest of the URL is shown
    assert "Authorization" in html


def test_admin_edits_an_endpoint_with_its_secrets_and_keeps_them(administrator):
    endpoint = secret_endpoint()
    browser = logged_in(administrator)
    page = reverse("admin:loadtests_endpoint_change", args=[endpoint.pk])
    response = browser.get(page)
    assert f"{MARK}4-query-key" in response.content.decode()  # the editor sees what it edits
    form = response.context["adminform"].form
    data = {
        name: form[name].value() if form[name].value() is not None else "" for name in form.fields
    }
    data["headers"] = json.dumps(form.initial["headers"])
    data["checks"] = json.dumps(form.initial["checks"])
    data["description"] = "edited in the admin"
    saved = browser.post(page, data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    stored = Endpoint.objects.get(pk=endpoint.pk)
    assert (stored.headers, stored.body, stored.url) == (HEADERS, BODY, URL)
    assert stored.description == "edited in the admin"


# --- a run: /stats/, the live snapshot, the dashboard, the admin's session page --------------


def test_a_run_shows_no_secret_to_a_viewer(
    api, viewer, viewer_api, administrator, workers, counting_server, redis_client,
    forget_redis_sessions,
):  # fmt: skip
    endpoint = secret_endpoint(counting_server.base_url)
    session_id = create_session(
        api, endpoint.target_id, concurrent_users=2, duration_minutes="0.03", **BRISK
    )
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    keys = SessionKeys(session_id)
    stored = wait_until(lambda: redis_client.get(keys.snapshot), timeout_s=20)
    assert MARK not in stored.decode() if isinstance(stored, bytes) else MARK not in stored
    session = wait_for_status(session_id, timeout_s=60)
    assert session.total_requests > 0, session.end_detail
    assert MARK in json.dumps(session.plan)  # the plan holds them: masking is what hides them

    stats = viewer_api.get(f"/api/sessions/{session_id}/stats/")
    assert stats.status_code == 200
    assert MARK not in stats.content.decode()
    assert stats.json()["endpoints"][0]["url"].endswith(f"/ping?api_key={REDACTED}&page=2")
    last = redis_client.get(keys.snapshot)
    assert last is not None and MARK not in (last.decode() if isinstance(last, bytes) else last)

    dashboard = logged_in(viewer, staff=False)
    for page in (f"/sessions/{session_id}/", f"/targets/{endpoint.target_id}/", "/flows/"):
        response = dashboard.get(page)
        assert response.status_code == 200, page
        assert MARK not in response.content.decode(), page

    staff_viewer = logged_in(viewer)
    stats_row = session.endpoint_stats.get()
    event = session.events.first()
    for page in (
        reverse("admin:loadtests_endpointstats_change", args=[stats_row.pk]),
        reverse("admin:loadtests_endpointstats_changelist"),
        reverse("admin:loadtests_sessionevent_change", args=[event.pk]),
        reverse("admin:loadtests_sessionevent_changelist"),
    ):
        response = staff_viewer.get(page)
        assert response.status_code == 200, page
        assert MARK not in response.content.decode(), page

    admin_page = reverse("admin:loadtests_loadtestsession_change", args=[session_id])
    response = staff_viewer.get(admin_page)
    assert response.status_code == 200
    assert MARK not in response.content.decode()
    assert "Authorization" in response.content.decode()  # the plan is shown, masked
    # Whoever may edit the endpoints reads the plan as it ran.
    assert MARK in logged_in(administrator).get(admin_page).content.decode()
    assert LoadTestSession.objects.get(pk=session_id).plan == session.plan
