"""Webhooks: a real session's events reach a local receiver, signed; failed attempts are
retried with backoff and, once given up, recorded as the session's event; URLs that would
get round the load allow-list, and hostile input, are refused with a field message; only the
right roles manage them."""

import hashlib
import hmac
import json
import re
import socket
import time
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from kombu.exceptions import OperationalError

from apps.sessions.choices import WebhookEvent
from apps.sessions.integrations import webhooks
from apps.sessions.models import LoadTestSession, SessionEvent, Target, Webhook
from loadtest_project import celery_app

from ..support.servers import WebhookReceiver
from ..support.sessions import BRISK, create_session, make_target, start_load, wait_for_status
from ..support.waiting import assert_stays, wait_until

SECRET = "s3cr3t-webhook-key-0123"


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def verify(secret: str, request: dict) -> bool:
    """What a receiver does (the README's recipe): HMAC-SHA256 over "<timestamp>.<body>"."""
    timestamp = request["headers"]["X-Loadtest-Timestamp"]
    signed = timestamp.encode() + b"." + request["body"]
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request["headers"]["X-Loadtest-Signature"])


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_webhook(client, **fields):
    body = {"name": "hook", "events": ["started", "completed"], **fields}
    return client.post("/api/webhooks/", body, format="json")


# --- delivery, on real workers ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_sessions_start_and_end_reach_the_receiver_signed(
    api, admin_api, workers, counting_server, receiver, forget_redis_sessions
):
    created = new_webhook(
        admin_api, url=f"{receiver.base_url}/global?token=abc", secret=SECRET, name="global"
    )
    assert created.status_code == 201, created.json()
    assert "secret" not in created.json() and created.json()["has_secret"] is True

    session_id = start_load(api, counting_server, concurrent_users=3, duration_minutes="0.04",
                            **BRISK)  # fmt: skip
    slack = new_webhook(api, url=f"{receiver.base_url}/slack", format="slack",
                        events=["completed"], session=session_id)  # fmt: skip
    assert slack.status_code == 201, slack.json()
    session = wait_for_status(session_id)
    assert session.status == "completed", session.end_detail

    wait_until(lambda: len(receiver.requests("/global?token=abc")) >= 2, timeout_s=20)
    wait_until(lambda: receiver.requests("/slack"), timeout_s=20)
    delivered = receiver.requests("/global?token=abc")
    assert all(verify(SECRET, request) for request in delivered)
    assert not verify("another secret", delivered[0])
    bodies = {json.loads(request["body"])["event"]: json.loads(request["body"])
              for request in delivered}  # fmt: skip
    assert set(bodies) == {"started", "completed"}
    assert {request["headers"]["X-Loadtest-Event"] for request in delivered} == set(bodies)
    assert bodies["started"]["session"]["status"] == "running"
    done = bodies["completed"]["session"]
    assert done["id"] == session_id and done["status"] == "completed"
    assert done["end_reason"] == "completed"
    # Sent after the monitor's last copy: the summary's totals are the final ones.
    assert done["total_requests"] == counting_server.total > 0
    assert done["total_failures"] == 0 and done["error_rate"] == 0.0
    assert done["rps"] > 0 and done["p95_ms"] > 0
    assert done["url"] == f"http://loadtest.test/sessions/{session_id}/"

    (slack_request,) = receiver.requests("/slack")
    assert "X-Loadtest-Signature" not in slack_request["headers"]  # no secret, no signature
    text = json.loads(slack_request["body"])["text"]
    assert set(json.loads(slack_request["body"])) == {"text"}
    assert f"(#{session_id})" in text and "completed" in text
    assert f"<http://loadtest.test/sessions/{session_id}/|Open the session>" in text
    assert not SessionEvent.objects.filter(session_id=session_id, kind="webhook_failed").exists()
    assert SECRET not in workers.log_file()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_error_ceiling_is_announced_with_its_reason(
    api, workers, counting_server, receiver, forget_redis_sessions
):
    counting_server.statuses["/fail"] = 500
    target_id = make_target(api, counting_server, [("fail", "/fail", 1.0)])
    session_id = create_session(api, target_id, concurrent_users=3, duration_minutes="0.5",
                                max_errors_per_minute=5, **BRISK)  # fmt: skip
    hook = new_webhook(api, url=f"{receiver.base_url}/ceiling", session=session_id,
                       events=["error_ceiling_reached", "stopped"])  # fmt: skip
    assert hook.status_code == 201, hook.json()
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    session = wait_for_status(session_id)
    assert session.end_reason == "error_threshold", session.end_detail

    wait_until(lambda: len(receiver.requests()) >= 2, timeout_s=20)
    bodies = {json.loads(r["body"])["event"]: json.loads(r["body"]) for r in receiver.requests()}
    assert set(bodies) == {"error_ceiling_reached", "stopped"}
    assert "above max_errors_per_minute (5)" in bodies["error_ceiling_reached"]["detail"]
    assert bodies["stopped"]["session"]["end_reason"] == "error_threshold"
    assert bodies["stopped"]["session"]["error_rate"] == 1.0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_failed_thresholds_are_announced_live_and_at_the_end(
    api, workers, counting_server, receiver, forget_redis_sessions
):
    """An abort threshold that stops the session is told at once; one that fails only on the
    final figures is told at the end, without repeating the first."""
    target_id = make_target(api, counting_server)
    session_id = create_session(api, target_id, concurrent_users=3, duration_minutes=5,
                                thresholds=["requests < 30 abort", "rps > 5000"],
                                **BRISK)  # fmt: skip
    hook = new_webhook(api, url=f"{receiver.base_url}/thresholds", session=session_id,
                       events=["threshold_failed"])  # fmt: skip
    assert hook.status_code == 201, hook.json()
    assert api.post(f"/api/sessions/{session_id}/start/").status_code == 202
    assert wait_for_status(session_id, timeout_s=30).end_reason == "threshold_failed"

    wait_until(lambda: len(receiver.requests()) >= 2, timeout_s=20)
    assert_stays(lambda: len(receiver.requests()) == 2, 1.0, "No third notification")
    details = [json.loads(r["body"])["detail"] for r in receiver.requests()]
    assert len(details) == 2, details
    # Each observed figure with its unit, never a bare number.
    assert re.fullmatch(r"requests < 30 abort failed \(observed [0-9,]+ requests\)", details[0])
    assert re.fullmatch(r"rps > 5000 failed \(observed [0-9.,]+ requests/s\)", details[1])


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_receiver_failing_twice_gets_the_third_attempt(
    admin_api, workers, catalog_session, forget_redis_sessions
):
    receiver = WebhookReceiver(statuses=[500, 503]).start()
    try:
        hook = new_webhook(admin_api, url=f"{receiver.base_url}/flaky", secret=SECRET,
                           events=["stopped"])  # fmt: skip
        assert hook.status_code == 201, hook.json()
        started = time.monotonic()
        assert webhooks.notify(catalog_session.pk, WebhookEvent.STOPPED, "by a test") == 1

        wait_until(lambda: len(receiver.requests()) >= 3, timeout_s=20)
        assert_stays(lambda: len(receiver.requests()) == 3, 1.0, "No attempt after the success")
        attempts = receiver.requests()
    finally:
        receiver.stop()
    assert len(attempts) == 3
    assert time.monotonic() - started >= 0.6  # backed off 0.2 s, then 0.4 s
    assert len({request["body"] for request in attempts}) == 1  # the same body every time
    assert all(verify(SECRET, request) for request in attempts)
    assert json.loads(attempts[0]["body"])["detail"] == "by a test"
    # The failed attempts show as the session's event, once (rate-limited), with the status.
    (event,) = SessionEvent.objects.filter(session=catalog_session, kind="webhook_failed")
    assert "HTTP 500" in event.message and "retrying" in event.message


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_dead_receiver_ends_in_a_webhook_failed_event(
    admin_api, workers, catalog_session, forget_redis_sessions
):
    url = f"http://127.0.0.1:{free_port()}/hook?token=query-secret-42"
    hook = new_webhook(admin_api, url=url, secret=SECRET, events=["failed"], name="pager")
    assert hook.status_code == 201, hook.json()
    webhooks.notify(catalog_session.pk, WebhookEvent.FAILED)

    def gave_up():
        return SessionEvent.objects.filter(
            session=catalog_session, kind="webhook_failed", message__contains="gave up"
        ).first()

    event = wait_until(gave_up, timeout_s=30)
    assert "could not connect" in event.message and "4 attempt(s)" in event.message
    assert "'pager'" in event.message
    messages = " ".join(
        SessionEvent.objects.filter(session=catalog_session).values_list("message", flat=True)
    )
    assert "query-secret-42" not in messages and "/hook" not in messages
    assert "query-secret-42" not in workers.log_file()
    assert SECRET not in workers.log_file()


