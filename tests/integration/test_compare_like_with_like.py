"""Comparisons that compare like with like, on real runs against a counting server: two runs
of the same load get a verdict whose reasons are words with units; a run with other users
gets the difference listed first and no verdict (in the comparison, on the page and against
the target's baseline). A run whose users and weights changed while it ran is cloned as
configured at its start or as it ended, through the API and the page."""

import re

import pytest

from apps.sessions.models import LoadTestSession

from ..support.forms import browser_for
from ..support.sessions import BRISK, create_session, make_target, wait_for_status
from ..support.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("forget_redis_sessions"),
]

SHORT = {"duration_minutes": 0.05, "max_errors_per_minute": 0, **BRISK}
SLOW_S = 0.1
TWO_ENDPOINTS = (("ping", "/ping", 1.0), ("pong", "/pong", 1.0))
# What a person reads must never be a field name.
FIELD_NAMES = re.compile(r"\b(rps|p50_ms|p95_ms|p99_ms|error_rate)\b")


def run_to_the_end(api, target_id: int, **config) -> int:
    session_id = create_session(api, target_id, **{**SHORT, **config})
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    wait_until(
        lambda: LoadTestSession.objects.get(pk=session_id).results_final_at, 60, what="final"
    )
    return session_id


@pytest.fixture
def three_runs(api, workers, counting_server, settings):
    """A fast run of 4 users, then the server slowed down: a run of the same 4 users and
    one of 8 users. The two slow runs are equally worse; only the first is comparable."""
    settings.THRESHOLD_MIN_REQUESTS = 20
    target_id = make_target(api, counting_server, TWO_ENDPOINTS)
    fast = run_to_the_end(api, target_id, concurrent_users=4)
    counting_server.delay_s = SLOW_S
    same_load = run_to_the_end(api, target_id, concurrent_users=4)
    more_users = run_to_the_end(api, target_id, concurrent_users=8)
    return target_id, fast, same_load, more_users


def test_same_load_is_judged_in_words_and_other_users_are_not_judged(
    three_runs, viewer_api, viewer, api
):
    _, fast, same_load, more_users = three_runs
    response = viewer_api.get(f"/api/sessions/compare/?ids={fast},{same_load},{more_users}")
    assert response.status_code == 200, response.json()
    result = response.json()

    # The configurations come first, and the one difference in load is the users.
    configs = {config["session"]: config for config in result["configurations"]}
    assert [configs[pk]["users_start"] for pk in (fast, same_load, more_users)] == [4, 4, 8]
    assert configs[more_users]["users_end"] == 8 and configs[more_users]["changed_live"] == []
    assert configs[fast]["weights_start"] == {"ping": 1.0, "pong": 1.0}
    # Users over time, from the per-second points: never above the users configured.
    assert 0 < configs[more_users]["users_mean"] <= 8 and configs[more_users]["users_max"] == 8
    load_aspects = {d["aspect"] for d in result["differences"] if d["affects_verdict"]}
    assert load_aspects == {"users"}
    (users,) = [d for d in result["differences"] if d["aspect"] == "users"]
    assert [value["text"] for value in users["values"]] == ["4", "4", "8"]

    _, same, other = result["sessions"]
    # The same load: judged, a regression, reasons in words with units.
    assert same["same_load"] is True and same["verdict"] == "regression" and same["judged"]
    texts = [entry["text"] for entry in same["regressions"]]
    assert any(re.fullmatch(r"ping: p50 up [0-9.,]+ % \(\+[0-9.,]+ ms\)", t) for t in texts), texts
    assert same["verdict_reason"] == "; ".join(texts)
    assert not any(FIELD_NAMES.search(text) for text in texts), texts

    # Other users: equally slow, yet no verdict, and the reason says why.
    assert other["same_load"] is False and other["verdict"] == "not judged"
    assert other["regression"] is False and other["regressions"] == [] and not other["judged"]
    assert other["load_differences"] == ["users differ: 4 → 8"]
    assert other["verdict_reason"] == ("users differ: 4 → 8; a verdict needs runs of the same load")
    for scope in result["scopes"]:
        row = scope["rows"][2]
        assert row["regressed"] == [] and row["note"] == "not judged: the load differed"
        assert row["deltas"]["p50_ms"]["direction"] == "worse"  # shown all the same

    # The page lists the difference first and says why there is no verdict.
    page = browser_for(viewer).get(f"/compare/?ids={fast},{same_load},{more_users}")
    html = page.content.decode()
    assert page.status_code == 200
    table = html[html.index('data-testid="config-differences"') : html.index("</table>")]
    assert 'data-aspect="users"' in table and "changes the load" in table
    assert html.index('data-testid="config-differences"') < html.index(
        'data-testid="compare-table"'
    )
    assert f'data-testid="regression-{more_users}">not judged' in html
    # Its changes are shown without "better" or "worse": no verdict in a word either.
    other_rows = re.findall(rf'<tr data-scope="[^"]*" data-session="{more_users}">(.*?)</tr>',
                            html, re.S)  # fmt: skip
    assert other_rows and all("Δ" in row for row in other_rows)
    assert not any(re.search(r"\b(better|worse)\b", row) for row in other_rows)
    assert "Users differ: 4 → 8; a verdict needs runs of the same load." in html
    assert f'data-testid="regression-{same_load}">regression' in html

    # Against the target's baseline: the same rule.
    assert api.post(f"/api/sessions/{fast}/baseline/").status_code == 200
    against = viewer_api.get(f"/api/sessions/{more_users}/").json()["baseline_comparison"]
    assert against["verdict"] == "not judged" and against["regression"] is False
    assert against["load_differences"] == ["users differ: 4 → 8"]
    judged = viewer_api.get(f"/api/sessions/{same_load}/").json()["baseline_comparison"]
    assert judged["verdict"] == "regression" and judged["same_load"] is True
    detail = browser_for(viewer).get(f"/sessions/{more_users}/").content.decode()
    assert 'data-testid="baseline-verdict">not judged' in detail
    assert "users differ: 4 → 8; a verdict needs runs of the same load" in detail


