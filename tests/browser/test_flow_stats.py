"""Per-flow statistics on the control plane: a shard's flow counters (the real
``ShardStats.record_flow`` and ``take_delta``, flushed by the real FLUSH script into a real
Redis) reach ``FlowStats`` rows through the monitor, come back into Redis when the session's
state is rebuilt, and show in the stats API, the live snapshot, the exports, the report and
the session page (a real browser on the real web process).

No worker runs here: the engine's side of flows (which iterations end, and how long they
take) has tests of its own; these take its counters as given and follow them up the layers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from apps.sessions.lifecycle import recovery
from apps.sessions.lifecycle.monitor import monitor_tick, publish_snapshot
from apps.sessions.models import (
    EndpointStats,
    ErrorSample,
    FlowStats,
    LoadTestSession,
    RequestLogEntry,
    Target,
)
from apps.sessions.results.sync import sync_statistics
from apps.workers.control import (
    FLUSH_SCRIPT,
    SessionKeys,
    flush_script_args,
    flush_script_keys,
    publish_session,
    reassign,
)
from apps.workers.plan import EndpointPlan, FeedPlan, FlowPlan, Plan, StepPlan
from apps.workers.stats import (
    FlowTotals,
    ShardStats,
    flow_stats_hash_fields,
    parse_flow_stats,
)

from ..support.browser import screenshot, sign_in
from ..support.users import persona

BASE = "http://127.0.0.1:9"
FLOW = "checkout"
STEP = " \u203a "  # the plan names a step "<flow> \u203a <n>. <endpoint>"
STEP_NAMES = (f"{FLOW}{STEP}1. login", f"{FLOW}{STEP}2. cart-add")
SECOND = 1_700_000_000


def flow_plan(flows: bool = True) -> Plan:
    """One single endpoint and, with ``flows``, a two-step flow whose steps are weight-0
    plan entries, as ``planning.build_plan`` lays them out."""
    endpoints = [EndpointPlan(name="home", method="GET", url=f"{BASE}/", timeout_s=5, weight=1)]
    if not flows:
        return Plan(endpoints=tuple(endpoints), request_interval_min=1, request_interval_max=1)
    for name, path in zip(STEP_NAMES, ("/login", "/cart/items"), strict=True):
        endpoints.append(
            EndpointPlan(name=name, method="POST", url=BASE + path, timeout_s=5, weight=0, flow=0)
        )
    checkout = FlowPlan(name=FLOW, weight=1.0, steps=(StepPlan(1), StepPlan(2)), flow_id=41)
    return Plan(
        endpoints=tuple(endpoints),
        request_interval_min=1,
        request_interval_max=1,
        flows=(checkout,),
    )


def flush(redis_client, session_id: int, stats: ShardStats, shard_index: int = 0) -> None:
    """What a shard's flush sends: its delta since the last one, through the FLUSH script
    (counts only: no state change, no heartbeat)."""
    delta = stats.take_delta()
    keys = SessionKeys(session_id)
    args = flush_script_args(
        shard_index=shard_index,
        generation=1,
        new_state=None,
        heartbeat=None,
        events=[],
        increments=delta.increments,
        maxima=delta.maxima,
        minima=delta.minima,
        series=delta.series,
        heartbeat_ttl_s=5.0,
        session_id=session_id,
    )
    script_keys = flush_script_keys(keys, shard_index)
    redis_client.eval(FLUSH_SCRIPT, len(script_keys), *script_keys, *args)


def run_iterations(stats: ShardStats, durations_ms: list[int], failed: int) -> None:
    """Each iteration sends its steps (a failed one stops after the first) and ends."""
    for number, duration_ms in enumerate(durations_ms):
        failing = number < failed
        stats.record(1, 20_000, "http_4xx" if failing else None, SECOND)
        if not failing:
            stats.record(2, 30_000, None, SECOND)
        stats.record_flow(0, duration_ms * 1000, failed=failing)


def make_session(plan: Plan, name: str = "flows", **fields) -> LoadTestSession:
    target, _ = Target.objects.get_or_create(name="shop", defaults={"base_url": BASE})
    now = timezone.now()
    defaults = {
        "status": "completed",
        "start_time": now - timedelta(seconds=30),
        "load_started_at": now - timedelta(seconds=30),
        "end_time": now,
    }
    return LoadTestSession.objects.create(
        session_name=name, target=target, plan=plan.to_json(), **{**defaults, **fields}
    )


@pytest.fixture
def flowing_session(db, redis_client, forget_redis_sessions):
    """A session whose one shard ran ten iterations of the flow (two failed at the first
    step) and flushed them, and the monitor's pass over it."""
    plan = flow_plan()
    session = make_session(plan)
    publish_session(redis_client, session.pk, plan)
    stats = ShardStats(len(plan.endpoints), len(plan.flows))
    stats.record(0, 5_000, None, SECOND)
    run_iterations(stats, [100, 110, 120, 130, 140, 150, 160, 170, 180, 900], failed=2)
    flush(redis_client, session.pk, stats)
    sync_statistics(session, redis_client)
    return session


