"""The admin is a control surface like the API: the same services, the same roles.

A running session cannot be deleted from its delete page or the bulk action (its row is what
lets anyone stop its load); a viewer neither sees nor can post the start and stop actions;
the admin role cannot make anyone superuser or touch a superuser's account.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from apps.sessions.errors import SessionStateError
from apps.sessions.lifecycle.editing import clone_session, delete_session, update_session
from apps.sessions.lifecycle.start import start_session
from apps.sessions.lifecycle.stop import emergency_stop, stop_session
from apps.sessions.models import (
    ConfigChange,
    Endpoint,
    EndpointStats,
    ErrorSample,
    LoadTestSession,
    SessionEvent,
    Target,
)
from apps.workers.control import SessionKeys, read_assignments

from ..support.admin_page import CHANGELIST, logged_in, run_action
from ..support.sessions import wait_for_status
from ..support.waiting import assert_stays, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_S = 3.0  # no request may reach the target for this long once the load is stopped


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "root-pw-42")


def messages_of(response) -> str:
    return " | ".join(str(message) for message in response.context["messages"])


def action_names(response) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def delete_page(session) -> str:
    return reverse("admin:loadtests_loadtestsession_delete", args=[session.pk])


def change_page(session) -> str:
    return reverse("admin:loadtests_loadtestsession_change", args=[session.pk])


def inline_management_forms(**extra) -> dict:
    """What the change page's read-only inlines (statistics, events) post back."""
    data = {}
    for prefix in ("endpoint_stats", "events"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    return {**data, **extra}


def new_session(base_url: str, **config) -> LoadTestSession:
    target = Target.objects.create(name=f"t-{time.monotonic_ns()}", base_url=base_url)
    Endpoint.objects.create(target=target, name="ping", url="/ping")
    return LoadTestSession.objects.create(
        session_name="admin-made",
        target=target,
        concurrent_users=2,
        request_interval_min=0.05,
        request_interval_max=0.1,
        duration_minutes=0,
        **config,
    )


def assert_quiet(server) -> None:
    before = server.total
    assert_stays(lambda: server.total == before, QUIET_S, "No request after the load stopped")


# --- deleting ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_running_session_is_not_deleted_from_the_admin_until_stopped(
    root, workers, counting_server, forget_redis_sessions
):
    client = logged_in(root)
    session = new_session(counting_server.base_url)
    pending = new_session(counting_server.base_url)
    run_action(client, "start_sessions", session)
    wait_for_status(session.pk, {"running"}, timeout_s=15)
    wait_until(lambda: counting_server.total > 10, timeout_s=10)

    change_page = client.get(reverse("admin:loadtests_loadtestsession_change", args=[session.pk]))
    assert change_page.status_code == 200
    assert delete_page(session) not in change_page.content.decode()  # no Delete link offered
    confirmation = client.get(delete_page(session), follow=True)
    assert "stop it first" in messages_of(confirmation)
    refused = client.post(delete_page(session), {"post": "yes"}, follow=True)
    assert "stop it first" in messages_of(refused)
    bulk = run_action(client, "delete_selected", session, pending)
    assert "Nothing was deleted" in messages_of(bulk)

    assert LoadTestSession.objects.get(pk=session.pk).status == "running"
    assert LoadTestSession.objects.filter(pk=pending.pk).exists()  # the batch is refused whole
    still_sending = counting_server.total
    wait_until(lambda: counting_server.total > still_sending, timeout_s=5)

    run_action(client, "stop_sessions", session)
    wait_for_status(session.pk, {"stopped"}, timeout_s=20)
    stopped_page = client.get(reverse("admin:loadtests_loadtestsession_change", args=[session.pk]))
    assert delete_page(session) in stopped_page.content.decode()  # offered once it has stopped
    deleted = client.post(delete_page(session), {"post": "yes"}, follow=True)
    assert "deleted successfully" in messages_of(deleted)
    assert not LoadTestSession.objects.filter(pk=session.pk).exists()
    assert_quiet(counting_server)


def test_pending_sessions_are_deleted_from_the_page_and_in_bulk(root):
    client = logged_in(root)
    one, two, three = (new_session("http://127.0.0.1:9") for _ in range(3))

    assert client.get(delete_page(one)).status_code == 200  # the confirmation page
    assert client.post(delete_page(one), {"post": "yes"}).status_code == 302
    bulk = run_action(client, "delete_selected", two, three)

    assert "Successfully deleted 2" in messages_of(bulk)
    assert not LoadTestSession.objects.filter(pk__in=[one.pk, two.pk, three.pk]).exists()


