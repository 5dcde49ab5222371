"""The dashboard in a real browser on the real web process, workers and a counting server."""

import re

import pytest
from playwright.sync_api import expect

from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import Endpoint, LoadTestSession, Target, TimeSeriesPoint
from apps.sessions.results.figures import run_figures

from ..support.browser import screenshot, sign_in
from ..support.sessions import finished_session, wait_for_status
from ..support.traffic import RecentCounts
from ..support.users import persona
from ..support.waiting import wait_until

# The browser fixtures, for this module's tests.

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("forget_redis_sessions"),
]


def running_session(server, *paths: str, **config) -> LoadTestSession:
    """A started session on one endpoint per path (default /ping), through the services
    (the in-process API client cannot run beside Playwright's event loop)."""
    target = Target.objects.create(name=f"bg-{server.port}", base_url=server.base_url)
    for path in paths or ("ping",):
        Endpoint.objects.create(target=target, name=path, url=f"/{path}")
    session = LoadTestSession.objects.create(session_name="background", target=target, **config)
    return start_session(session)


def number(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def test_operator_creates_starts_watches_resizes_and_stops_a_session(
    dashboard_web, chromium, workers, counting_server
):
    persona("olga", "operator")
    target = Target.objects.create(name="counting", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="fast", url="/fast", weight=1)
    slow = Endpoint.objects.create(target=target, name="slow", url="/slow", weight=1)
    page = sign_in(chromium, dashboard_web, "olga", "olga-pw-42")

    page.goto(dashboard_web.url(f"/sessions/new/?target={target.pk}"))
    page.get_by_label("Name", exact=True).fill("from the browser")
    page.get_by_label("Users").fill("2")
    page.get_by_label("Think time min (s)").fill("0.05")
    page.get_by_label("Think time max (s)").fill("0.1")
    page.locator(f"#id_weight_{slow.pk}").fill("3")
    shares = page.locator("[data-share]")
    expect(shares.nth(0)).to_have_text(re.compile(r"25[.,]0 %"))  # fast 1 of 4
    expect(shares.nth(1)).to_have_text(re.compile(r"75[.,]0 %"))
    page.get_by_role("button", name="Save and start").click()

    created = LoadTestSession.objects.filter(session_name="from the browser")
    session = wait_until(created.first, 10)
    page.wait_for_url(dashboard_web.url(f"/sessions/{session.pk}/"))
    assert session.endpoint_weights == {"fast": 1.0, "slow": 3.0}
    stream_state = page.get_by_test_id("stream-state")
    expect(stream_state).to_have_text("connected")
    total = page.get_by_test_id("live-total")
    wait_until(lambda: number(total.inner_text()) > 0, 30)
    first = number(total.inner_text())
    wait_until(lambda: number(total.inner_text()) > first, 15)  # grows without a reload
    expect(page.get_by_test_id("live-rps")).not_to_have_text("0.0")
    wait_until(lambda: counting_server.count("/slow") > 2 * counting_server.count("/fast"), 15)

    page.locator("#users-now").fill("4")
    page.get_by_role("button", name="Apply users").click()
    expect(page.get_by_test_id("live-users")).to_have_text("4", timeout=20_000)
    expect(page.locator("#shard-table tbody tr")).not_to_have_count(0)
    screenshot(page, "session-running")

    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_test_id("session-status")).to_have_text("stopped", timeout=30_000)
    expect(stream_state).to_have_text("ended")

    # The finished session's page: final figures and drawn charts, no stream.
    final = LoadTestSession.objects.get(pk=session.pk)
    page.reload()
    expect(page.get_by_test_id("live-total")).to_have_text(re.compile(r"\d"))
    assert number(page.get_by_test_id("live-total").inner_text()) == final.total_requests
    expect(page.get_by_test_id("chart-rps").locator("canvas")).to_have_count(1)
    points = page.evaluate("document.querySelectorAll('[data-testid=chart-rps] .u-legend').length")
    assert points >= 1
    expect(page.get_by_test_id("endpoint-table").locator("tbody tr")).to_have_count(2)
    # A finished session shows its whole run, not the last seconds' figures.
    expect(page.get_by_test_id("live-users")).to_have_text("0")
    expect(page.locator('[data-field="remaining"]')).to_have_text("ended")
    expect(page.locator('[data-field="percentiles"]')).not_to_have_text(re.compile("^— / —"))
    expect(page.get_by_text("Requests/s (whole run)")).to_have_count(1)
    page.goto(dashboard_web.url("/"))
    screenshot(page, "overview")


