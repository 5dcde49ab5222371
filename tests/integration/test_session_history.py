"""The history of runs: tags (validated, editable at any status, recorded), the list's
filters (each, combined, hostile values refused by name), its whole-run figures (merged
histograms, no N+1), and the admin's endpoint statistics filtered by session and target."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.sessions.lifecycle.editing import update_session
from apps.sessions.models import ConfigChange, Endpoint, EndpointStats, LoadTestSession, Target
from apps.sessions.validation import TAG_CHARS_MAX, TAGS_MAX, clean_tags
from apps.workers.histogram import bucket_index

from ..support.admin_page import inline_management
from ..support.sessions import BRISK, start_load, wait_for_status
from ..support.waiting import wait_until

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def histogram(latencies_ms: list[float]) -> dict[str, int]:
    """The stored form of a histogram of these latencies (bucket index as text -> count)."""
    counts: dict[str, int] = {}
    for ms in latencies_ms:
        key = str(bucket_index(int(ms * 1000)))
        counts[key] = counts.get(key, 0) + 1
    return counts


def run(target, name, *, status="completed", started=T0, seconds=10.0, tags=(), rows=()):
    """A session as the monitor leaves it, with one stats row per (name, latencies, failures)."""
    session = LoadTestSession.objects.create(
        session_name=name, target=target, status=status, tags=list(tags), concurrent_users=4,
        start_time=started, load_started_at=started, end_time=started + timedelta(seconds=seconds),
    )  # fmt: skip
    LoadTestSession.objects.filter(pk=session.pk).update(created_at=started)
    for endpoint, latencies, failures in rows:
        EndpointStats.objects.create(
            session=session, name=endpoint, method="GET", url=f"{target.base_url}/{endpoint}",
            requests=len(latencies), failures=failures, histogram=histogram(latencies),
            min_ms=min(latencies), max_ms=max(latencies), p95_ms=sorted(latencies)[-1],
            mean_ms=sum(latencies) / len(latencies),
        )  # fmt: skip
    session.refresh_from_db()
    return session


def target(name: str, port: int) -> Target:
    made = Target.objects.create(name=name, base_url=f"http://127.0.0.1:{port}")
    Endpoint.objects.create(target=made, name="a", url="/a")
    return made


@pytest.fixture
def shop():
    return target("shop", 5001)


@pytest.fixture
def runs(shop):
    blog = target("blog", 5002)
    return {
        "nightly": run(
            shop,
            "nightly checkout",
            tags=["nightly", "checkout"],
            rows=[("a", [10.0] * 90 + [100.0] * 10, 5)],
        ),
        "release": run(
            shop,
            "release 2.4",
            status="failed",
            started=T0 + timedelta(days=2),
            tags=["release-2.4"],
            rows=[("a", [20.0] * 50, 0)],
        ),
        "blog": run(blog, "Blog smoke", started=T0 + timedelta(days=5), tags=["nightly"]),
        "pending": run(blog, "later", status="pending", started=T0 + timedelta(days=6)),
    }


def ids(response) -> set[int]:
    assert response.status_code == 200, response.json()
    return {row["id"] for row in response.json()["results"]}


# --- tags ---------------------------------------------------------------------------------


def test_tags_are_normalised_and_hostile_ones_refused_by_name():
    full_width = "\uff43\uff48\uff45\uff43\uff4b\uff4f\uff55\uff54"  # "checkout"
    assert clean_tags(["  Nightly ", full_width, "release-2.4", "env:staging", "日本語"]) == [
        "nightly", "checkout", "release-2.4", "env:staging", "日本語",
    ]  # fmt: skip
    hostile = {
        "too many": [f"t{i}" for i in range(TAGS_MAX + 1)],
        "too long": ["x" * (TAG_CHARS_MAX + 1)],
        "megabyte": ["x" * 2**20],
        "space": ["two words"],
        "markup": ["</script><script>alert(1)</script>"],
        "quote": ['a"b'],
        "comma": ["a,b"],
        "empty": ["  "],
        "zero width": ["ta\u200bg"],
        "rtl override": ["\u202etag"],
        "duplicate after normalising": ["Prod", "PROD"],
        "not a list": "nightly",
        "a number": [1],
        "nested": [["a"]],
        "object": {"a": 1},
    }
    for case, tags in hostile.items():
        with pytest.raises(Exception) as caught:
            clean_tags(tags)
        assert caught.type.__name__ == "ValidationError", case


def test_api_refuses_bad_tags_with_400_naming_the_field(api, shop):
    for tags in (["a b"], "x", [None], ["x" * 2**20], [[[[["deep"]]]]], ["ok"] * 2, "\x00"):
        response = api.post("/api/sessions/", {"session_name": "t", "target": shop.pk,
                                               "tags": tags}, format="json")  # fmt: skip
        assert response.status_code == 400, tags
        assert "tags" in response.json(), response.json()
    full_width = "\uff50\uff52\uff4f\uff44"  # "prod"
    body = {"session_name": "t", "target": shop.pk, "tags": ["Nightly", full_width]}
    created = api.post("/api/sessions/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["tags"] == ["nightly", "prod"]


def test_tags_change_at_any_status_recorded_but_configuration_stays_final(api, viewer_api, runs):
    ended = runs["nightly"]
    url = f"/api/sessions/{ended.pk}/"
    changed = api.patch(url, {"tags": ["nightly", "incident-42"]}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["tags"] == ["nightly", "incident-42"]
    change = ConfigChange.objects.get(object_type="session", object_id=ended.pk, field="tags")
    assert (change.old_value, change.new_value) == (
        ["nightly", "checkout"],
        ["nightly", "incident-42"],
    )

    # Tags with configuration: the whole change is refused, tags included.
    mixed = api.patch(url, {"tags": ["other"], "concurrent_users": 9}, format="json")
    assert mixed.status_code == 409
    assert "tags can change at any status" in mixed.json()["detail"]
    assert LoadTestSession.objects.get(pk=ended.pk).tags == ["nightly", "incident-42"]

    bad = api.patch(url, {"tags": ["no spaces"]}, format="json")
    assert bad.status_code == 400 and "tags" in bad.json()
    assert viewer_api.patch(url, {"tags": ["x"]}, format="json").status_code == 403


def test_tags_on_a_pending_session_and_through_the_service_for_every_edge(operator, runs):
    pending = runs["pending"]
    update_session(pending, {"tags": ["A", "b"]}, user=operator)
    assert LoadTestSession.objects.get(pk=pending.pk).tags == ["a", "b"]
    with pytest.raises(Exception, match="given twice"):
        update_session(pending, {"tags": ["a", "A"]}, user=operator)


def test_clone_and_export_config_copy_tags(api, runs):
    from apps.sessions.cli.config_file import export_config

    clone = api.post(f"/api/sessions/{runs['nightly'].pk}/clone/")
    assert clone.status_code == 201
    assert clone.json()["tags"] == ["nightly", "checkout"]
    assert "tags:\n- nightly\n- checkout\n" in export_config(runs["nightly"], as_yaml=True)


# --- filters ------------------------------------------------------------------------------


def test_each_filter_and_combinations(viewer_api, runs):
    nightly, release, blog, pending = (
        runs[k].pk for k in ("nightly", "release", "blog", "pending")
    )
    shop = runs["nightly"].target_id
    get = lambda **params: ids(viewer_api.get("/api/sessions/", params))  # noqa: E731

    assert get(target=shop) == {nightly, release}
    assert get(target=f"{shop},{runs['blog'].target_id}") == {nightly, release, blog, pending}
    assert get(status="failed") == {release}
    assert ids(viewer_api.get("/api/sessions/?status=failed&status=pending")) == {release, pending}
    assert get(status="completed,failed") == {nightly, release, blog}
    assert get(tag="nightly") == {nightly, blog}
    assert get(tag="NIGHTLY") == {nightly, blog}  # normalised like stored tags
    assert ids(viewer_api.get("/api/sessions/?tag=nightly&tag=checkout")) == {nightly}
    assert get(tag="check") == set()  # a tag is matched whole
    assert get(name="BLOG") == {blog}
    assert get(search="release") == {release}
    assert get(started_after="2026-03-03") == {release, blog, pending}  # from midnight UTC
    assert get(started_after="2026-03-03T00:00:00Z") == {release, blog, pending}
    assert get(started_before="2026-03-03T00:00:00Z") == {nightly}
    assert get(started_before="2026-03-03") == {nightly, release}  # a date alone: its whole day
    assert get(started_after="2026-03-03", started_before="2026-03-03") == {release}
    assert get(created_after=str((T0 + timedelta(days=4)).timestamp())) == {blog, pending}
    assert get(created_before="2026-03-06T12:00:01+00:00") == {nightly, release, blog}
    # Combined: every filter narrows.
    assert get(target=shop, status="completed,failed", tag="nightly") == {nightly}
    assert get(tag="nightly", started_after="2026-03-02") == {blog}
    assert get(target=shop, name="blog") == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"target": "abc"}, "target"),
        ({"target": "-1"}, "target"),
        ({"target": "1.5"}, "target"),
        ({"target": "9" * 40}, "target"),
        ({"target": ",".join(["1"] * 51)}, "target"),
        ({"status": "done"}, "status"),
        ({"status": "<script>"}, "status"),
        ({"tag": "two words"}, "tag"),
        ({"tag": "x" * 100_000}, "tag"),
        ({"tag": ",".join(f"t{i}" for i in range(11))}, "tag"),
        ({"name": "n" * 1000}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "\u202eevil"}, "name"),
        ({"started_after": "yesterday"}, "started_after"),
        ({"started_before": "2026-13-45"}, "started_before"),
        ({"created_after": "NaN"}, "created_after"),
        ({"created_before": "1e400"}, "created_before"),
        ({"created_before": "-99999999999999"}, "created_before"),
        ({"started_after": "0001-01-01T00:00:00+14:00"}, "started_after"),
        ({"started_after": "\uff12\uff10\uff12\uff16-01-01"}, "started_after"),
    ],
)
def test_hostile_filter_values_are_a_400_naming_the_parameter(viewer_api, runs, params, field):
    response = viewer_api.get("/api/sessions/", params)
    assert response.status_code == 400, (params, response.content[:200])
    assert field in response.json(), response.json()


# --- figures ------------------------------------------------------------------------------


def test_rows_carry_whole_run_figures_from_merged_histograms(viewer_api, shop):
    session = run(shop, "two endpoints", seconds=20, rows=[
        ("fast", [10.0] * 95, 0), ("slow", [500.0] * 5, 5),
    ])  # fmt: skip
    row = viewer_api.get("/api/sessions/", {"name": "two endpoints"}).json()["results"][0]
    assert row["duration_s"] == 20.0
    assert row["concurrent_users"] == 4 and "users" not in row  # one field per figure
    assert row["rps"] == 5.0  # 100 requests in 20 s
    assert row["error_rate"] == 0.05
    # Of all 100 requests, the 95th is the last fast one: ~10 ms, not the slow endpoint's
    # 500 ms nor an average of the two endpoints' p95s (255 ms).
    assert 9.0 <= row["p95_ms"] <= 11.0, row
    detail = viewer_api.get(f"/api/sessions/{session.pk}/").json()
    assert detail["p95_ms"] == row["p95_ms"]


def test_a_session_without_requests_has_empty_figures(viewer_api, runs):
    row = viewer_api.get(f"/api/sessions/{runs['blog'].pk}/").json()
    assert (row["rps"], row["error_rate"], row["p95_ms"]) == (0.0, None, None)


def test_the_list_reads_a_fixed_number_of_queries(viewer_api, shop, django_assert_max_num_queries):
    for number in range(30):
        run(shop, f"run {number}", tags=["bulk"], rows=[("a", [5.0, 6.0], 0), ("b", [7.0], 1)])
    viewer_api.get("/api/sessions/", {"tag": "bulk"})  # warm the caches (permissions, user)
    with django_assert_max_num_queries(8):
        response = viewer_api.get("/api/sessions/", {"tag": "bulk", "status": "completed"})
    assert len(response.json()["results"]) == 30


# --- admin --------------------------------------------------------------------------------


def test_admin_endpoint_stats_filter_by_target_and_session(superuser_client, runs):
    client = superuser_client
    EndpointStats.objects.create(session=runs["blog"], name="a", method="GET", url="/a")
    url = reverse("admin:loadtests_endpointstats_changelist")
    everything = client.get(url)
    assert everything.status_code == 200
    assert "By target" in everything.content.decode()  # two targets have rows
    shop_only = client.get(url, {"session__target__id__exact": runs["nightly"].target_id})
    rows = shop_only.context["cl"].result_list
    assert {row.session_id for row in rows} == {runs["nightly"].pk, runs["release"].pk}
    one = client.get(url, {"session__id__exact": runs["release"].pk})
    assert {row.session_id for row in one.context["cl"].result_list} == {runs["release"].pk}


def test_admin_edits_tags_of_an_ended_session_only(superuser_client, runs):
    client = superuser_client
    ended = runs["nightly"]
    url = reverse("admin:loadtests_loadtestsession_change", args=[ended.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert 'name="tags"' in page.content.decode()
    assert 'name="concurrent_users"' not in page.content.decode()
    saved = client.post(url, {"tags": "Nightly, incident-7", **inline_management(page)})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert LoadTestSession.objects.get(pk=ended.pk).tags == ["nightly", "incident-7"]
    assert ConfigChange.objects.filter(object_id=ended.pk, field="tags", via="admin").exists()
    refused = client.post(url, {"tags": "a b", **inline_management(page)})
    assert refused.status_code == 200
    assert "letters and digits" in refused.content.decode()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_list_figures_match_a_real_run_on_the_workers(
    api, workers, counting_server, forget_redis_sessions
):
    counting_server.statuses["/broken"] = 500
    session_id = start_load(
        api, counting_server, (("ping", "/ping", 3.0), ("broken", "/broken", 1.0)),
        concurrent_users=3, duration_minutes="0.05", thresholds=["requests > 0"],
        tags=["real-run"], **BRISK,
    )  # fmt: skip
    wait_for_status(session_id)
    wait_until(
        lambda: LoadTestSession.objects.filter(pk=session_id, results_final_at__isnull=False)
        .exists(),
        timeout_s=30,
    )  # fmt: skip
    (row,) = api.get("/api/sessions/", {"tag": "real-run"}).json()["results"]
    sent, failed = counting_server.total, counting_server.count("/broken")
    assert row["id"] == session_id and row["status"] == "completed"
    assert row["total_requests"] == sent > 10
    assert 2.0 <= row["duration_s"] <= 15.0  # 3 s of load, generously bounded
    assert row["concurrent_users"] == 3
    assert row["rps"] == pytest.approx(sent / row["duration_s"], rel=0.02)
    assert row["error_rate"] == pytest.approx(failed / sent, abs=1e-6)
    assert 0 < failed < sent
    assert row["p95_ms"] is not None and 0 < row["p95_ms"] < 5000
