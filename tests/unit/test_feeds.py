"""A target's data feed through the API (real database): uploaded as a multipart file or a raw
CSV body, read back with its first rows, re-moded, deleted; refused with a clear 400 for bad
files, to viewers and operators (the catalog is the admin role's), recorded in the target's
history and the audit log, and shipped whole in the plan of a session started afterwards."""

import json

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from apps.sessions.catalog.feeds import delete_feed, save_feed
from apps.sessions.lifecycle.planning import build_plan
from apps.sessions.models import (
    AuditEntry,
    ConfigChange,
    DataFeed,
    Endpoint,
    LoadTestSession,
    Target,
)
from apps.workers.plan import FeedPlan, Plan

pytestmark = pytest.mark.django_db

USERS_CSV = b"username,password\nalice,a1\nbob,b2\ncarol,c3\ndave,d4\nerin,e5\nfrank,f6\n"


@pytest.fixture
def target(db) -> Target:
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:8000")
    Endpoint.objects.create(target=target, name="home", url="/")
    return target


def feed_url(target: Target) -> str:
    return f"/api/targets/{target.pk}/feed/"


def upload(client, target: Target, data: bytes = USERS_CSV, name="users.csv", **fields):
    file = SimpleUploadedFile(name, data, content_type="text/csv")
    return client.put(feed_url(target), {"file": file, **fields}, format="multipart")


def test_a_multipart_upload_creates_the_feed_and_get_shows_five_rows(admin_api, target):
    created = upload(admin_api, target, mode="per_user")
    assert created.status_code == 201, created.content
    assert created.data["columns"] == ["username", "password"]
    assert created.data["row_count"] == 6
    assert created.data["mode"] == "per_user"
    assert created.data["filename"] == "users.csv"
    assert created.data["size_bytes"] == len(USERS_CSV)
    assert created.data["uploaded_by"] == "ada"
    shown = admin_api.get(feed_url(target))
    assert shown.status_code == 200
    assert shown.data["preview"] == [["alice", "a1"], ["bob", "b2"], ["carol", "c3"],
                                     ["dave", "d4"], ["erin", "e5"]]  # fmt: skip
    assert "frank" not in json.dumps(shown.data)  # never the whole file


def test_a_raw_csv_body_replaces_the_feed_and_keeps_the_mode_unless_given(admin_api, target):
    upload(admin_api, target, mode="random")
    replaced = admin_api.put(
        feed_url(target) + "?filename=ids.csv", b"id\n1\n2\n", content_type="text/csv"
    )
    assert replaced.status_code == 200, replaced.content
    assert (replaced.data["columns"], replaced.data["row_count"]) == (["id"], 2)
    assert replaced.data["mode"] == "random" and replaced.data["filename"] == "ids.csv"
    moded = admin_api.put(
        feed_url(target) + "?mode=sequential", b"id\n3\n", content_type="text/csv"
    )
    assert moded.data["mode"] == "sequential"
    assert DataFeed.objects.get(target=target).rows == [["3"]]


def test_patch_changes_the_mode_only(admin_api, target):
    upload(admin_api, target)
    changed = admin_api.patch(feed_url(target), {"mode": "random"}, format="json")
    assert changed.status_code == 200 and changed.data["mode"] == "random"
    assert changed.data["row_count"] == 6
    for body in ({"mode": "shuffle"}, {"mode": "random", "rows": []}, {}, ["random"]):
        refused = admin_api.patch(feed_url(target), body, format="json")
        assert refused.status_code == 400, body
        assert "mode" in refused.data
    assert "Unknown mode 'shuffle'; choose one of sequential, random, per_user." in str(
        admin_api.patch(feed_url(target), {"mode": "shuffle"}, format="json").data
    )


def test_delete_removes_it_and_a_target_without_a_feed_answers_404(admin_api, target):
    missing = admin_api.get(feed_url(target))
    assert missing.status_code == 404
    assert "has no data feed; PUT a CSV file" in missing.data["detail"]
    upload(admin_api, target)
    assert admin_api.delete(feed_url(target)).status_code == 204
    assert not DataFeed.objects.filter(target=target).exists()
    assert admin_api.delete(feed_url(target)).status_code == 404
    assert admin_api.patch(feed_url(target), {"mode": "random"}, format="json").status_code == 404
    assert admin_api.get("/api/targets/999999/feed/").status_code == 404


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is empty"),
        (b"a,b\n1,2\n1,2,3\n", "Line 3 has 3 fields; the header has 2 (a, b)."),
        (b"a,a\n1,2\n", "same name as column 1"),
        (b"id\n\x00\x00", "NUL byte"),
        (b"only,header\n", "only a header row"),
        ("id\n日本\n".encode("utf-16"), "NUL byte"),
    ],
)
def test_bad_files_are_400s_naming_the_problem_and_change_nothing(admin_api, target, data,
                                                                   expected):  # fmt: skip
    for response in (
        upload(admin_api, target, data),
        admin_api.put(feed_url(target), data, content_type="text/csv"),
    ):
        assert response.status_code == 400, response.content
        assert expected in response.data["file"][0]
    assert not DataFeed.objects.filter(target=target).exists()