# --- the monitor ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_monitor_copies_a_flows_counters_into_its_row(flowing_session):
    row = FlowStats.objects.get(session=flowing_session)
    assert (row.name, row.flow_id) == (FLOW, 41)
    assert (row.iterations, row.failed_iterations) == (10, 2)
    assert row.failure_rate == pytest.approx(0.2)
    assert (row.min_ms, row.max_ms) == (100.0, 900.0)  # exact: the extremes are kept as such
    assert row.mean_ms == pytest.approx(2160 / 10)
    # Percentiles from the histogram: within its 0.4% resolution.
    assert row.p50_ms == pytest.approx(140, rel=0.01)
    assert row.p90_ms == pytest.approx(180, rel=0.01)
    assert row.p99_ms == row.p999_ms == pytest.approx(900, rel=0.01)
    assert sum(row.histogram.values()) == 10
    # The steps are ordinary endpoint rows, under the names the plan gives them.
    steps = {s.name: s for s in flowing_session.endpoint_stats.all()}
    assert set(steps) == {"home", *STEP_NAMES}
    assert (steps[STEP_NAMES[0]].requests, steps[STEP_NAMES[0]].failures) == (10, 2)
    assert steps[STEP_NAMES[1]].requests == 8  # not sent after a failed first step
    assert flowing_session.endpoint_stats.get(name="home").requests == 1


@pytest.mark.django_db
def test_later_flushes_from_several_shards_add_up(flowing_session, redis_client):
    plan = flowing_session.read_plan()
    for shard_index, durations in ((0, [50]), (1, [2000, 3000])):
        stats = ShardStats(len(plan.endpoints), len(plan.flows))
        run_iterations(stats, durations, failed=1)
        flush(redis_client, flowing_session.pk, stats, shard_index=shard_index)
    sync_statistics(flowing_session, redis_client)

    row = FlowStats.objects.get(session=flowing_session)  # still one row per flow
    assert (row.iterations, row.failed_iterations) == (13, 4)
    assert (row.min_ms, row.max_ms) == (50.0, 3000.0)
    assert row.mean_ms == pytest.approx((2160 + 50 + 2000 + 3000) / 13)


@pytest.mark.django_db
def test_a_pass_with_nothing_new_for_a_flow_leaves_its_row_alone(flowing_session, redis_client):
    before = FlowStats.objects.get(session=flowing_session).updated_at
    sync_statistics(flowing_session, redis_client)
    assert FlowStats.objects.get(session=flowing_session).updated_at == before


@pytest.mark.django_db
def test_a_session_without_flows_has_no_flow_rows(redis_client, forget_redis_sessions):
    plan = flow_plan(flows=False)
    session = make_session(plan)
    publish_session(redis_client, session.pk, plan)
    stats = ShardStats(len(plan.endpoints))  # an engine that knows no flows
    stats.record(0, 5_000, None, SECOND)
    flush(redis_client, session.pk, stats)
    sync_statistics(session, redis_client)
    assert session.endpoint_stats.get().requests == 1
    assert not FlowStats.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_flow_counters_the_plan_does_not_name_are_ignored(
    redis_client, forget_redis_sessions, caplog
):
    plan = flow_plan(flows=False)
    session = make_session(plan)
    publish_session(redis_client, session.pk, plan)
    redis_client.hset(
        SessionKeys(session.pk).stats, mapping={"0:n": 3, "0:h:10": 3, "F0:n": 2, "F0:h:9": 2}
    )
    sync_statistics(session, redis_client)  # no IndexError: the endpoints are still copied
    assert session.endpoint_stats.get().requests == 3
    assert not FlowStats.objects.filter(session=session).exists()
    assert "beyond the plan's 0 flows" in caplog.text


@pytest.mark.django_db
def test_the_live_snapshot_carries_the_flows(flowing_session, redis_client):
    publish_snapshot(flowing_session.pk, redis_client, {}, {})
    snapshot = json.loads(redis_client.get(SessionKeys(flowing_session.pk).snapshot))
    [flow] = snapshot["data"]["flows"]
    assert (flow["name"], flow["iterations"], flow["failed_iterations"]) == (FLOW, 10, 2)