@pytest.fixture
def catalog_session(db):
    target = Target.objects.create(name="hooked", base_url="http://127.0.0.1:5001")
    return LoadTestSession.objects.create(session_name="hooked session", target=target)


# --- what is sent, without workers -----------------------------------------------------------


def test_signature_covers_timestamp_and_body():
    body = '{"event": "started"}'
    signature = webhooks.sign("key", 1700000000, body)
    expected = hmac.new(b"key", b"1700000000." + body.encode(), hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert webhooks.sign("key", 1700000001, body) != signature
    assert webhooks.sign("key", 1700000000, body + " ") != signature


@pytest.mark.django_db
def test_slack_body_is_text_with_escaped_name_and_a_link(catalog_session):
    catalog_session.session_name = "<!channel> & co"
    catalog_session.save()
    summary = webhooks.session_summary(catalog_session)
    body = json.loads(webhooks.render_body("slack", "failed", summary, "", None))
    assert list(body) == ["text"]
    assert "&lt;!channel&gt; &amp; co" in body["text"] and "<!channel>" not in body["text"]
    assert "0 requests, 0 requests/s, 0 % errors, p95 n/a" in body["text"]  # units on each
    assert body["text"].endswith(f"/sessions/{catalog_session.pk}/|Open the session>")


@pytest.mark.django_db
def test_notify_never_raises_when_the_broker_is_down(catalog_session, monkeypatch, caplog):
    Webhook.objects.create(name="h", url="https://hooks.example.com/x", events=["stopped"])

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(celery_app, "send_task", broker_down)
    assert webhooks.notify(catalog_session.pk, WebhookEvent.STOPPED) == 0
    assert "could not queue webhook 'h' (https://hooks.example.com)" in caplog.text


@pytest.mark.django_db
def test_only_enabled_webhooks_of_the_session_or_global_that_asked_are_notified(
    catalog_session, monkeypatch
):
    other = LoadTestSession.objects.create(session_name="other", target=catalog_session.target)
    url = "https://hooks.example.com/x"
    Webhook.objects.create(name="global", url=url, events=["stopped"])
    Webhook.objects.create(name="mine", url=url, events=["stopped"], session=catalog_session)
    Webhook.objects.create(name="theirs", url=url, events=["stopped"], session=other)
    Webhook.objects.create(name="off", url=url, events=["stopped"], enabled=False)
    Webhook.objects.create(name="deaf", url=url, events=["started"])
    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args, **kw: sent.append(args))
    assert webhooks.notify(catalog_session.pk, WebhookEvent.STOPPED) == 2
    names = {Webhook.objects.get(pk=args[0]).name for args in sent}
    assert names == {"global", "mine"}
    assert all(SECRET not in json.dumps(args) for args in sent)