@override_settings(FEED_MAX_BYTES=1024 * 1024)
def test_a_ten_megabyte_upload_is_a_400_naming_the_limit(admin_api, target):
    huge = b"id\n" + b"1234567\n" * (10 * 2**17)
    for response in (
        upload(admin_api, target, huge),
        admin_api.put(feed_url(target), huge, content_type="text/csv"),
    ):
        assert response.status_code == 400
        assert "at most 1,048,576 bytes (FEED_MAX_BYTES)" in response.data["file"][0]


def test_other_bodies_and_a_missing_file_field_are_explained(admin_api, target):
    as_json = admin_api.put(feed_url(target), {"rows": [[1]]}, format="json")
    assert as_json.status_code == 400
    assert "multipart/form-data (field 'file'" in as_json.data["file"][0]
    no_file = admin_api.put(feed_url(target), {"mode": "random"}, format="multipart")
    assert no_file.status_code == 400
    assert no_file.data["file"] == ["Attach the CSV file in the multipart field 'file'."]
    bad_mode = upload(admin_api, target, mode="x" * 10_000)
    assert bad_mode.status_code == 400 and "Unknown mode" in bad_mode.data["mode"][0]


def test_hostile_file_names_are_cut_to_their_base_name(admin_api, target):
    response = upload(admin_api, target, name="../../etc/" + "é\u202e" * 300 + ".csv")
    assert response.status_code == 201
    assert "/" not in response.data["filename"] and "\u202e" not in response.data["filename"]
    assert len(response.data["filename"]) <= 200


def test_viewers_and_operators_read_but_may_not_change_feeds(admin_api, api, viewer_api,
                                                             target):  # fmt: skip
    upload(admin_api, target)
    for client in (api, viewer_api):
        assert client.get(feed_url(target)).status_code == 200
        assert upload(client, target, b"id\n1\n").status_code == 403
        assert client.patch(feed_url(target), {"mode": "random"}, format="json").status_code == 403
        assert client.delete(feed_url(target)).status_code == 403
    assert DataFeed.objects.get(target=target).row_count == 6
    anonymous = api.__class__()
    assert anonymous.get(feed_url(target)).status_code in (401, 403)


def test_the_services_refuse_the_same_people(operator, target):
    with pytest.raises(PermissionDenied, match=r"loadtests\.change_target"):
        save_feed(target, USERS_CSV, user=operator)
    with pytest.raises(PermissionDenied):
        delete_feed(target, user=operator)


def test_changes_are_in_the_targets_history_without_values_and_audited(admin_api, target):
    upload(admin_api, target, mode="random")
    admin_api.patch(feed_url(target), {"mode": "per_user"}, format="json")
    admin_api.delete(feed_url(target))
    changes = list(ConfigChange.objects.filter(object_type="target", object_id=target.pk,
                                               field="feed").order_by("pk"))  # fmt: skip
    assert [(c.old_value is None, c.new_value is None) for c in changes] == [
        (True, False), (False, False), (False, True)]  # fmt: skip
    assert changes[0].new_value["columns"] == ["username", "password"]
    assert changes[0].new_value["row_count"] == 6 and changes[0].via == "api"
    assert changes[1].old_value["mode"] == "random" and changes[1].new_value["mode"] == "per_user"
    assert "alice" not in json.dumps([c.new_value for c in changes])
    history = admin_api.get(f"/api/targets/{target.pk}/history/")
    assert any(row["field"] == "feed" for row in history.data["results"])
    audited = AuditEntry.objects.filter(path=feed_url(target)).values_list("method", flat=True)
    assert sorted(audited) == ["DELETE", "PATCH", "PUT"]


def test_a_session_started_afterwards_carries_the_rows_in_its_plan(admin_api, target):
    upload(admin_api, target, mode="per_user")
    session = LoadTestSession.objects.create(session_name="s", target=target)
    plan = build_plan(session)
    assert plan.feed == FeedPlan(
        columns=("username", "password"),
        rows=(("alice", "a1"), ("bob", "b2"), ("carol", "c3"), ("dave", "d4"), ("erin", "e5"),
              ("frank", "f6")),
        mode="per_user",
        name="users.csv",
    )  # fmt: skip
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))).feed == plan.feed
    admin_api.delete(feed_url(target))
    assert build_plan(session).feed is None


def test_the_schema_documents_the_route(admin_api):
    schema = admin_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert set(paths["/api/targets/{id}/feed/"]) >= {"get", "put", "patch", "delete"}
