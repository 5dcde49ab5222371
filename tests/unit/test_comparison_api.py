"""The comparison's and the baseline's edges on finished sessions with hand-made results:
the API's refusals (bad, unknown, duplicate, too many ids; a run that cannot be a baseline),
the margin a target sets, and the admin's baseline actions, with the API's rules."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.sessions.models import ConfigChange, LoadTestSession, Target

from ..support.sessions import finished_session

pytestmark = pytest.mark.django_db

FAST = {"ping": ([5.0] * 200, {})}
SLOW = {"ping": ([5.0] * 100 + [40.0] * 100, {})}


@pytest.fixture
def target(db):
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")


def test_viewer_compares_and_the_first_id_is_the_reference(target, viewer_api):
    fast, slow = (
        finished_session(target, "fast", endpoints=FAST),
        finished_session(target, "slow", endpoints=SLOW),
    )
    result = viewer_api.get(f"/api/sessions/compare/?ids={fast.pk},{slow.pk}").json()
    whole = result["scopes"][0]
    assert whole["rows"][1]["figures"]["p95_ms"] == pytest.approx(40.0, rel=0.005)
    assert whole["rows"][1]["figures"]["rps"] == pytest.approx(20.0, rel=0.01)  # 200 in 10 s
    assert whole["rows"][1]["regressed"] == ["p95_ms", "p99_ms"]  # p50 stays at 5 ms
    assert result["sessions"][1]["regression"] is True


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "comma-separated list"),
        ("?ids=", "comma-separated list"),
        ("?ids=1", "Give 2 to 10 session ids, not 1."),
        ("?ids=1,2,3,4,5,6,7,8,9,10,11", "not 11"),
        ("?ids=1,abc", "'abc' is not a session id"),
        ("?ids=1,1e3", "'1e3' is not a session id"),
        ("?ids=" + "1," * 150 + "2", "At most 200 characters."),
    ],
)
def test_bad_ids_are_400_naming_the_parameter(viewer_api, query, message):
    response = viewer_api.get(f"/api/sessions/compare/{query}")
    assert response.status_code == 400
    assert message in response.json()["ids"][0]


def test_unknown_and_duplicate_ids_are_400(target, viewer_api):
    session = finished_session(target)
    unknown = viewer_api.get(f"/api/sessions/compare/?ids={session.pk},999998,999999")
    assert unknown.status_code == 400
    assert unknown.json() == {"ids": ["No session 999998, 999999."]}
    twice = viewer_api.get(f"/api/sessions/compare/?ids={session.pk},{session.pk}")
    assert twice.json() == {"ids": [f"Session {session.pk} is listed twice."]}


def test_a_bad_margin_is_400_and_a_good_one_is_used(target, viewer_api):
    fast, slow = finished_session(target, endpoints=FAST), finished_session(target, endpoints=SLOW)
    ids = f"{fast.pk},{slow.pk}"
    for bad in ("nan", "-5", "1e9", "abc"):
        response = viewer_api.get(f"/api/sessions/compare/?ids={ids}&margin_pct={bad}")
        assert response.status_code == 400 and "margin_pct" in response.json()
    lenient = viewer_api.get(f"/api/sessions/compare/?ids={ids}&margin_pct=1000").json()
    assert lenient["margin_pct"] == 1000 and lenient["sessions"][1]["regression"] is False


def test_a_targets_own_margin_beats_the_setting(target, viewer_api, admin_api, settings):
    settings.REGRESSION_MARGIN_PCT = 10
    fast, slow = finished_session(target, endpoints=FAST), finished_session(target, endpoints=SLOW)
    for bad in ("nan", -1, 1001, "x"):
        refused = admin_api.patch(f"/api/targets/{target.pk}/", {"regression_margin_pct": bad},
                                  format="json")  # fmt: skip
        assert refused.status_code == 400 and "regression_margin_pct" in refused.json(), bad
    changed = admin_api.patch(f"/api/targets/{target.pk}/", {"regression_margin_pct": 900},
                              format="json")  # fmt: skip
    assert changed.status_code == 200, changed.json()
    result = viewer_api.get(f"/api/sessions/compare/?ids={fast.pk},{slow.pk}").json()
    assert result["margin_pct"] == 900 and result["sessions"][1]["regression"] is False
    history = ConfigChange.objects.filter(object_type="target", field="regression_margin_pct")
    assert history.get().new_value == 900


def test_no_baseline_from_a_pending_failed_or_empty_session(target, api):
    pending = LoadTestSession.objects.create(session_name="p", target=target)
    failed = finished_session(target, status="failed")
    empty = finished_session(target, status="stopped", endpoints={})
    for session, words in ((pending, "is pending"), (failed, "is failed"), (empty, "no request")):
        response = api.post(f"/api/sessions/{session.pk}/baseline/")
        assert response.status_code == 409, session.status
        assert words in response.json()["detail"]
    assert Target.objects.get(pk=target.pk).baseline_session is None
    assert (
        api.delete(f"/api/sessions/{pending.pk}/baseline/")
        .json()["detail"]
        .endswith("(it has none).")
    )


def staff_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_admin_marks_a_baseline_with_the_apis_rules(target, operator, viewer):
    done, running = finished_session(target, "done"), finished_session(target, "other")
    LoadTestSession.objects.filter(pk=running.pk).update(status="running")
    changelist = reverse("admin:loadtests_loadtestsession_changelist")
    client = staff_client(operator)

    both = client.post(
        changelist,
        {"action": "mark_baseline", "_selected_action": [done.pk, running.pk]},
        follow=True,
    )
    assert "choose one session as its baseline" in both.content.decode()
    assert Target.objects.get(pk=target.pk).baseline_session is None

    refused = client.post(
        changelist, {"action": "mark_baseline", "_selected_action": [running.pk]}, follow=True
    )
    assert "only a completed or stopped session can be a baseline" in refused.content.decode()
    marked = client.post(
        changelist, {"action": "mark_baseline", "_selected_action": [done.pk]}, follow=True
    )
    assert "marked as its target&#x27;s baseline" in marked.content.decode()
    assert Target.objects.get(pk=target.pk).baseline_session_id == done.pk
    assert ConfigChange.objects.get(field="baseline_session_id").via == "admin"

    # A viewer is offered neither action, and a forged post changes nothing.
    viewer_client = staff_client(viewer)
    page = viewer_client.get(changelist)
    assert "mark_baseline" not in page.content.decode()
    targets = reverse("admin:loadtests_target_changelist")
    viewer_client.post(targets, {"action": "clear_baselines", "_selected_action": [target.pk]})
    assert Target.objects.get(pk=target.pk).baseline_session_id == done.pk

    cleared = client.post(
        targets, {"action": "clear_baselines", "_selected_action": [target.pk]}, follow=True
    )
    assert "no baseline now" in cleared.content.decode()
    assert Target.objects.get(pk=target.pk).baseline_session is None


def test_dashboard_compare_page_refuses_bad_ids_with_400(target, viewer):
    client = Client()
    client.force_login(viewer)
    response = client.get("/compare/?ids=1")
    assert response.status_code == 400
    assert "Give 2 to 10 session ids" in response.content.decode()
    first, second = finished_session(target), finished_session(target)
    # The overview's checkboxes send ids=1&ids=2.
    ok = client.get(f"/compare/?ids={first.pk}&ids={second.pk}")
    assert ok.status_code == 200 and b'data-testid="compare-table"' in ok.content


def test_a_run_too_short_to_judge_has_no_verdict_not_a_pass(target, viewer, settings):
    """Fewer than THRESHOLD_MIN_REQUESTS requests in a run: nothing is judged, and every
    surface says "not judged" instead of a green "no regression" (a CI gate must not pass
    on a run that proves nothing)."""
    from apps.sessions.cli.reports import baseline_table
    from apps.sessions.results import comparison

    settings.THRESHOLD_MIN_REQUESTS = 100
    baseline = finished_session(target, "baseline", endpoints=FAST)
    short = finished_session(target, "short", endpoints={"ping": ([90.0] * 40, {})})
    target.baseline_session = baseline
    target.save()
    against = comparison.against_baseline(short)
    assert against["judged"] is False and against["regression"] is False
    table = baseline_table(against)
    assert "Not judged against the baseline: fewer than 100 requests" in table
    assert "No regression against the baseline." not in table
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/sessions/{short.pk}/").content.decode()
    assert 'data-testid="baseline-verdict">not judged' in page
    compared = client.get(f"/compare/?ids={baseline.pk},{short.pk}").content.decode()
    assert f'data-testid="regression-{short.pk}">not judged' in compared
    judged = finished_session(target, "long", endpoints=FAST)
    assert comparison.against_baseline(judged)["judged"] is True
