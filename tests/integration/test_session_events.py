"""Events for every step of a session's lifecycle, each saying who asked and through which
surface (page, api, admin, cli, schedule, system), read back from the event-log route, the
stats snapshot and the configuration history; engine events never push them out."""

import pytest
from django.test import override_settings

from apps.sessions.models import LoadTestSession, SessionEvent
from apps.sessions.results.records import record_event

from ..support.admin_page import logged_in, run_action
from ..support.sessions import BRISK, make_target, wait_for_status
from ..support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# What the dashboard's fetch wrapper sends (common.js): the page's calls say they are the page's.
FROM_PAGE = {"HTTP_X_LOADTEST_VIA": "page"}


def event_log(api, session_id: int, query: str = "") -> list[dict]:
    response = api.get(f"/api/sessions/{session_id}/event-log/{query}")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def by_kind(events: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for event in events:
        found.setdefault(event["kind"], []).append(event)
    return found


def test_every_step_of_a_run_is_an_event_with_who_and_via(
    api, operator, workers, counting_server, forget_redis_sessions
):
    target = make_target(api, counting_server, (("fast", "/fast", 1.0), ("slow", "/slow", 1.0)))
    body = {"session_name": "events", "target": target, "concurrent_users": 2,
            "duration_minutes": "0", **BRISK}  # fmt: skip
    created = api.post("/api/sessions/", body, format="json", **FROM_PAGE)
    assert created.status_code == 201, created.json()
    session_id = created.json()["id"]
    url = f"/api/sessions/{session_id}/"

    assert api.post(f"{url}start/").status_code == 202  # a plain API client
    wait_for_status(session_id, {"running"})
    resized = api.patch(url, {"concurrent_users": 3}, format="json", **FROM_PAGE)
    assert resized.status_code == 200, resized.json()
    # A header claiming another surface is not believed: only "page" (or "api") is taken.
    reweighted = api.patch(url, {"endpoint_weights": {"fast": 1, "slow": 3}}, format="json",
                           HTTP_X_LOADTEST_VIA="admin")  # fmt: skip
    assert reweighted.status_code == 200, reweighted.json()
    wait_until(lambda: counting_server.count("/slow") > 0, 10)

    stopped = run_action(
        logged_in(operator), "stop_sessions", LoadTestSession.objects.get(pk=session_id)
    )
    assert stopped.status_code == 200
    assert wait_for_status(session_id, timeout_s=30).status == "stopped"

    events = by_kind(event_log(api, session_id))
    who = {kind: [(e["actor"], e["via"]) for e in found] for kind, found in events.items()}
    assert who["created"] == [("olivia", "page")]
    assert who["started"] == [("olivia", "api")]
    assert who["load_started"] == [("system", "system")]
    assert who["users_changed"] == [("olivia", "page")]
    assert who["weights_changed"] == [("olivia", "api")]
    assert who["stop_requested"] == [("olivia", "admin")]
    assert who["ended"] == [("olivia", "admin")]
    assert events["users_changed"][0]["message"] == "Users 2 -> 3."
    assert "fast 1, slow 3" in events["weights_changed"][0]["message"]
    assert events["ended"][0]["message"].startswith("Stopped by user (status stopped).")
    assert events["ended"][0]["label"] == "Session ended"
    # Newest first: the run's story read backwards.
    order = [e["kind"] for e in event_log(api, session_id)]
    assert order.index("ended") < order.index("stop_requested") < order.index("users_changed")
    assert order.index("started") < order.index("created")

    assert {e["kind"] for e in event_log(api, session_id, "?via=page")} == {
        "created", "users_changed"
    }  # fmt: skip
    assert [e["kind"] for e in event_log(api, session_id, "?kind=ended,created")] == [
        "ended", "created"
    ]  # fmt: skip
    refused = api.get(f"{url}event-log/?kind=ended,<script>")
    assert refused.status_code == 400 and "'<script>'" in refused.json()["kind"][0]
    assert api.get(f"{url}event-log/?via=everywhere").status_code == 400

    recent = {
        (e["kind"], e["actor"], e["via"]) for e in api.get(f"{url}stats/").json()["recent_events"]
    }
    assert {("users_changed", "olivia", "page"), ("ended", "olivia", "admin")} <= recent

    history = api.get(f"{url}history/").json()["results"]
    changes = {change["field"]: change for change in history}
    assert changes["concurrent_users"]["via"] == "page"
    assert (changes["concurrent_users"]["old_text"], changes["concurrent_users"]["new_text"]) == (
        "2", "3"
    )  # fmt: skip
    assert changes["endpoint_weights"]["via"] == "api"
    assert changes["endpoint_weights"]["new_text"] == "fast 1, slow 3"
    assert changes["endpoint_weights"]["new_value"] == {"fast": 1, "slow": 3}  # still JSON


def test_the_emergency_stop_is_an_event_of_each_session_it_stopped(
    api, admin_api, workers, counting_server, forget_redis_sessions
):
    target = make_target(api, counting_server)
    body = {"session_name": "halted", "target": target, "concurrent_users": 1,
            "duration_minutes": "0", **BRISK}  # fmt: skip
    session_id = api.post("/api/sessions/", body, format="json").json()["id"]
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    wait_for_status(session_id, {"running"})

    halted = admin_api.post("/api/emergency-stop/", **FROM_PAGE)
    assert halted.status_code == 200 and session_id in halted.json()["stopped_sessions"]
    assert wait_for_status(session_id, timeout_s=30).end_reason == "emergency_stop"

    events = by_kind(event_log(api, session_id))
    assert [(e["actor"], e["via"]) for e in events["emergency_stop"]] == [("ada", "page")]
    assert "stop_requested" not in events
    (ended,) = events["ended"]
    assert (ended["actor"], ended["via"]) == ("ada", "page")
    assert ended["message"].startswith("Emergency stop (status stopped).")


@override_settings(SESSION_EVENTS_KEPT=25)
def test_a_flood_of_engine_events_never_prunes_the_lifecycle(api, counting_server):
    target = make_target(api, counting_server)
    session_id = api.post("/api/sessions/", {"session_name": "flood", "target": target},
                          format="json").json()["id"]  # fmt: skip
    for users in (2, 3):
        record_event(session_id, "users_changed", f"Users -> {users}.", actor="olivia", via="api")
    for flip in range(60):  # a breaker flapping
        record_event(session_id, "breaker_opened" if flip % 2 else "breaker_closed", "flap")
    kept = SessionEvent.objects.filter(session_id=session_id)
    assert kept.filter(kind="created").count() == 1
    assert kept.filter(kind="users_changed").count() == 2
    assert kept.filter(kind__startswith="breaker").count() == 25
    # The page's newest twenty are all the breaker's; how the run began is shown after them.
    recent = api.get(f"/api/sessions/{session_id}/stats/").json()["recent_events"]
    assert [e["kind"] for e in recent[20:]] == ["created"]
    assert {e["kind"] for e in recent[:20]} == {"breaker_opened", "breaker_closed"}

    for users in range(30):  # a client resizing in a loop: bounded too, the milestones kept
        record_event(session_id, "users_changed", f"Users -> {users}.", actor="olivia", via="api")
    assert kept.filter(kind="users_changed").count() == 25
    assert kept.filter(kind="created").count() == 1
    assert kept.filter(kind__startswith="breaker").count() == 25