# --- URL rules and hostile input -------------------------------------------------------------


@pytest.mark.django_db
@override_settings(ALLOWED_TARGET_HOSTS=["localhost:5001", ".internal.example:8080"])
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.example.com/", "http://"),
        ("javascript:alert(1)", "http://"),
        ("hooks.example.com/x", "http://"),
        ("", "blank"),
        ("http://", "no host"),
        ("http://user:pw@hooks.example.com/", "credentials"),
        ("http://hooks.example.com:99999/", "valid URL"),
        ("http://hooks.example.com/\nX-Injected: 1", "line"),
        (" http://hooks.example.com/", "space"),
        ("http://hööks.example/", "xn--"),
        ("http://example.com/" + "a" * 3000, "2000"),
        ("http://localhost:6379/", "allow-list"),  # Redis, on a host load goes to
        ("http://LOCALHOST.:5432/", "allow-list"),
        ("http://db.internal.example:5432/", "allow-list"),  # a listed domain's subdomain
        ("http://shop.test:9000/", "allow-list"),  # an existing target's host
        # Other spellings of localhost, found by a new-user pass: the same machine.
        ("http://127.1:8999/hook", "allow-list"),
        ("http://0.0.0.0:8999/hook", "allow-list"),
        ("http://2130706433:8999/hook", "allow-list"),
        ("http://0x7f.0.0.1:8999/hook", "allow-list"),
        ("http://127.0.0.2:8999/hook", "allow-list"),
        ("http://[::1]:6379/", "allow-list"),
        ("http://[::ffff:127.0.0.1]:6379/", "allow-list"),
        (f"http://{socket.gethostname()}:8999/hook", "allow-list"),
    ],
)
def test_forbidden_and_hostile_urls_are_refused_naming_the_field(admin_api, url, words):
    Target.objects.create(name="legacy", base_url="http://shop.test:8000")  # listed once
    response = new_webhook(admin_api, url=url)
    assert response.status_code == 400, response.content
    message = " ".join(response.json()["url"])
    assert words in message, message
    assert not Webhook.objects.exists()


