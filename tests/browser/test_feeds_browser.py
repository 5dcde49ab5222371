"""The Targets page in a real browser on the real web process: an admin uploads a CSV as the
target's data feed, sees its columns, rows and first rows, is told what is wrong with a bad
file, changes the mode and deletes it after confirming; a viewer sees it read-only."""

import pytest
from playwright.sync_api import expect

from apps.sessions.models import DataFeed, Endpoint, Target

from ..support.browser import screenshot, sign_in
from ..support.users import persona

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CSV = "username,password\n" + "".join(f"user{i},pw{i}\n" for i in range(1, 13))


def test_an_admin_uploads_a_feed_and_a_viewer_reads_it(dashboard_web, chromium, tmp_path):
    persona("ada", "admin")
    persona("vic", "viewer")
    target = Target.objects.create(name="shop", base_url="http://127.0.0.1:5001")
    Endpoint.objects.create(target=target, name="login", url="/login", method="POST")
    good = tmp_path / "users.csv"
    good.write_text(CSV)
    bad = tmp_path / "bad.csv"
    bad.write_text("username,password\nalice\n")

    page = sign_in(chromium, dashboard_web, "ada", "ada-pw-42")
    page.get_by_role("link", name="Targets").click()
    page.get_by_role("link", name="shop").click()
    expect(page.get_by_test_id("feed-none")).to_be_visible()
    expect(page.get_by_test_id("target-endpoints")).to_contain_text("/login")

    upload = page.get_by_test_id("feed-upload")
    upload.get_by_label("CSV file").set_input_files(str(bad))
    upload.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("feed-problems")).to_contain_text(
        "Line 2 has 1 field; the header has 2 (username, password)."
    )
    assert not DataFeed.objects.exists()

    upload = page.get_by_test_id("feed-upload")
    upload.get_by_label("CSV file").set_input_files(str(good))
    upload.get_by_label("Mode").select_option("per_user")
    upload.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("alert").first).to_contain_text("Data feed users.csv stored: 12 rows")
    expect(page.get_by_test_id("feed-columns")).to_have_text("username, password")
    expect(page.get_by_test_id("feed-rows")).to_have_text("12")
    expect(page.get_by_test_id("feed-mode")).to_have_text("per_user")
    preview = page.get_by_test_id("feed-preview").locator("tbody tr")
    expect(preview).to_have_count(5)
    expect(preview.first).to_have_text("user1pw1")
    screenshot(page, "target-feed")

    modes = page.get_by_test_id("feed-mode-form")
    modes.get_by_label("Mode").select_option("random")
    modes.get_by_role("button", name="Change mode").click()
    expect(page.get_by_test_id("feed-mode")).to_have_text("random")

    viewer = sign_in(chromium, dashboard_web, "vic", "vic-pw-42")
    viewer.goto(dashboard_web.url(f"/targets/{target.pk}/"))
    expect(viewer.get_by_test_id("feed-columns")).to_have_text("username, password")
    expect(viewer.get_by_test_id("feed-read-only")).to_be_visible()
    expect(viewer.get_by_test_id("feed-upload")).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete the data feed").click()
    expect(page.get_by_test_id("feed-mode")).to_have_text("random")  # still there
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete the data feed").click()
    expect(page.get_by_test_id("feed-none")).to_be_visible()
    assert not DataFeed.objects.exists()