def test_the_longest_step_name_fits_every_results_table():
    """A step's results are filed under "<flow> \u203a <n>. <endpoint>": with a flow and an
    endpoint of the longest names the catalog takes, it still fits (PostgreSQL enforces it)."""
    longest = f"{'f' * 100}{STEP}20. {'e' * 100}"
    for model, field in ((EndpointStats, "name"), (ErrorSample, "endpoint"),
                         (RequestLogEntry, "endpoint"), (FlowStats, "name")):  # fmt: skip
        assert model._meta.get_field(field).max_length >= len(longest), model


# --- recovery: Redis lost the session's state ----------------------------------------------


def test_flow_hash_fields_read_back_as_the_same_totals():
    totals = {
        0: FlowTotals(
            iterations=12,
            failed=3,
            duration_sum_us=2_400_000,
            min_us=90_000,
            max_us=400_000,
            histogram={1500: 10, 1700: 2},
        ),
        3: FlowTotals(iterations=1, duration_sum_us=5, min_us=5, max_us=5, histogram={5: 1}),
    }
    assert parse_flow_stats(flow_stats_hash_fields(totals)) == totals


@pytest.mark.django_db
def test_a_rebuilt_state_carries_the_flow_counts_on(
    redis_client, forget_redis_sessions, unconsumed_broker
):
    plan = flow_plan()
    now = timezone.now()
    session = make_session(
        plan,
        status="running",
        end_time=None,
        duration_minutes=5,
        concurrent_users=2,
        load_started_at=now - timedelta(seconds=20),
    )
    publish_session(redis_client, session.pk, plan)
    reassign(redis_client, session.pk, {0: (2, 0.0)})
    stats = ShardStats(len(plan.endpoints), len(plan.flows))
    run_iterations(stats, [100, 200, 300], failed=1)
    flush(redis_client, session.pk, stats)
    sync_statistics(session, redis_client)
    saved = FlowStats.objects.get(session=session)
    keys = SessionKeys(session.pk)
    saved_totals = parse_flow_stats(redis_client.hgetall(keys.stats))
    redis_client.delete(*keys.all([0]))  # Redis restarted empty

    assert monitor_tick(session.pk) is True  # rebuilt

    assert parse_flow_stats(redis_client.hgetall(keys.stats)) == saved_totals
    assert recovery.saved_flow_totals(session, plan) == saved_totals
    # A shard of the new generation adds to the saved counts, it does not start them again.
    stats = ShardStats(len(plan.endpoints), len(plan.flows))
    run_iterations(stats, [50], failed=0)
    flush(redis_client, session.pk, stats)
    sync_statistics(session, redis_client)
    row = FlowStats.objects.get(session=session)
    assert (row.iterations, row.failed_iterations) == (saved.iterations + 1, 1)
    assert (row.min_ms, row.max_ms) == (50.0, 300.0)
    assert row.mean_ms == pytest.approx(650 / 4)


# --- the API, the exports and the report ---------------------------------------------------


@pytest.mark.django_db
def test_the_stats_api_lists_the_flows(flowing_session, viewer_api):
    body = viewer_api.get(f"/api/sessions/{flowing_session.pk}/stats/").json()
    [flow] = body["flows"]
    assert flow["name"] == FLOW
    assert (flow["iterations"], flow["failed_iterations"]) == (10, 2)
    assert flow["failure_rate"] == pytest.approx(0.2)
    assert flow["mean_ms"] == pytest.approx(216)
    assert {"p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms", "flow_id"} <= set(flow)
    assert {e["name"] for e in body["endpoints"]} == {"home", *STEP_NAMES}


@pytest.mark.django_db
def test_a_session_without_flows_answers_an_empty_list(viewer_api, redis_client):
    session = make_session(flow_plan(flows=False))
    assert viewer_api.get(f"/api/sessions/{session.pk}/stats/").json()["flows"] == []
    csv_answer = viewer_api.get(f"/api/sessions/{session.pk}/export/?format=csv&table=flows")
    assert csv_answer.status_code == 200 and csv_answer.content == b""


@pytest.mark.django_db
def test_the_exports_hold_the_flows(flowing_session, viewer_api):
    base = f"/api/sessions/{flowing_session.pk}/export/"
    document = viewer_api.get(f"{base}?format=json").json()
    assert [f["name"] for f in document["stats"]["flows"]] == [FLOW]

    answer = viewer_api.get(f"{base}?format=csv&table=flows")
    assert answer.status_code == 200
    assert answer["Content-Disposition"].endswith(f'session-{flowing_session.pk}-flows.csv"')
    [row] = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert (row["flow"], row["iterations"], row["failed_iterations"]) == (FLOW, "10", "2")
    assert float(row["failure_rate"]) == pytest.approx(0.2)
    assert float(row["max_ms"]) == 900.0

    refused = viewer_api.get(f"{base}?format=csv&table=flow")
    assert refused.status_code == 400
    assert "flows" in refused.content.decode()


