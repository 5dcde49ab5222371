"""New Relic beside the load: where the load's sessions show in the APM its users read.

Optional and off unless NEW_RELIC_API_KEY (a user key) and NEW_RELIC_ENTITY_GUID (the entity
under load, e.g. the target's APM application) are set. Then:

- a change-tracking marker on the entity's timeline when a session's load starts and when it
  ends (NerdGraph's ``changeTrackingCreateDeployment``, which takes the entity's GUID: the
  markers show on the entity's charts and in its change-tracking list, grouped per session);
- with NEW_RELIC_ACCOUNT_ID and a license key (or an insert key) too, one ``LoadTestSummary``
  custom event per active session every NEW_RELIC_EVENT_INTERVAL_S (the Event API, gzipped),
  sent by a periodic control task in one request for all sessions.

Nothing here runs in the hot loop or holds up a session: markers are queued as control tasks
(``queue_marker`` never raises), every request has a short timeout (NEW_RELIC_TIMEOUT_S), and
a failure becomes the session's ``newrelic_failed`` event (summaries' at most once per
NEW_RELIC_FAILURE_EVENT_INTERVAL_S per session, as webhooks' retried failures are) and a log
line, never an exception for the caller. Keys are read from the settings by the task, never
passed in task arguments, and messages never quote them (nor a URL beyond its host).
"""

from __future__ import annotations

import gzip
import json
import logging
import time

import requests
from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from apps.sessions.choices import ACTIVE_STATUSES, EndReason, EventKind
from apps.sessions.integrations.webhooks import event_due, session_summary, session_url
from apps.sessions.models import LoadTestSession, SessionEvent
from apps.sessions.results import units
from apps.workers.control import KEY_PREFIX, get_redis
from apps.workers.secrets import describe_url
from loadtest_project import celery_app

logger = logging.getLogger(__name__)

# Spelled out: the services queue markers without importing the tasks module.
MARKER_TASK = "apps.sessions.tasks.send_newrelic_marker"
START, END = "start", "end"
SUMMARY_EVENT_TYPE = "LoadTestSummary"
USER_AGENT = "loadtest-newrelic/1"
MESSAGE_CHARS = 300  # of an error New Relic answers with, in the session's event

# The documented mutation for a marker on one entity by its GUID (the newer
# changeTrackingCreateEvent finds its entity by a search query instead).
MARKER_MUTATION = (
    "mutation LoadTestMarker($deployment: ChangeTrackingDeploymentInput!) {"
    " changeTrackingCreateDeployment(deployment: $deployment) { deploymentId entityGuid } }"
)


def markers_enabled() -> bool:
    return bool(settings.NEW_RELIC_API_KEY and settings.NEW_RELIC_ENTITY_GUID)


def events_enabled() -> bool:
    return markers_enabled() and bool(
        settings.NEW_RELIC_ACCOUNT_ID
        and (settings.NEW_RELIC_LICENSE_KEY or settings.NEW_RELIC_INSERT_KEY)
    )


# --- markers ---------------------------------------------------------------------------------


def queue_marker(session_id: int, phase: str) -> None:
    """Queue the session's start or end marker; never raises (New Relic must never hold up a
    session's lifecycle), does nothing while New Relic is off."""
    if not markers_enabled():
        return
    try:
        # retry=False: with the broker down, fail at once rather than hold up the caller.
        celery_app.send_task(MARKER_TASK, (session_id, phase), retry=False)
    except Exception as exc:
        logger.warning("Session %s: could not queue the New Relic %s marker: %s",
                       session_id, phase, type(exc).__name__)  # fmt: skip


def marker_description(session: LoadTestSession, phase: str) -> str:
    """The marker's text, as it shows on the entity's timeline."""
    summary = session_summary(session)
    who = f"{session.session_name} (#{session.pk})"
    if phase == START:
        return (
            f"Load test started: {who}, {session.concurrent_users} users → "
            f"{session.target.base_url}"
        )
    status = session.status
    if session.end_reason:
        status += f", {EndReason(session.end_reason).label.lower()}"
    error_rate = units.figure("error_rate", summary["error_rate"])
    return (
        f"Load test ended: {who} [{status}]: {summary['total_requests']} requests, "
        f"{summary['total_failures']} failures ({error_rate}), "
        f"{units.figure('rps', summary['rps'])}, p95 {units.figure('p95_ms', summary['p95_ms'])}"
    )