def test_an_operator_deletes_a_finished_session_with_its_results(operator):
    """The result tables are read-only in the admin; their rows go with their session."""
    session = new_session("http://127.0.0.1:9", status="stopped", end_time=timezone.now())
    EndpointStats.objects.create(session=session, name="ping", method="GET", url="/ping")
    SessionEvent.objects.create(session=session, at=timezone.now(), kind="load_reduced",
                                message="reduced")  # fmt: skip
    ErrorSample.objects.create(session=session, at=timezone.now(), endpoint="ping",
                               failure_class="http_5xx", status=500, message="boom")  # fmt: skip

    response = logged_in(operator).post(delete_page(session), {"post": "yes"})

    assert response.status_code == 302
    assert not LoadTestSession.objects.filter(pk=session.pk).exists()
    assert not SessionEvent.objects.filter(session_id=session.pk).exists()


def test_delete_goes_by_the_stored_status_not_the_callers_copy(operator):
    stale = new_session("http://127.0.0.1:9")  # pending, as this copy says
    LoadTestSession.objects.filter(pk=stale.pk).update(status="running")  # started meanwhile

    with pytest.raises(SessionStateError, match="stop it first"):
        delete_session(stale, user=operator)
    assert LoadTestSession.objects.filter(pk=stale.pk).exists()


# --- roles ------------------------------------------------------------------------------------


def test_a_viewer_neither_sees_nor_can_post_session_actions(viewer, forget_redis_sessions):
    client = logged_in(viewer)
    session = new_session("http://127.0.0.1:9")

    changelist = client.get(reverse(CHANGELIST))
    assert changelist.status_code == 200
    assert not action_names(changelist) & {"start_sessions", "stop_sessions", "delete_selected"}
    for action in ("start_sessions", "stop_sessions", "delete_selected"):
        run_action(client, action, session)
    changed = client.post(change_page(session), inline_management_forms(concurrent_users=7))
    deleted = client.post(delete_page(session), {"post": "yes"})

    assert (changed.status_code, deleted.status_code) == (403, 403)
    session.refresh_from_db()
    assert (session.status, session.concurrent_users, session.start_time) == ("pending", 2, None)
    assert not LoadTestSession.objects.get(pk=session.pk).plan


def test_an_operator_sees_the_session_actions(operator):
    changelist = logged_in(operator).get(reverse(CHANGELIST))
    assert {"start_sessions", "stop_sessions", "delete_selected"} <= action_names(changelist)


def test_services_refuse_a_user_without_the_permission(viewer, forget_redis_sessions):
    session = new_session("http://127.0.0.1:9")
    calls = {
        "start": lambda user: start_session(session, user=user),
        "stop": lambda user: stop_session(session, user=user),
        "change": lambda user: update_session(session, {"concurrent_users": 3}, user),
        "clone": lambda user: clone_session(session, user=user),
        "delete": lambda user: delete_session(session, user=user),
        "emergency stop": lambda user: emergency_stop(user=user),
    }
    for name, call in calls.items():
        with pytest.raises(PermissionDenied, match="Your role does not allow"):
            call(viewer)
        assert LoadTestSession.objects.get(pk=session.pk).status == "pending", name
    assert LoadTestSession.objects.count() == 1  # no clone either

    update_session(session, {"concurrent_users": 3})  # None: the system itself
    assert LoadTestSession.objects.get(pk=session.pk).concurrent_users == 3


def test_the_admin_creates_and_edits_a_session_through_the_services(operator):
    client = logged_in(operator)
    target = new_session("http://127.0.0.1:9").target
    form = {
        "session_name": "from the form",
        "target": target.pk,
        "concurrent_users": 4,
        "duration_minutes": "0.5",
        "request_interval_min": 1,
        "request_interval_max": 2,
        "endpoint_weights": "{}",
        "max_errors_per_minute": 100,
        "ramp_up_seconds": 0,
    }
    added = client.post(reverse("admin:loadtests_loadtestsession_add"),
                        inline_management_forms(**form))  # fmt: skip
    assert added.status_code == 302
    session = LoadTestSession.objects.get(session_name="from the form")
    assert session.created_by == operator

    changed = client.post(change_page(session),
                          inline_management_forms(**{**form, "concurrent_users": 6}))  # fmt: skip
    assert changed.status_code == 302
    (change,) = ConfigChange.objects.filter(object_type="session", object_id=session.pk)
    assert (change.field, change.old_value, change.new_value) == ("concurrent_users", 4, 6)
    assert (change.changed_by, change.via) == (operator, "admin")