def test_viewer_sees_no_controls_and_a_forged_stop_is_refused(
    dashboard_web, chromium, workers, counting_server
):
    persona("vic", "viewer")
    session_id = running_session(counting_server, concurrent_users=1, request_interval_min=0.2,
                                 request_interval_max=0.3).pk  # fmt: skip
    page = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session_id}/"))
    expect(page.get_by_test_id("session-status")).to_have_text("running", timeout=20_000)
    for name in ("Start", "Stop", "Emergency stop", "Apply users", "Apply weights", "Clone"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    answer = page.evaluate(
        """async (id) => {
            const r = await Dashboard.api("POST", `/api/sessions/${id}/stop/`);
            return [r.status, r.data.detail];
        }""",
        session_id,
    )
    assert answer[0] == 403 and "does not allow" in answer[1]
    assert LoadTestSession.objects.get(pk=session_id).status == "running"
    stop_session(LoadTestSession.objects.get(pk=session_id))
    wait_for_status(session_id)


def test_admin_emergency_stop_asks_first(dashboard_web, chromium, workers, counting_server):
    admin = persona("adam", "admin")
    admin.is_staff = True
    admin.save()
    session_id = running_session(counting_server, concurrent_users=1, request_interval_min=0.2,
                                 request_interval_max=0.3).pk  # fmt: skip
    wait_for_status(session_id, {"running"})
    page = sign_in(chromium, dashboard_web, "adam", "adam-pw-42")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Emergency stop").click()
    assert LoadTestSession.objects.get(pk=session_id).status == "running"  # declined
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Emergency stop").click()
    expect(page.locator("#action-result")).to_contain_text("Emergency stop")
    assert wait_for_status(session_id).status == "stopped"


def test_the_page_says_reconnecting_while_web_is_down_and_carries_on_after(
    dashboard_web, chromium, workers, counting_server
):
    persona("rita", "viewer")
    session_id = running_session(counting_server, concurrent_users=1, request_interval_min=0.05,
                                 request_interval_max=0.1).pk  # fmt: skip
    page = sign_in(chromium, dashboard_web, "rita", "rita-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session_id}/"))
    stream_state = page.get_by_test_id("stream-state")
    expect(stream_state).to_have_text("connected")

    dashboard_web.stop()
    try:
        expect(stream_state).to_have_text("reconnecting")
    finally:
        dashboard_web.start_again()
    expect(stream_state).to_have_text("connected", timeout=30_000)  # the server's retry: 3 s
    total = page.get_by_test_id("live-total")
    after_restart = number(total.inner_text())
    wait_until(lambda: number(total.inner_text()) > after_restart, 15)
    stop_session(LoadTestSession.objects.get(pk=session_id))
    wait_for_status(session_id)


