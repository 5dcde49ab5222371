"""Webhooks: telling other systems (a chat, a CI job, an on-call tool) what a session did.

The control plane calls ``notify`` where a session's status changes and where the monitor
decides something (the error ceiling, a load reduction, lost workers). ``notify`` only builds
the body and queues one delivery task per matching webhook on the control queue: it never
sends from the hot loop, never waits for a receiver, and never raises into its caller (a
broker that is down is logged). The task (``deliver``) posts the body, retries with
exponential backoff, and records failures as the session's ``webhook_failed`` events.

The body is built once, when the event happens, and sent unchanged by every attempt; each
attempt signs it anew with a fresh timestamp:

    X-Loadtest-Timestamp: <unix seconds>
    X-Loadtest-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the secret>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body, compares in
constant time, and refuses a timestamp older than a few minutes (a replayed request).

The secret is read from the database by the task, never passed in the task's arguments
(which the broker and Flower show). Messages name a webhook by its name and host only: a
URL's path or query may itself be a credential (Slack's incoming-webhook URLs are).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from apps.sessions.choices import EndReason, EventKind, SessionStatus, WebhookEvent, WebhookFormat
from apps.sessions.models import LoadTestSession, SessionEvent, Webhook, target_hosts
from apps.sessions.results import units
from apps.sessions.results.figures import run_figures
from apps.sessions.validation import check_webhook_url
from apps.workers.control import KEY_PREFIX, get_redis
from apps.workers.secrets import describe_url
from loadtest_project import celery_app

logger = logging.getLogger(__name__)

# Spelled out: the services queue deliveries without importing the tasks module.
DELIVER_TASK = "apps.sessions.tasks.deliver_webhook"
SIGNATURE_HEADER = "X-Loadtest-Signature"
TIMESTAMP_HEADER = "X-Loadtest-Timestamp"
EVENT_HEADER = "X-Loadtest-Event"
USER_AGENT = "loadtest-webhook/1"

# The terminal status's event: what "the session ended" is called for a receiver.
FINAL_EVENTS = {
    SessionStatus.COMPLETED: WebhookEvent.COMPLETED,
    SessionStatus.STOPPED: WebhookEvent.STOPPED,
    SessionStatus.FAILED: WebhookEvent.FAILED,
}


# --- what is sent ------------------------------------------------------------------------------


def session_url(session_id: int) -> str:
    """The session's dashboard page, under SITE_URL."""
    return f"{settings.SITE_URL}/sessions/{session_id}/"


def session_summary(session: LoadTestSession) -> dict:
    """The session as a receiver needs it: what it is, how it stands, its headline figures."""
    figures = run_figures(session).as_dict()
    return {
        "id": session.pk,
        "name": session.session_name,
        "status": session.status,
        "end_reason": session.end_reason,
        "end_detail": session.end_detail,
        "target": session.target.base_url,
        "concurrent_users": session.concurrent_users,
        "start_time": session.start_time,
        "end_time": session.end_time,
        "duration_s": figures["duration_s"],
        "total_requests": session.total_requests,
        "total_failures": session.total_failures,
        # The run's figures as every surface shows them (``results.figures``).
        "rps": figures["rps"] or 0.0,
        "error_rate": figures["error_rate"] or 0.0,
        "p50_ms": figures["p50_ms"],
        "p95_ms": figures["p95_ms"],
        "p99_ms": figures["p99_ms"],
        "url": session_url(session.pk),
    }


def render_body(body_format: str, event: str, summary: dict, detail: str, at) -> str:
    """The request body, as the exact text that is signed and sent."""
    if body_format == WebhookFormat.SLACK:
        return json.dumps({"text": slack_text(event, summary, detail)})
    document = {"event": event, "at": at, "detail": detail, "session": summary}
    return json.dumps(document, cls=DjangoJSONEncoder)


def slack_text(event: str, summary: dict, detail: str) -> str:
    """One message in Slack's mrkdwn (also read by Mattermost, Rocket.Chat, Teams' Slack
    mode): the event, the figures, a link to the session."""
    label = WebhookEvent(event).label if event in WebhookEvent.values else event
    status = summary["status"]
    if summary["end_reason"]:
        status += f", {EndReason(summary['end_reason']).label.lower()}"
    lines = [
        f"*{_slack_escape(summary['name'])}* (#{summary['id']}): {label} [{status}]",
        f"{summary['total_requests']:,} requests, {units.figure('rps', summary['rps'])}, "
        f"{units.figure('error_rate', summary['error_rate'])} errors, "
        f"p95 {units.figure('p95_ms', summary['p95_ms'])}",
    ]
    if detail:
        lines.append(_slack_escape(detail))
    lines.append(f"<{summary['url']}|Open the session>")
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (links, mentions): escaped, a name stays a name."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sign(secret: str, timestamp: int, body: str) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.{body}".encode()
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


# --- queueing (the control plane's side) -------------------------------------------------------


def notify(session_id: int, event: WebhookEvent, detail: str = "") -> int:
    """Queue a delivery of ``event`` to every enabled webhook of the session, or global, that
    asked for it. Returns how many were queued; never raises (a webhook must never hold up a
    session's lifecycle)."""
    try:
        hooks = [
            hook
            for hook in Webhook.objects.filter(enabled=True).filter(
                Q(session_id=session_id) | Q(session__isnull=True)
            )
            if event in (hook.events or [])
        ]
        if not hooks:
            return 0
        session = LoadTestSession.objects.select_related("target").get(pk=session_id)
        summary = session_summary(session)
    except Exception:
        logger.exception("Session %s: could not prepare the %s webhooks.", session_id, event)
        return 0
    at = timezone.now()
    queued = 0
    for hook in hooks:
        body = render_body(hook.format, str(event), summary, detail, at)
        try:
            # retry=False: with the broker down, fail at once rather than hold up the caller.
            celery_app.send_task(DELIVER_TASK, (hook.pk, session_id, str(event), body), retry=False)
            queued += 1
        except Exception as exc:
            logger.warning(
                "Session %s: could not queue webhook %r (%s) for %s: %s",
                session_id,
                hook.name,
                describe_url(hook.url),
                event,
                type(exc).__name__,
            )
    return queued