def test_a_run_changed_live_is_cloned_as_it_started_or_as_it_ended(
    api, workers, counting_server, viewer, operator
):
    target_id = make_target(api, counting_server, TWO_ENDPOINTS)
    session_id = create_session(api, target_id, concurrent_users=3, duration_minutes="0",
                                endpoint_weights={"pong": 2}, **BRISK)  # fmt: skip
    url = f"/api/sessions/{session_id}/"
    assert api.post(f"{url}start/").status_code == 202
    wait_until(lambda: counting_server.total > 10, 15, what="requests")
    assert api.patch(url, {"concurrent_users": 5}, format="json").status_code == 200
    changed = api.patch(url, {"endpoint_weights": {"pong": 0}}, format="json")
    assert changed.status_code == 200, changed.json()
    assert api.post(f"{url}stop/").status_code == 202
    wait_for_status(session_id, timeout_s=30)

    default = api.post(f"{url}clone/")
    start = api.post(f"{url}clone/", {"config": "start"}, format="json")
    end = api.post(f"{url}clone/?config=end")
    for answer in (default, start, end):
        assert answer.status_code == 201, answer.json()
    assert (start.json()["concurrent_users"], start.json()["endpoint_weights"]) == (3, {"pong": 2})
    assert (end.json()["concurrent_users"], end.json()["endpoint_weights"]) == (5, {"pong": 0})
    assert default.json()["concurrent_users"] == 3  # the default is the start
    assert start.json()["status"] == "pending"

    refused = api.post(f"{url}clone/", {"config": "middle"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "config": [
            "'middle' is not a choice: choose 'start' (users and weights as configured at "
            "the start) or 'end' (as it ended)."
        ]
    }
    clones = LoadTestSession.objects.filter(session_name__endswith="(copy)").count()
    assert clones == 3  # the refusal made none

    # The page offers both, labelled, and each prefills its own users and weights.
    operator_page = browser_for(operator)
    detail = operator_page.get(f"/sessions/{session_id}/").content.decode()
    assert 'data-testid="clone-start"' in detail and 'data-testid="clone-end"' in detail
    assert "Clone as configured at the start" in detail and "Clone as it ended" in detail
    assert "3 users; ping 1, pong 2" in detail and "5 users; ping 1" in detail
    assert 'data-testid="clone"' not in detail
    start_form = operator_page.get(f"/sessions/new/?clone={session_id}&config=start")
    assert start_form.status_code == 200
    start_html = start_form.content.decode()
    assert 'data-testid="clone-config">as configured at the start' in start_html
    assert re.search(r'name="concurrent_users"[^>]*value="3"', start_html)
    end_html = operator_page.get(f"/sessions/new/?clone={session_id}&config=end").content.decode()
    assert re.search(r'name="concurrent_users"[^>]*value="5"', end_html)
    bad = operator_page.get(f"/sessions/new/?clone={session_id}&config=%00x")
    assert bad.status_code == 400 and "choose &#x27;start&#x27;" in bad.content.decode()

    # Compared with a run of its start's load, it is not judged: its users changed.
    compared = browser_for(viewer).get(f"/compare/?ids={start.json()['id']},{session_id}")
    assert "3, then 5" in compared.content.decode()