def hosts_file_alias_of_this_machine() -> str:
    """A name the hosts file maps to loopback that is neither localhost nor this machine's
    own name (``localhost.localdomain``, a container's aliases): only resolving tells it is
    this machine. Without one, this machine's name (which was caught before item 9 too)."""
    plain = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
    try:
        lines = Path("/etc/hosts").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        address, *names = line.partition("#")[0].split() or [""]
        if address.startswith("127.") or address == "::1":
            for name in names:
                name = name.lower()
                if name not in plain and not name.endswith(".localhost"):
                    return name
    return socket.gethostname()


@pytest.mark.django_db
@override_settings(ALLOWED_TARGET_HOSTS=["localhost:5001"])
def test_a_hosts_file_alias_of_this_machine_is_refused_at_save(admin_api):
    # Issue 22, item 9: the alias passed the check and the hook went to the port.
    response = new_webhook(admin_api, url=f"http://{hosts_file_alias_of_this_machine()}:6379/")
    assert response.status_code == 400, response.content
    assert "allow-list" in " ".join(response.json()["url"])
    assert not Webhook.objects.exists()


@pytest.mark.django_db
@override_settings(ALLOWED_TARGET_HOSTS=["localhost:5001"])
def test_a_hosts_file_alias_saved_before_is_refused_at_delivery(receiver, catalog_session):
    url = f"http://{hosts_file_alias_of_this_machine()}:{receiver.port}/hook"
    # Saved as an older release allowed it: the row is written without today's check.
    (hook,) = Webhook.objects.bulk_create([Webhook(name="alias", url=url, events=["stopped"])])
    assert webhooks.deliver(hook.pk, catalog_session.pk, "stopped", "{}", 0) is None
    event = SessionEvent.objects.get(session=catalog_session, kind="webhook_failed")
    assert "URL refused" in event.message and "allow-list" in event.message
    assert receiver.requests() == []