def test_operator_applies_weights_to_a_running_session(
    dashboard_web, chromium, workers, counting_server
):
    persona("wendy", "operator")
    session_id = running_session(counting_server, "fast", "slow", concurrent_users=2,
                                 request_interval_min=0.02,
                                 request_interval_max=0.05).pk  # fmt: skip
    page = sign_in(chromium, dashboard_web, "wendy", "wendy-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session_id}/"))
    expect(page.get_by_test_id("session-status")).to_have_text("running", timeout=20_000)

    page.locator('#weights-now [data-endpoint="fast"]').fill("1")
    page.locator('#weights-now [data-endpoint="slow"]').fill("9")
    page.get_by_role("button", name="Apply weights").click()
    expect(page.locator("#action-result")).to_have_text("Weights applied.")
    expect(page.locator("#action-result")).to_have_class(re.compile("alert-success"))
    # The configuration history shows the change at once, as text, without a reload.
    change = page.get_by_test_id("history-table").locator('tr[data-field="endpoint_weights"]')
    expect(change).to_have_count(1)
    expect(change).to_contain_text("fast 1, slow 9")
    expect(change).to_contain_text("page")
    # Every worker takes the new weights within 2 s: then two seconds show the new mix.
    recent = RecentCounts(
        lambda: (counting_server.count("/fast"), counting_server.count("/slow")), window_s=2.0
    )

    def mix_changed() -> bool:
        lately = recent()
        if lately is None:
            return False
        more_fast, more_slow = lately
        return more_fast + more_slow >= 50 and more_slow > 3 * more_fast  # 9:1 asked

    wait_until(mix_changed, 22, what="The 9:1 mix")
    stop_session(LoadTestSession.objects.get(pk=session_id))
    wait_for_status(session_id)


def test_latency_chart_fills_and_a_drag_zooms_through_the_chart_api(
    dashboard_web, chromium, workers, counting_server
):
    persona("zoe", "viewer")
    session_id = running_session(counting_server, concurrent_users=2, request_interval_min=0.02,
                                 request_interval_max=0.05).pk  # fmt: skip
    wait_until(lambda: TimeSeriesPoint.objects.filter(session_id=session_id).count() >= 5, 30)
    page = sign_in(chromium, dashboard_web, "zoe", "zoe-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session_id}/"))
    # The chart is drawn only once one of p50/p95/p99 has a value; hovering shows them.
    plot = page.get_by_test_id("chart-latency").locator(".u-over")
    expect(plot).to_have_count(1)
    box = plot.bounding_box()
    assert box
    middle_y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, middle_y)
    p95 = (
        page.get_by_test_id("chart-latency")
        .locator(".u-series", has_text="p95")
        .locator(".u-value")
    )
    expect(p95).to_have_text(re.compile(r"\d ms"))
    # The live percentiles say their window: how far back, and over how many answers.
    expect(page.get_by_test_id("percentiles-label")).to_have_text(
        re.compile(r"p50 / p95 / p99 \(last [\d.]+ s, [\d,]+ answers\)")
    )
    expect(page.get_by_test_id("latency-window-note")).to_contain_text("10 s before it")

    zoom = re.compile(r"/chart/\?from=\d+&to=\d+$")
    with page.expect_request(lambda request: bool(zoom.search(request.url))):
        page.mouse.move(box["x"] + box["width"] * 0.2, middle_y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.8, middle_y, steps=5)
        page.mouse.up()
    reset = page.get_by_role("button", name="Reset zoom")
    expect(reset).to_be_visible()
    reset.click()
    expect(reset).to_be_hidden()
    # The overview's row: the run so far, all endpoints together, and its columns say so.
    page.goto(dashboard_web.url("/"))
    expect(page.locator("#active-sessions thead")).to_contain_text("p95 (run so far)")
    row = page.locator(f'#active-sessions tr[data-session="{session_id}"]')
    expect(row.locator("td").nth(7)).to_have_text(re.compile(r"\d ms$"))
    stop_session(LoadTestSession.objects.get(pk=session_id))
    wait_for_status(session_id)


def test_threshold_verdicts_appear_live_and_final(
    dashboard_web, chromium, workers, counting_server
):
    """The session page's threshold table follows the stream: judged once there are enough
    requests, and final when the session ends."""
    persona("tess", "viewer")
    session_id = running_session(
        counting_server, concurrent_users=2, request_interval_min=0.02, request_interval_max=0.05,
        thresholds=["p95_ms < 60000", "requests > 1e9"],
    ).pk  # fmt: skip
    page = sign_in(chromium, dashboard_web, "tess", "tess-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session_id}/"))
    rows = page.get_by_test_id("threshold-table").locator("tbody tr")
    expect(rows.nth(0)).to_contain_text("pass", timeout=20_000)  # live, from the stream
    expect(rows.nth(1)).to_contain_text("judged at the end")
    stop_session(LoadTestSession.objects.get(pk=session_id))
    expect(rows.nth(1)).to_contain_text("fail", timeout=20_000)
    expect(rows.nth(1)).to_contain_text("final")