def notify_final(session_id: int) -> None:
    """The session has reached its terminal status: tell the webhooks which, and that its
    workers were lost if that is why."""
    session = LoadTestSession.objects.filter(pk=session_id).values("status", "end_reason").first()
    if session is None or session["status"] not in FINAL_EVENTS:
        return
    if session["end_reason"] == EndReason.WORKERS_LOST:
        notify(session_id, WebhookEvent.WORKERS_LOST)
    notify(session_id, FINAL_EVENTS[session["status"]])


# --- delivery (the task's side) ----------------------------------------------------------------


def attempt_post(hook: Webhook, event: str, body: str) -> str | None:
    """One POST of ``body``; None when the receiver took it (2xx), else what went wrong, in
    words that never quote the URL (requests' own messages do)."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(timestamp),
    }
    if hook.secret:
        headers[SIGNATURE_HEADER] = sign(hook.secret, timestamp, body)
    timeout_s = settings.WEBHOOK_TIMEOUT_S
    try:
        # No redirects: a redirect could lead where the URL check would have refused.
        response = requests.post(
            hook.url,
            data=body.encode(),
            headers=headers,
            timeout=timeout_s,
            allow_redirects=False,
        )
        response.close()
    except requests.Timeout:
        return f"no answer within {timeout_s:g} s (WEBHOOK_TIMEOUT_S)"
    except requests.ConnectionError:
        return "could not connect"
    except requests.RequestException as exc:
        return f"request failed ({type(exc).__name__})"
    if 200 <= response.status_code < 300:
        return None
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code} (redirects are not followed)"
    return f"HTTP {response.status_code}"


def retry_delay_s(retries_done: int) -> float:
    """Exponential backoff: WEBHOOK_RETRY_BASE_S, then twice as long each time."""
    return settings.WEBHOOK_RETRY_BASE_S * 2**retries_done


def deliver(webhook_id: int, session_id: int, event: str, body: str, retries_done: int):
    """One delivery attempt of a queued event. Returns the seconds to wait before the next
    attempt, or None when there is none to make (delivered, given up, webhook gone)."""
    hook = Webhook.objects.filter(pk=webhook_id).first()
    if hook is None or not hook.enabled:
        return None  # deleted or disabled since: nothing more to send
    try:
        check_webhook_url(hook.url, target_hosts())  # the allow-list may have changed
    except ValidationError as exc:
        _record_failure(hook, session_id, event, f"URL refused: {' '.join(exc.messages)}")
        return None
    error = attempt_post(hook, event, body)
    if error is None:
        logger.info(
            "Session %s: webhook %r (%s) took %s.",
            session_id,
            hook.name,
            describe_url(hook.url),
            event,
        )
        return None
    attempts = retries_done + 1
    if retries_done >= settings.WEBHOOK_MAX_RETRIES:
        _record_failure(hook, session_id, event, f"{error}; gave up after {attempts} attempt(s).")
        return None
    delay_s = retry_delay_s(retries_done)
    message = f"{error} (attempt {attempts}); retrying in {delay_s:g} s."
    if _failure_event_due(hook.pk, session_id):
        _record_failure(hook, session_id, event, message)
    else:
        _log_failure(hook, session_id, event, message)
    return delay_s


def _failure_event_due(webhook_id: int, session_id: int) -> bool:
    """At most one event per WEBHOOK_FAILURE_EVENT_INTERVAL_S for the retried failures of a
    webhook and session: a receiver that is down for an hour must not bury the session's
    other events."""
    return event_due(
        f"webhook:{webhook_id}:{session_id}:failure_event",
        settings.WEBHOOK_FAILURE_EVENT_INTERVAL_S,
    )


def event_due(name: str, interval_s: float) -> bool:
    """Whether the event ``name`` may be recorded now: once per ``interval_s`` at most, across
    processes (a Redis key that lives that long); always when Redis cannot tell."""
    if interval_s <= 0:
        return True
    try:
        key = f"{KEY_PREFIX}:{name}"
        return bool(get_redis().set(key, 1, nx=True, px=int(interval_s * 1000)))
    except RedisError:
        return True


def _failure_message(hook: Webhook, event: str, what: str) -> str:
    return f"Webhook {hook.name!r} ({describe_url(hook.url)}), event {event}: {what}"


def _log_failure(hook: Webhook, session_id: int, event: str, what: str) -> None:
    logger.warning("Session %s: %s", session_id, _failure_message(hook, event, what))


def _record_failure(hook: Webhook, session_id: int, event: str, what: str) -> None:
    """A ``webhook_failed`` event of the session (and a log line); the session may have been
    deleted meanwhile, which is no reason to fail the task."""
    _log_failure(hook, session_id, event, what)
    if not LoadTestSession.objects.filter(pk=session_id).exists():
        return
    SessionEvent.objects.create(
        session_id=session_id,
        at=timezone.now(),
        kind=EventKind.WEBHOOK_FAILED,
        message=_failure_message(hook, event, what),
    )
