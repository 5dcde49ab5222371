"""The comparison page and the baseline buttons in a real browser on the real web process,
over two finished sessions with known, hand-made results (the load path that produces
results has its own tests): the table's values and deltas, and the charts drawn; the
configuration differences listed first, with no verdict between runs of different users;
and the two Clone buttons of a run whose users changed while it ran."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from apps.sessions.models import ConfigChange, LoadTestSession, Target

from ..support.browser import screenshot, sign_in
from ..support.sessions import finished_session
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FAST = {"ping": ([5.0] * 200, {}), "cart": ([8.0] * 100, {})}
SLOW = {"ping": ([5.0] * 100 + [40.0] * 100, {}), "cart": ([8.0] * 100, {"http_5xx": 10})}


def two_runs():
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    fast = finished_session(target, "fast run", endpoints=FAST,
                            points=[(second, 30, 5.0) for second in range(10)])  # fmt: skip
    slow = finished_session(target, "slow run", endpoints=SLOW,
                            points=[(second, 29, 40.0) for second in range(10)])  # fmt: skip
    return fast, slow


def expect_chart_drawn(page, test_id: str, series: int) -> None:
    holder = page.get_by_test_id(test_id)
    expect(holder.locator("canvas")).to_have_count(1)
    expect(holder).to_have_attribute("data-series", str(series))
    assert int(holder.get_attribute("data-points")) > 0


def test_viewer_compares_two_runs_table_and_charts(dashboard_web, chromium):
    persona("vicky", "viewer")
    fast, slow = two_runs()
    page = sign_in(chromium, dashboard_web, "vicky", "vicky-pw-42")

    # From the overview's checkboxes.
    page.get_by_label(f"Compare #{fast.pk}").check()
    page.get_by_label(f"Compare #{slow.pk}").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.get_by_role("heading", name="Compare sessions")).to_be_visible()
    # The overview lists the newest first; the oldest ticked (fast) is the reference.
    assert page.url.endswith(f"/compare/?ids={fast.pk},{slow.pk}")

    ping_p95 = page.locator(
        f'tr[data-scope="ping"][data-session="{slow.pk}"] td[data-metric="p95_ms"]'
    )
    expect(ping_p95).to_contain_text("40.0 ms")
    expect(ping_p95).to_contain_text("▼ +35.0 ms (+700.0 %) worse")
    expect(ping_p95.locator(".badge")).to_have_text("regression")
    cart_errors = page.locator(
        f'tr[data-scope="cart"][data-session="{slow.pk}"] td[data-metric="error_rate"]'
    )
    expect(cart_errors).to_contain_text("10.00 %")
    expect(cart_errors).to_contain_text("+10.00 pp (from 0) worse")
    same = page.locator(f'tr[data-scope="ping"][data-session="{slow.pk}"] td[data-metric="rps"]')
    expect(same).to_contain_text("20.0/s")
    expect(same).to_contain_text("= +0.0/s (+0.0 %) same")
    expect(page.get_by_test_id(f"regression-{slow.pk}")).to_have_text("regression")

    expect_chart_drawn(page, "compare-chart-rps", 2)
    expect_chart_drawn(page, "compare-chart-p95", 2)
    expect_chart_drawn(page, "compare-chart-distribution", 2)
    page.get_by_label("Endpoint").select_option("cart")
    expect_chart_drawn(page, "compare-chart-distribution", 2)
    screenshot(page, "compare")

    # A viewer reads the baseline section but has no button to change it.
    page.goto(dashboard_web.url(f"/sessions/{fast.pk}/"))
    expect(page.get_by_test_id("baseline-section")).to_contain_text("shop has no baseline.")
    expect(page.get_by_role("button", name="Mark as baseline")).to_have_count(0)


def test_operator_marks_a_baseline_and_the_later_run_shows_its_regression(dashboard_web, chromium):
    persona("otto", "operator")
    fast, slow = two_runs()
    page = sign_in(chromium, dashboard_web, "otto", "otto-pw-42")

    page.goto(dashboard_web.url(f"/sessions/{fast.pk}/"))
    page.get_by_role("button", name="Mark as baseline").click()
    expect(page.get_by_test_id("is-baseline")).to_be_visible()
    assert Target.objects.get().baseline_session_id == fast.pk

    page.goto(dashboard_web.url(f"/sessions/{slow.pk}/"))
    expect(page.get_by_test_id("baseline-verdict")).to_have_text("regression")
    expect(page.get_by_test_id("baseline-section")).to_contain_text("ping: p95 up 700 % (+35.0 ms)")
    expect(page.get_by_test_id("baseline-table")).to_contain_text("▼")
    screenshot(page, "session-against-baseline")
    page.get_by_test_id("compare-with-baseline").click()
    expect(page.get_by_test_id("compare-table")).to_be_visible()
    assert page.url.endswith(f"/compare/?ids={fast.pk},{slow.pk}")

    page.goto(dashboard_web.url(f"/sessions/{fast.pk}/"))
    page.get_by_role("button", name="Clear baseline").click()
    expect(page.get_by_test_id("baseline-section")).to_contain_text("shop has no baseline.")
    assert Target.objects.get().baseline_session_id is None


def users_changed_live(session, old: int, new: int) -> None:
    """The row says how the run ended; the history's first live change, how it started."""
    LoadTestSession.objects.filter(pk=session.pk).update(concurrent_users=new)
    change = ConfigChange.objects.create(object_type="session", object_id=session.pk,
                                         object_repr=str(session), field="concurrent_users",
                                         old_value=old, new_value=new, via="api")  # fmt: skip
    ConfigChange.objects.filter(pk=change.pk).update(
        changed_at=session.start_time + timedelta(seconds=3)
    )