def marker_variables(session: LoadTestSession, phase: str) -> dict:
    """The mutation's ``deployment`` input: the entity, a version naming the session and the
    phase, the description, who ran it, a link back, and the session as the group."""
    user = session.started_by if phase == START else (session.stopped_by or session.started_by)
    return {
        "deployment": {
            "entityGuid": settings.NEW_RELIC_ENTITY_GUID,
            "version": f"load test #{session.pk} {phase}",
            "description": marker_description(session, phase),
            "user": user.get_username() if user is not None else "loadtest",
            "changelog": session_url(session.pk),
            "groupId": f"loadtest-session-{session.pk}",
            "timestamp": int(time.time() * 1000),
        }
    }


def check_variables() -> dict:
    """A marker that says the service's configuration works (``manage.py check_newrelic``)."""
    return {
        "deployment": {
            "entityGuid": settings.NEW_RELIC_ENTITY_GUID,
            "version": "load tester connection check",
            "description": f"Load tester at {settings.SITE_URL}: New Relic connection check",
            "user": "loadtest",
            "timestamp": int(time.time() * 1000),
        }
    }


def post_marker(variables: dict) -> str | None:
    """One NerdGraph call; None when New Relic took the marker, else what went wrong, in words
    that quote neither the key nor the URL's path."""
    body = json.dumps({"query": MARKER_MUTATION, "variables": variables}).encode()
    headers = {
        "API-Key": settings.NEW_RELIC_API_KEY,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    error, answer = _post(settings.NEW_RELIC_GRAPHQL_URL, body, headers)
    if error is not None:
        return error
    try:
        document = json.loads(answer)
    except ValueError:
        return "NerdGraph answered with something other than JSON"
    # GraphQL reports its errors in a 200 answer.
    errors = document.get("errors") if isinstance(document, dict) else None
    if errors:
        first = errors[0].get("message", "") if isinstance(errors[0], dict) else errors[0]
        return f"NerdGraph refused the marker: {str(first)[:MESSAGE_CHARS]}"
    return None


def send_marker(session_id: int, phase: str) -> None:
    """The marker task's work: post the session's start or end marker, a failure recorded as
    the session's event. An end marker is sent only for a session whose load started."""
    if not markers_enabled():
        return
    session = (
        LoadTestSession.objects.select_related("target", "started_by", "stopped_by")
        .filter(pk=session_id)
        .first()
    )
    if session is None or (phase == END and session.load_started_at is None):
        return
    error = post_marker(marker_variables(session, phase))
    if error is None:
        logger.info("Session %s: New Relic took the %s marker.", session_id, phase)
        return
    _record_failure(session_id, f"The {phase} marker: {error}", rate_limited=False)


# --- summary events --------------------------------------------------------------------------


def summary_event(session: LoadTestSession, previous: tuple[int, int, float] | None) -> dict:
    """One ``LoadTestSummary`` event: the session, its figures since ``previous`` (the
    requests, failures and time of the last event New Relic took; None: since the load
    started), and its totals and p95 so far. Counted from the totals, not from the latest
    time-series points: those trail the monitor, and nothing is lost if an event is."""
    summary = session_summary(session)
    now = time.time()
    requests_before, failures_before, since = previous or (
        0,
        0,
        session.load_started_at.timestamp(),
    )
    requests_done = max(session.total_requests - requests_before, 0)
    failures = max(session.total_failures - failures_before, 0)
    seconds = max(now - since, 0.001)
    event = {
        "eventType": SUMMARY_EVENT_TYPE,
        "timestamp": int(now),
        "sessionId": session.pk,
        "sessionName": session.session_name,
        "status": session.status,
        "target": session.target.base_url,
        "users": session.concurrent_users,
        "intervalSeconds": round(seconds, 3),
        "requests": requests_done,
        "failures": failures,
        "rps": round(requests_done / seconds, 3),
        "errorRate": round(failures / requests_done, 6) if requests_done else 0.0,
        "totalRequests": summary["total_requests"],
        "totalFailures": summary["total_failures"],
    }
    if summary["p95_ms"] is not None:  # none before the first answer: left out, not 0
        event["p95Ms"] = summary["p95_ms"]
    return event


def post_events(events: list[dict]) -> str | None:
    """One Event API call with ``events`` (gzipped JSON array); None when New Relic took them."""
    if settings.NEW_RELIC_LICENSE_KEY:
        headers = {"Api-Key": settings.NEW_RELIC_LICENSE_KEY}
    else:
        headers = {"X-Insert-Key": settings.NEW_RELIC_INSERT_KEY}
    headers.update(
        {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": USER_AGENT}
    )
    body = gzip.compress(json.dumps(events).encode())
    error, _ = _post(settings.NEW_RELIC_EVENTS_URL, body, headers)
    return error


def send_summaries() -> int:
    """The periodic task's work: one event per session whose load runs, in one request.
    Returns how many events New Relic took."""
    if not events_enabled():
        return 0
    sessions = list(
        LoadTestSession.objects.select_related("target").filter(
            status__in=ACTIVE_STATUSES, load_started_at__isnull=False
        )
    )
    if not sessions:
        return 0
    events = [summary_event(session, _last_summary(session.pk)) for session in sessions]
    error = post_events(events)
    if error is not None:
        for session in sessions:
            _record_failure(session.pk, f"Summary events: {error}", rate_limited=True)
        return 0
    for session, event in zip(sessions, events, strict=True):
        _remember_summary(session.pk, event["totalRequests"], event["totalFailures"])
    return len(events)


def _summary_key(session_id: int) -> str:
    return f"{KEY_PREFIX}:newrelic:{session_id}:last_summary"


def _last_summary(session_id: int) -> tuple[int, int, float] | None:
    """The totals and time of the session's last event New Relic took (None: none yet, or
    Redis cannot say: the next event then counts from the load's start)."""
    try:
        raw = get_redis().get(_summary_key(session_id))
        if raw is None:
            return None
        requests_done, failures, at = raw.decode().split()
        return int(requests_done), int(failures), float(at)
    except (RedisError, ValueError):
        return None


def _remember_summary(session_id: int, requests_done: int, failures: int) -> None:
    ttl_s = max(3600, int(10 * settings.NEW_RELIC_EVENT_INTERVAL_S))
    try:
        get_redis().set(_summary_key(session_id), f"{requests_done} {failures} {time.time()!r}",
                        ex=ttl_s)  # fmt: skip
    except RedisError:
        logger.warning("Session %s: could not note the last New Relic summary.", session_id)


# --- shared ----------------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict) -> tuple[str | None, bytes]:
    """POST ``body``: (None, the answer's body) on a 2xx answer, else (what went wrong, b"")."""
    timeout_s = settings.NEW_RELIC_TIMEOUT_S
    try:
        # No redirects: the key would follow them.
        response = requests.post(
            url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False
        )
    except requests.Timeout:
        return f"{describe_url(url)}: no answer within {timeout_s:g} s (NEW_RELIC_TIMEOUT_S)", b""
    except requests.ConnectionError:
        return f"{describe_url(url)}: could not connect", b""
    except requests.RequestException as exc:
        return f"{describe_url(url)}: request failed ({type(exc).__name__})", b""
    with response:
        if 200 <= response.status_code < 300:
            return None, response.content
        reason = {401: " (check the key)", 403: " (check the key's account)"}.get(
            response.status_code, ""
        )
        return f"{describe_url(url)}: HTTP {response.status_code}{reason}", b""


def _record_failure(session_id: int, what: str, *, rate_limited: bool) -> None:
    """A ``newrelic_failed`` event of the session (and a log line). Repeated summary failures
    (New Relic down for an hour) make one event per NEW_RELIC_FAILURE_EVENT_INTERVAL_S."""
    logger.warning("Session %s: New Relic: %s", session_id, what)
    if rate_limited and not event_due(
        f"newrelic:{session_id}:failure_event", settings.NEW_RELIC_FAILURE_EVENT_INTERVAL_S
    ):
        return
    if not LoadTestSession.objects.filter(pk=session_id).exists():
        return
    SessionEvent.objects.create(
        session_id=session_id,
        at=timezone.now(),
        kind=EventKind.NEWRELIC_FAILED,
        message=f"New Relic: {what}",
    )
