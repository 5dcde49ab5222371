"""The Targets pages as Django renders them (real database, CSRF enforced): the list, a
target's endpoints and data feed, and the feed's upload, mode and delete forms, open to the
catalog's permission only and acting through the services (history ``via: page``, an
audit entry each); viewers see the page read-only."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.sessions.models import AuditEntry, ConfigChange, DataFeed, Endpoint, Target

from ..support.users import persona

pytestmark = pytest.mark.django_db

CSV = b"username,password\n" + b"".join(b"user%d,pw%d\n" % (i, i) for i in range(1, 9))


@pytest.fixture
def target(db) -> Target:
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="login", url="/login", method="POST", weight=2,
                            expected_statuses="200-299,302")  # fmt: skip
    Endpoint.objects.create(target=target, name="home", url="/", weight=1)
    return target


def browser_as(role: str, name: str) -> Client:
    """A client signed in as a new user of ``role`` whose forms must carry the CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(persona(name, role))
    return client


def post_form(client: Client, path: str, data: dict):
    page = client.get(path)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    return client.post(path, {**data, "csrfmiddlewaretoken": token.group(1) if token else ""})


def test_the_list_shows_targets_their_endpoint_counts_and_feeds(target):
    DataFeed.objects.create(target=target, filename="u.csv", columns=["id"], rows=[["1"]],
                            row_count=1, mode="random")  # fmt: skip
    Target.objects.create(name="bare", base_url="http://127.0.0.1:5002")
    page = browser_as("viewer", "vera").get("/targets/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "u.csv: 1 rows, random" in text and "none" in text
    assert f'href="/targets/{target.pk}/"' in text
    assert 'href="/targets/">Targets</a>' in text  # in the navigation


def test_the_detail_shows_endpoints_and_the_feed_read_only_for_a_viewer(target):
    DataFeed.objects.create(target=target, filename="u.csv", columns=["username", "password"],
                            rows=[[f"user{i}", "x"] for i in range(1, 9)], row_count=8)  # fmt: skip
    page = browser_as("viewer", "vera").get(f"/targets/{target.pk}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "<code>/login</code>" in text and "200-299,302" in text and "POST" in text
    assert "username, password" in text and "user5" in text and "user6" not in text
    assert "feed-read-only" in text and 'name="file"' not in text and "feed-delete" not in text


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_the_catalogs_permission_may_post(target, role):
    client = browser_as(role, "olga")
    for data in ({"action": "upload", "file": SimpleUploadedFile("u.csv", CSV)},
                 {"action": "delete"}):  # fmt: skip
        assert post_form(client, f"/targets/{target.pk}/", data).status_code == 403
    assert not DataFeed.objects.exists()
    assert AuditEntry.objects.filter(status_code=403, path=f"/targets/{target.pk}/").exists()


def test_an_admin_uploads_changes_the_mode_and_deletes(target):
    client = browser_as("admin", "ada")
    path = f"/targets/{target.pk}/"
    uploaded = post_form(client, path, {"action": "upload", "mode": "per_user",
                                        "file": SimpleUploadedFile("users.csv", CSV)})  # fmt: skip
    assert uploaded.status_code == 302
    feed = DataFeed.objects.get(target=target)
    assert (feed.row_count, feed.mode, feed.filename) == (8, "per_user", "users.csv")
    page = client.get(path).content.decode()
    assert "Data feed users.csv stored: 8 rows of username, password, mode per_user." in page
    assert post_form(client, path, {"action": "mode", "mode": "random"}).status_code == 302
    assert DataFeed.objects.get().mode == "random"
    assert post_form(client, path, {"action": "delete"}).status_code == 302
    assert not DataFeed.objects.exists()
    vias = set(ConfigChange.objects.filter(field="feed").values_list("via", flat=True))
    assert vias == {"page"}
    actions = AuditEntry.objects.filter(path=path).values_list("action", "status_code")
    assert sorted(actions) == sorted(
        [(f"feed {verb} target {target.pk}", 200) for verb in ("upload", "mode", "delete")]
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"file": SimpleUploadedFile("bad.csv", b"a,b\n1\n")}, "Line 2 has 1 field"),
        ({"file": SimpleUploadedFile("bad.csv", b"\x00")}, "NUL byte"),
        ({}, "Choose a CSV file to upload."),
        ({"file": SimpleUploadedFile("u.csv", CSV), "mode": "shuffle"}, "Unknown mode"),
    ],
)
def test_a_bad_upload_is_explained_on_the_page(target, data, expected):
    page = post_form(browser_as("admin", "ada"), f"/targets/{target.pk}/",
                     {"action": "upload", **data})  # fmt: skip
    assert page.status_code == 400
    assert expected in page.content.decode()
    assert not DataFeed.objects.exists()


def test_unknown_targets_and_anonymous_visitors(target):
    assert browser_as("viewer", "vera").get("/targets/999999/").status_code == 404
    anonymous = Client().get("/targets/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
