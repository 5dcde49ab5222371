"""Data feeds in the Django admin: uploaded with a mode through the services (history, audit),
a bad file explained beside the field, the rows never echoed whole, and the catalog's
permission required to change them (viewers and operators may look, not touch)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.sessions.models import AuditEntry, ConfigChange, DataFeed, Target

from ..support.users import persona

pytestmark = pytest.mark.django_db

ROWS = "".join(f"user{i},secret{i}\n" for i in range(1, 41))
CSV = ("username,password\n" + ROWS).encode()
ADD = reverse("admin:loadtests_datafeed_add")


def signed_in(role: str, name: str) -> Client:
    user = persona(name, role)
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def target(db) -> Target:
    return Target.objects.create(name="shop", base_url="http://127.0.0.1:8000")


def test_the_admin_role_uploads_a_feed_and_sees_its_summary_not_its_rows(target):
    client = signed_in("admin", "ada")
    page = client.post(
        ADD,
        {"target": target.pk, "mode": "random",
         "file": SimpleUploadedFile("users.csv", CSV, content_type="text/csv")},
    )  # fmt: skip
    assert page.status_code == 302, page.content.decode()[:3000]
    feed = DataFeed.objects.get(target=target)
    assert (feed.row_count, feed.mode, feed.filename) == (40, "random", "users.csv")
    assert ConfigChange.objects.get(object_type="target", field="feed").via == "admin"
    assert AuditEntry.objects.filter(path=ADD, method="POST").exists()

    change = client.get(reverse("admin:loadtests_datafeed_change", args=[feed.pk]))
    text = change.content.decode()
    assert change.status_code == 200
    assert "username, password" in text and "user5" in text  # the columns and first rows
    assert "user6" not in text and "secret40" not in text  # never the whole file
    listing = client.get(reverse("admin:loadtests_datafeed_changelist")).content.decode()
    assert "users.csv" in listing and "user1" not in listing


def test_a_change_without_a_file_changes_only_the_mode_and_a_new_file_replaces(target):
    client = signed_in("admin", "ada")
    client.post(ADD, {"target": target.pk, "mode": "sequential",
                      "file": SimpleUploadedFile("u.csv", CSV)})  # fmt: skip
    feed = DataFeed.objects.get(target=target)
    url = reverse("admin:loadtests_datafeed_change", args=[feed.pk])
    assert client.post(url, {"mode": "per_user"}).status_code == 302
    feed.refresh_from_db()
    assert (feed.mode, feed.row_count) == ("per_user", 40)
    replaced = client.post(
        url, {"mode": "per_user", "file": SimpleUploadedFile("v.csv", b"id\n7\n")}
    )
    assert replaced.status_code == 302
    feed.refresh_from_db()
    assert (feed.columns, feed.rows, feed.filename) == (["id"], [["7"]], "v.csv")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\n1,2\n1\n", "Line 3 has 1 field; the header has 2 (a, b)."),
        (b"", "Choose the CSV file"),  # an empty upload is no upload to Django's form
        (b"\x89PNG\r\n\x1a\n\x00\x00", "NUL byte"),
    ],
)
def test_a_bad_file_is_explained_beside_the_field_and_nothing_is_stored(target, data, expected):
    client = signed_in("admin", "ada")
    file = SimpleUploadedFile("bad.csv", data) if data else ""
    page = client.post(ADD, {"target": target.pk, "mode": "random", "file": file})
    assert page.status_code == 200
    assert expected in page.content.decode()
    assert not DataFeed.objects.exists()


def test_the_delete_goes_through_the_services(target):
    client = signed_in("admin", "ada")
    client.post(ADD, {"target": target.pk, "mode": "random",
                      "file": SimpleUploadedFile("u.csv", CSV)})  # fmt: skip
    feed = DataFeed.objects.get(target=target)
    page = client.post(reverse("admin:loadtests_datafeed_delete", args=[feed.pk]),
                       {"post": "yes"})  # fmt: skip
    assert page.status_code == 302
    assert not DataFeed.objects.exists()
    gone = ConfigChange.objects.filter(field="feed").order_by("pk").last()
    assert gone.old_value["filename"] == "u.csv" and gone.new_value is None


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operators_and_viewers_may_look_but_not_change(target, role):
    DataFeed.objects.create(target=target, filename="u.csv", columns=["id"], rows=[["1"]],
                            row_count=1)  # fmt: skip
    feed = DataFeed.objects.get()
    client = signed_in(role, "olga")
    assert client.get(reverse("admin:loadtests_datafeed_changelist")).status_code == 200
    assert client.get(ADD).status_code == 403
    url = reverse("admin:loadtests_datafeed_change", args=[feed.pk])
    assert client.post(url, {"mode": "random"}).status_code == 403
    assert client.post(reverse("admin:loadtests_datafeed_delete", args=[feed.pk]),
                       {"post": "yes"}).status_code == 403  # fmt: skip
    feed.refresh_from_db()
    assert feed.mode == "sequential"