@pytest.mark.django_db
@override_settings(ALLOWED_TARGET_HOSTS=["localhost:5001"])
@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "http://localhost:5001/hooks/loadtest",  # allowed like a target
        "http://receiver.example:9000/hook",  # a host load never goes to
        "http://10.1.2.3:9000/hook",
    ],
)
def test_allowed_urls(admin_api, url):
    response = new_webhook(admin_api, url=url)
    assert response.status_code == 201, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"events": []}, "events"),
        ({"events": ["nope"]}, "events"),
        ({"events": "started"}, "events"),
        ({"events": [1, None]}, "events"),
        ({"events": ["started", "started"]}, "events"),
        ({"events": ["started"] * 100_000}, "events"),
        ({"format": "xml"}, "format"),
        ({"name": "a\nb"}, "name"),
        ({"name": "x" * 1000}, "name"),
        ({"name": ""}, "name"),
        ({"secret": "x" * 10_000}, "secret"),
        ({"secret": "line\u2028break"}, "secret"),
        ({"session": 10**30}, "session"),
        ({"session": "1.5"}, "session"),
        ({"enabled": "maybe"}, "enabled"),
    ],
)
def test_hostile_fields_get_a_400_naming_the_field(admin_api, fields, field):
    body = {"url": "https://hooks.example.com/x", **fields}
    response = new_webhook(admin_api, **body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


# --- who may manage them ---------------------------------------------------------------------


@pytest.mark.django_db
def test_roles(api, admin_api, viewer_api, catalog_session):
    url = "https://hooks.example.com/x"
    # A viewer sees no webhook (a URL may be a credential) and changes none.
    assert viewer_api.get("/api/webhooks/").status_code == 403
    assert new_webhook(viewer_api, url=url, session=catalog_session.pk).status_code == 403
    # An operator manages a session's webhooks, not global ones.
    assert new_webhook(api, url=url).status_code == 403
    assert new_webhook(api, url=url, session=None).status_code == 403
    mine = new_webhook(api, url=url, session=catalog_session.pk)
    assert mine.status_code == 201, mine.json()
    hook_id = mine.json()["id"]
    moved = api.patch(f"/api/webhooks/{hook_id}/", {"session": None}, format="json")
    assert moved.status_code == 403
    assert viewer_api.delete(f"/api/webhooks/{hook_id}/").status_code == 403
    # The admin role manages global ones.
    glob = new_webhook(admin_api, url=url)
    assert glob.status_code == 201, glob.json()
    assert api.get("/api/webhooks/").status_code == 200
    assert api.delete(f"/api/webhooks/{glob.json()['id']}/").status_code == 403
    assert api.patch(f"/api/webhooks/{glob.json()['id']}/", {"enabled": False},
                     format="json").status_code == 403  # fmt: skip
    assert api.delete(f"/api/webhooks/{hook_id}/").status_code == 204
    assert admin_api.delete(f"/api/webhooks/{glob.json()['id']}/").status_code == 204


@pytest.mark.django_db
def test_the_secret_is_write_only_and_only_fingerprinted_in_the_history(admin_api):
    created = new_webhook(admin_api, url="https://hooks.example.com/a?key=url-secret-1",
                          secret=SECRET)  # fmt: skip
    hook_id = created.json()["id"]
    changed = admin_api.patch(
        f"/api/webhooks/{hook_id}/",
        {"secret": "another-secret-456", "url": "https://hooks.example.com/b?key=url-secret-2"},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert "secret" not in changed.json() and changed.json()["has_secret"] is True
    assert Webhook.objects.get(pk=hook_id).secret == "another-secret-456"
    listed = admin_api.get(f"/api/webhooks/{hook_id}/history/")
    assert listed.status_code == 200
    history = json.dumps(listed.json()["results"])
    assert '"secret"' in history and '"url"' in history  # both changes recorded
    for secret in (SECRET, "another-secret-456", "url-secret-1", "url-secret-2"):
        assert secret not in history
    # Omitted, the secret stays; "" removes it.
    admin_api.patch(f"/api/webhooks/{hook_id}/", {"name": "renamed"}, format="json")
    assert Webhook.objects.get(pk=hook_id).secret == "another-secret-456"
    admin_api.patch(f"/api/webhooks/{hook_id}/", {"secret": ""}, format="json")
    assert Webhook.objects.get(pk=hook_id).secret == ""


# --- the admin -------------------------------------------------------------------------------


def admin_form(**fields) -> dict:
    return {"name": "hook", "url": "https://hooks.example.com/x", "secret": "",
            "events": '["completed"]', "format": "json", "session": "", "enabled": "on",
            **fields}  # fmt: skip


@pytest.mark.django_db
def test_admin_masks_the_secret_and_keeps_it_when_left_empty(client, administrator):
    administrator.is_staff = True
    administrator.save()
    client.force_login(administrator)
    added = client.post(reverse("admin:loadtests_webhook_add"), admin_form(secret=SECRET))
    assert added.status_code == 302, added.context["adminform"].form.errors
    hook = Webhook.objects.get()
    assert hook.secret == SECRET and hook.created_by == administrator
    page = client.get(reverse("admin:loadtests_webhook_change", args=[hook.pk]))
    assert SECRET not in page.content.decode()
    changed = client.post(
        reverse("admin:loadtests_webhook_change", args=[hook.pk]), admin_form(name="renamed")
    )
    assert changed.status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.secret) == ("renamed", SECRET)
    refused = client.post(reverse("admin:loadtests_webhook_add"),
                          admin_form(url="http://u:p@hooks.example.com/"))  # fmt: skip
    assert "url" in refused.context["adminform"].form.errors


@pytest.mark.django_db
def test_admin_refuses_an_operator_a_global_webhook(client, operator, catalog_session):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    refused = client.post(reverse("admin:loadtests_webhook_add"), admin_form())
    assert "session" in refused.context["adminform"].form.errors
    allowed = client.post(
        reverse("admin:loadtests_webhook_add"), admin_form(session=catalog_session.pk)
    )
    assert allowed.status_code == 302
    assert list(Webhook.objects.values_list("session_id", flat=True)) == [catalog_session.pk]
