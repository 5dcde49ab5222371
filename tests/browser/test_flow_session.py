"""A whole session with a flow, a data feed and templates, set up through the API as a user
would and run by the real Celery workers against a real shop on 127.0.0.1: each virtual user
logs in as the feed's user, keeps its own cookie, sends the token it extracted, and the
session's statistics count the flow's iterations and each step."""

from collections import defaultdict

import pytest
from playwright.sync_api import expect

from apps.sessions.catalog.flow_changes import save_flow
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import stop_session
from apps.sessions.models import Endpoint, Flow, FlowStep, LoadTestSession, Target

from ..support.browser import sign_in
from ..support.sessions import wait_for_status
from ..support.shop_server import ShopServer
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A step is named after its flow, position and endpoint (step_plan_name).
LOGIN, CART, VIEW = (f"shop \u203a {step}" for step in ("1. login", "2. cart-add", "3. cart-view"))
FEED = "username,password\n" + "".join(f"shopper{n},demo\n" for n in range(1, 6))


@pytest.fixture
def shop():
    server = ShopServer().start()
    yield server
    server.stop()


def test_a_session_runs_a_login_flow_with_feed_users_on_the_real_workers(
    admin_api, api, workers, shop, forget_redis_sessions
):
    target = admin_api.post("/api/targets/", {"name": "shop", "base_url": shop.base_url},
                            format="json").json()["id"]  # fmt: skip
    endpoints = [
        {"name": "login", "url": "/login", "method": "POST", "weight": 0,
         "headers": {"Content-Type": "application/json"},
         "body": '{"username": "{{ feed.username }}", "password": "{{ feed.password }}"}'},
        {"name": "cart-add", "url": "/cart/items", "method": "POST", "weight": 0,
         "headers": {"X-CSRF-Token": "{{ csrf_token }}"},
         "body": '{"product_id": {{ random_int(1, 5000) }}}', "expected_statuses": "201"},
        {"name": "cart-view", "url": "/cart", "method": "GET", "weight": 0,
         "checks": [{"type": "json_path_exists", "path": "$.items"}]},
    ]  # fmt: skip
    for endpoint in endpoints:
        created = admin_api.post("/api/endpoints/", {"target": target, **endpoint}, format="json")
        assert created.status_code == 201, created.json()
    flow = admin_api.post("/api/flows/", {
        "target": target, "name": "shop", "weight": 1,
        "steps": [
            {"endpoint": "login", "think_time_s": 0.05,
             "extract": [{"name": "csrf_token", "json_path": "$.csrf_token"}]},
            {"endpoint": "cart-add", "think_time_s": 0.05},
            {"endpoint": "cart-view"},
        ],
    }, format="json")  # fmt: skip
    assert flow.status_code == 201, flow.json()
    feed = admin_api.put(f"/api/targets/{target}/feed/?mode=per_user&filename=users.csv",
                         FEED, content_type="text/csv")  # fmt: skip
    assert feed.status_code == 201, feed.json()

    session = api.post("/api/sessions/", {
        "session_name": "shop flow", "target": target, "concurrent_users": 4,
        "duration_minutes": "0.1", "request_interval_min": 0.05, "request_interval_max": 0.1,
    }, format="json")  # fmt: skip
    assert session.status_code == 201, session.json()
    session_id = session.json()["id"]
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    finished = wait_for_status(session_id, timeout_s=60)
    assert finished.status == "completed", finished.end_detail

    sequences = defaultdict(list)
    for user, what in shop.events():
        sequences[user].append(what)
    # One feed row per user (per_user), whatever shards the users are on.
    assert set(sequences) == {"shopper1", "shopper2", "shopper3", "shopper4"}
    for user, sequence in sequences.items():
        whole = len(sequence) - len(sequence) % 3
        assert whole >= 3, (user, sequence)
        assert sequence[:whole] == ["login", "cart", "view"] * (whole // 3), (user, sequence)

    stats = api.get(f"/api/sessions/{session_id}/stats/").json()
    [shop_flow] = stats["flows"]
    assert shop_flow["name"] == "shop"
    assert shop_flow["iterations"] >= 4
    assert shop_flow["failed_iterations"] == 0
    steps = {entry["name"]: entry for entry in stats["endpoints"]}
    assert set(steps) == {LOGIN, CART, VIEW}
    logins = sum(1 for events in sequences.values() for what in events if what == "login")
    assert steps[LOGIN]["requests"] == logins
    assert all(set(step["failures_by_class"]) <= {"cancelled"} for step in steps.values())


def test_the_session_page_fills_its_flows_table_live_while_the_flow_runs(
    dashboard_web, chromium, workers, shop, forget_redis_sessions
):
    """The Flows table of a running session's page comes from the event stream, as the
    endpoint table does: real workers run the flow, the real monitor publishes, the page in
    a real browser shows iterations growing before the session ends."""
    persona("rita", "viewer")
    target = Target.objects.create(name="live shop", base_url=shop.base_url)
    login = Endpoint.objects.create(
        target=target, name="login", url="/login", method="POST", weight=0,
        headers={"Content-Type": "application/json"}, body='{"username": "u{{ user_id }}"}',
    )  # fmt: skip
    view = Endpoint.objects.create(target=target, name="cart-view", url="/cart", weight=0)
    flow = save_flow(
        Flow(target=target, name="browse", weight=1),
        [FlowStep(position=1, endpoint=login, think_time_s=0.1),
         FlowStep(position=2, endpoint=view)],
    )  # fmt: skip
    session = LoadTestSession.objects.create(
        session_name="live flows", target=target, concurrent_users=2, duration_minutes="0.5",
        request_interval_min=0.1, request_interval_max=0.2,
    )  # fmt: skip
    start_session(session)

    page = sign_in(chromium, dashboard_web, "rita", "rita-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    rows = page.get_by_test_id("flow-table").locator("tbody tr")
    expect(rows).to_have_count(1, timeout=20_000)
    expect(rows.first.locator("td").first).to_contain_text(flow.name)
    first = int(rows.first.locator("td").nth(1).inner_text().replace(",", ""))
    # Still running: the count grows on the page without a reload.
    expect(rows.first.locator("td").nth(1)).not_to_have_text(str(first), timeout=15_000)
    assert LoadTestSession.objects.get(pk=session.pk).status == "running"
    stop_session(session)
    wait_for_status(session.pk, timeout_s=30)