def test_runs_of_other_users_show_the_difference_and_clone_asks_which(dashboard_web, chromium):
    persona("olga", "operator")
    fast, slow = two_runs()
    users_changed_live(slow, 10, 20)
    page = sign_in(chromium, dashboard_web, "olga", "olga-pw-42")

    page.goto(dashboard_web.url(f"/compare/?ids={fast.pk},{slow.pk}"))
    users = page.get_by_test_id("config-differences").locator('tr[data-aspect="users"]')
    expect(users).to_contain_text("changes the load")
    expect(users).to_contain_text("10, then 20")
    expect(page.get_by_test_id(f"regression-{slow.pk}")).to_have_text("not judged")
    expect(page.get_by_test_id(f"verdict-reason-{slow.pk}")).to_have_text(
        "Users differ: 10 → 10, then 20; a verdict needs runs of the same load."
    )
    # The figures are still there, but none is called a regression, nor worse or better.
    ping_p95 = page.locator(
        f'tr[data-scope="ping"][data-session="{slow.pk}"] td[data-metric="p95_ms"]'
    )
    expect(ping_p95).to_contain_text("Δ +35.0 ms (+700.0 %)")
    expect(ping_p95).not_to_contain_text("worse")
    expect(page.get_by_test_id("compare-table").locator(".badge")).to_have_count(0)
    screenshot(page, "compare-different-load")

    page.goto(dashboard_web.url(f"/sessions/{slow.pk}/"))
    expect(page.get_by_test_id("clone")).to_have_count(0)
    expect(page.get_by_test_id("clone-start")).to_contain_text("10 users")
    page.get_by_test_id("clone-end").click()
    expect(page.get_by_test_id("clone-config")).to_have_text("as it ended")
    expect(page.get_by_label("Users", exact=True)).to_have_value("20")
    page.go_back()
    page.get_by_role("button", name=re.compile("Clone as configured at the start")).click()
    expect(page.get_by_test_id("clone-config")).to_have_text("as configured at the start")
    expect(page.get_by_label("Users", exact=True)).to_have_value("10")