@pytest.mark.integration
def test_an_operator_runs_a_session_from_the_admin_and_changes_its_users_live(
    operator, workers, counting_server, redis_client, forget_redis_sessions
):
    client = logged_in(operator)
    session = new_session(counting_server.base_url)

    run_action(client, "start_sessions", session)
    wait_for_status(session.pk, {"running"}, timeout_s=15)
    form = client.get(change_page(session)).context["adminform"].form
    # The rest is what runs; tags are labels, editable at any status.
    assert list(form.fields) == ["concurrent_users", "tags"]
    changed = client.post(change_page(session), inline_management_forms(concurrent_users=4))
    assert changed.status_code == 302
    users = sum(a.users for a in read_assignments(redis_client, session.pk).values())
    assert users == 4
    assert SessionEvent.objects.filter(session=session, kind="users_changed").exists()
    wait_until(lambda: counting_server.total > 10, timeout_s=10)
    run_action(client, "stop_sessions", session)
    session = wait_for_status(session.pk, timeout_s=20)

    assert (session.status, session.concurrent_users) == ("stopped", 4)
    assert session.started_by == session.stopped_by == operator
    # The monitor forgets the Redis state just after recording the final status.
    wait_until(lambda: not redis_client.exists(SessionKeys(session.pk).plan), timeout_s=10)


# --- users ------------------------------------------------------------------------------------


def user_form(user, **changes) -> dict:
    """The admin's user change form as its page would post it back."""
    joined = timezone.localtime(user.date_joined)
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [group.pk for group in user.groups.all()],
        "date_joined_0": joined.date().isoformat(),
        "date_joined_1": joined.time().strftime("%H:%M:%S"),
        **changes,
    }


def user_page(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


@pytest.mark.parametrize("whom", ["itself", "another user"])
def test_the_admin_role_cannot_make_anyone_superuser(administrator, viewer, whom):
    client = logged_in(administrator)
    user = administrator if whom == "itself" else viewer
    permission = Permission.objects.get(codename="emergency_stop")
    form = user_form(user, first_name="Renamed", is_superuser="on",
                     user_permissions=[permission.pk])  # fmt: skip

    response = client.post(user_page(user), form)

    assert response.status_code == 302  # saved: the other fields did change
    user.refresh_from_db()
    assert user.first_name == "Renamed"
    assert not user.is_superuser
    assert not user.user_permissions.exists()


def test_the_admin_role_cannot_change_a_superuser(administrator, root):
    client = logged_in(administrator)
    password = reverse("admin:auth_user_password_change", args=[root.pk])

    changed = client.post(user_page(root), user_form(root, is_staff="", first_name="Mallory"))
    taken_over = {"password1": "Taken-over-42", "password2": "Taken-over-42"}
    new_password = client.post(password, {**taken_over, "usable_password": "true"})
    deleted = client.post(reverse("admin:auth_user_delete", args=[root.pk]), {"post": "yes"})

    assert (changed.status_code, new_password.status_code, deleted.status_code) == (403,) * 3
    root.refresh_from_db()
    assert root.is_superuser and root.is_staff and root.first_name == ""
    assert root.check_password("root-pw-42")


def test_a_superuser_can_grant_superuser_status(root, viewer):
    response = logged_in(root).post(user_page(viewer), user_form(viewer, is_superuser="on"))
    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.is_superuser


def test_refusals_are_pages_a_person_can_read(viewer, settings):
    """A refused role gets the reason, not a bare "403 Forbidden"; an oversized form gets
    what the limit is, not a bare "Bad Request (400)"."""
    settings.DEBUG = False
    session = new_session("http://127.0.0.1:9")
    client = logged_in(viewer)

    forbidden = client.get(delete_page(session))
    assert forbidden.status_code == 403
    assert "Not allowed" in forbidden.content.decode()

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    too_big = client.post(reverse("admin:loadtests_loadtestsession_changelist"), {"q": "x" * 4096})
    assert too_big.status_code == 400
    assert "MAX_REQUEST_BODY_BYTES" in too_big.content.decode()
    assert LoadTestSession.objects.filter(pk=session.pk).exists()