def test_a_start_s_banner_goes_when_the_session_ends(
    dashboard_web, chromium, workers, counting_server
):
    """A new user saw "Starting." still shown above a completed session (and all through
    a running one): it goes once the load runs, at the latest when the session ends."""
    persona("olga", "operator")
    target = Target.objects.create(name="short", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    session = LoadTestSession.objects.create(
        session_name="short", target=target, concurrent_users=2, duration_minutes=0.05,
        request_interval_min=0.05, request_interval_max=0.1,
    )  # fmt: skip
    page = sign_in(chromium, dashboard_web, "olga", "olga-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    page.get_by_role("button", name="Start").click()
    banner = page.locator("#action-result")
    expect(banner).to_have_text("Starting.")
    expect(page.get_by_test_id("session-status")).to_have_text("completed", timeout=30_000)
    expect(banner).to_be_hidden()


def test_a_finished_sessions_header_shows_the_whole_runs_figures(dashboard_web, chromium, db):
    """Ended, the header's p50 / p95 / p99 and rate are the whole run's (all endpoints'
    histograms merged), as the list, the report and the API give them: not each figure from
    whichever endpoint is worst."""
    persona("olive", "viewer")
    target = Target.objects.create(name="finished", base_url="http://127.0.0.1:9")
    session = finished_session(
        target,
        endpoints={"fast": ([2.0] * 900, {}), "slow": ([400.0] * 100, {"http_5xx": 3})},
    )
    figures = run_figures(session).as_dict()
    page = sign_in(chromium, dashboard_web, "olive", "olive-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    expect(page.get_by_text("p50 / p95 / p99 (whole run)")).to_be_visible()
    shown = page.locator('[data-field="percentiles"]').inner_text()
    assert shown == " / ".join(
        f"{figures[name]:,.1f} ms" for name in ("p50_ms", "p95_ms", "p99_ms")
    )
    # The slow endpoint alone has 400 ms at every percentile: the worst-endpoint header did.
    assert figures["p50_ms"] < 10 and shown.startswith(f"{figures['p50_ms']:,.1f} ms")
    expect(page.get_by_test_id("live-rps")).to_have_text(f"{figures['rps']:,.1f}")


def test_start_on_the_page_offers_stop_and_early_percentiles_say_they_are_too_few(
    dashboard_web, chromium, workers, counting_server
):
    """A new user saved a session, pressed Start and found no Stop button until a reload;
    and the first seconds' p95/p99 showed the whole run's figures under a "last 2.5 s"
    label. At 2 answers a second the window holds too few for p95 for ten seconds."""
    persona("sam", "operator")
    target = Target.objects.create(name="slow-rate", base_url=counting_server.base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    session = LoadTestSession.objects.create(session_name="paced", target=target,
                                             concurrent_users=2, target_rps=2)  # fmt: skip
    page = sign_in(chromium, dashboard_web, "sam", "sam-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    stop = page.get_by_role("button", name="Stop", exact=True)
    expect(stop).to_be_hidden()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("session-status")).to_have_text("running", timeout=20_000)
    expect(stop).to_be_visible()
    expect(page.get_by_text("Starting.", exact=True)).to_be_hidden()  # the load runs now
    note = page.get_by_test_id("percentile-note")
    expect(note).to_contain_text("too few answers yet (p99 needs 100;", timeout=20_000)
    expect(page.get_by_test_id("live-percentiles")).to_have_text(re.compile(r"— / —$"))
    stop.click()
    expect(page.get_by_test_id("session-status")).to_have_text("stopped", timeout=20_000)
    expect(note).to_have_text("")