@pytest.mark.django_db
def test_the_report_has_a_flow_table_and_escapes_names(
    viewer_api, redis_client, forget_redis_sessions
):
    hostile = "</script><b>checkout ✓</b>"
    session = make_session(flow_plan())
    FlowStats.objects.create(
        session=session,
        name=hostile,
        iterations=4,
        failed_iterations=1,
        mean_ms=120.0,
        p50_ms=110.0,
        p95_ms=150.0,
        p99_ms=151.0,
        max_ms=152.0,
    )
    html = viewer_api.get(f"/api/sessions/{session.pk}/report/").content.decode()
    assert 'id="flow-table"' in html
    assert "&lt;/script&gt;&lt;b&gt;checkout ✓&lt;/b&gt;" in html
    assert "<b>checkout" not in html
    assert "25.00 %" in html  # 1 of 4 iterations failed

    plain = make_session(flow_plan(flows=False), name="plain")
    html = viewer_api.get(f"/api/sessions/{plain.pk}/report/").content.decode()
    assert 'id="flow-table"' not in html


@pytest.mark.django_db
def test_the_report_shows_the_flows_and_the_feed_as_run_never_the_feeds_values(viewer_api):
    plan = flow_plan()
    login, cart = plan.flows[0].steps
    plan = replace(
        plan,
        flows=(
            replace(
                plan.flows[0],
                steps=(
                    replace(login, think_time_s=0.5,
                            extract=({"name": "csrf_token", "json_path": "$.csrf_token"},)),
                    cart,
                ),
            ),
        ),
        feed=FeedPlan(columns=("email", "password"), rows=(("a@x.test", "hunter2"),),
                      mode="per_user", name="users.csv"),
    )  # fmt: skip
    session = make_session(plan)
    html = viewer_api.get(f"/api/sessions/{session.pk}/report/").content.decode()
    assert 'id="config-flows"' in html
    assert "1. login, then 0.5 s; extracts csrf_token<br>2. cart-add<br>" in html
    assert "users.csv: 1 rows of email, password, handed out per_user" in html
    assert "hunter2" not in html and "a@x.test" not in html


@pytest.mark.django_db
def test_the_admin_shows_a_sessions_flows_read_only(flowing_session, client, django_user_model):
    admin = django_user_model.objects.create_superuser("ada", "ada@example.com", "pw-ada-42")
    client.force_login(admin)
    page = client.get(reverse("admin:loadtests_loadtestsession_change", args=[flowing_session.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="flow_stats-group"' in html
    assert "20.00%" in html  # 2 of 10 iterations failed
    assert 'name="flow_stats-0-name"' not in html  # shown, not editable

    plain = make_session(flow_plan(flows=False), name="plain")
    page = client.get(reverse("admin:loadtests_loadtestsession_change", args=[plain.pk]))
    assert 'id="flow_stats-group"' not in page.content.decode()
    listing = client.get(reverse("admin:loadtests_flowstats_changelist"))
    assert listing.status_code == 200 and FLOW in listing.content.decode()


# --- the session page ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_session_page_shows_flows_only_for_a_session_with_flows(
    dashboard_web, chromium, redis_client, forget_redis_sessions
):
    persona("vic", "viewer")
    plan = flow_plan()
    session = make_session(plan)
    publish_session(redis_client, session.pk, plan)
    stats = ShardStats(len(plan.endpoints), len(plan.flows))
    run_iterations(stats, [100] * 1500, failed=300)
    flush(redis_client, session.pk, stats)
    sync_statistics(session, redis_client)
    plain = make_session(flow_plan(flows=False), name="plain")

    page = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    page.goto(dashboard_web.url(f"/sessions/{session.pk}/"))
    section = page.get_by_test_id("flow-section")
    expect(section).to_be_visible()
    rows = page.get_by_test_id("flow-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(0)).to_have_text(FLOW)
    expect(cells.nth(1)).to_have_text("1,500")
    expect(cells.nth(2)).to_have_text("300")
    expect(cells.nth(3)).to_have_text("20.0 %")
    expect(cells.nth(5)).to_have_text("100.0 ms")  # p50
    # The steps are rows of the endpoint table.
    endpoints = page.get_by_test_id("endpoint-table").locator("tbody tr")
    expect(endpoints.filter(has_text=STEP_NAMES[1])).to_have_count(1)
    expect(page.get_by_role("link", name="CSV flows")).to_be_visible()
    screenshot(page, "session-flows")

    page.goto(dashboard_web.url(f"/sessions/{plain.pk}/"))
    expect(page.get_by_test_id("endpoint-table")).to_be_visible()
    expect(page.get_by_test_id("flow-section")).to_be_hidden()
    expect(page.get_by_role("link", name="CSV flows")).to_have_count(0)
