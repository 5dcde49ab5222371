"""Server-Sent Events: a session's live statistics, pushed as the monitor publishes them.

``GET /api/sessions/{id}/events/`` answers ``text/event-stream``: a ``retry:`` line, then one
``event: stats`` per monitor tick (``id:`` the monitor's per-session counter) carrying the
snapshot of ``GET .../stats/`` plus the live figures (see ``monitor.publish_snapshot``), then
``event: end`` (the session reached a terminal status) or ``event: timeout`` (the stream
lasted ``SSE_MAX_SECONDS``; the client reconnects, and proxies never see an endless request).
While Redis is unreachable the stream is refused with a 503: nothing would move the live
figures into the database, and a stream of frozen figures would look like a stalled session.

Why a plain async Django view and not a DRF view: DRF views are synchronous, and Django
serves a synchronous streaming iterator under ASGI only after consuming it whole, so the
client would see every event at once when the stream ends. An async view returning a
``StreamingHttpResponse`` over an async generator is sent chunk by chunk, and waits
between snapshots in ``asyncio.sleep`` instead of holding a thread. Authentication and the
permission check therefore mirror the API's by hand (DRF's ``TokenAuthentication``, then
the Django session), and every database read goes through ``sync_to_async``.

When the client disconnects, Django cancels the response task: ``asyncio.CancelledError``
is raised at the generator's current ``await`` and propagates, ending it; Django then
closes the request's database connection as for any finished request.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from apps.sessions.api.permissions import HasActionPermission
from apps.sessions.api.snapshots import stats_snapshot
from apps.sessions.choices import TERMINAL_STATUSES
from apps.sessions.models import LoadTestSession
from apps.workers.control import SessionKeys
from loadtest_project.embedded_redis import redis_answers

logger = logging.getLogger(__name__)

# Defaults of the Django settings of the same names, read at request time.
SSE_INTERVAL_S = 1.0
SSE_MAX_SECONDS = 3600.0
# How long a browser's EventSource waits before reconnecting after the stream drops.
RETRY_MS = 3000
VIEW_PERMISSION = "loadtests.view_loadtestsession"
NOT_AUTHENTICATED = "Authentication credentials were not provided."
NOT_FOUND = "No LoadTestSession matches the given query."
REDIS_DOWN = (
    "Live statistics are unavailable: Redis is unreachable, so nothing brings new figures in. "
    "Check that Redis is running at REDIS_URL; GET /api/sessions/{pk}/stats/ shows the "
    "figures saved so far."
)
REDIS_CHECK_TIMEOUT_S = 1.0
# A session whose monitor has published nothing for this long (its control worker down, or
# it ended without a last snapshot) is read from the database again.
STALE_AFTER_S = 5.0


@csrf_exempt  # GET only: a 405, not a CSRF 403, for other methods (as DRF views)
async def session_events(request: HttpRequest, pk: int) -> HttpResponse:
    """Stream session ``pk``'s statistics; 401, 403 or 404 JSON like the rest of the API.

    Authentication comes before the method check, so that a stranger learns nothing, not
    even which methods the route has.
    """
    try:
        user = await authenticate(request)
    except AuthenticationFailed as exc:
        return _unauthorized(str(exc.detail))
    if user is None:
        return _unauthorized(NOT_AUTHENTICATED)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    if not await sync_to_async(user.has_perm)(VIEW_PERMISSION):
        return JsonResponse({"detail": HasActionPermission.message}, status=403)
    if not await sync_to_async(redis_answers)(settings.REDIS_URL, REDIS_CHECK_TIMEOUT_S):
        return JsonResponse({"detail": REDIS_DOWN.format(pk=pk)}, status=503)
    snapshot = await sync_to_async(load_snapshot)(pk)
    if snapshot is None:
        return JsonResponse({"detail": NOT_FOUND}, status=404)
    stream = event_stream(
        pk,
        first_snapshot=snapshot,
        first_event_id=_next_event_id(request),
        interval_s=float(getattr(settings, "SSE_INTERVAL_S", SSE_INTERVAL_S)),
        max_seconds=float(getattr(settings, "SSE_MAX_SECONDS", SSE_MAX_SECONDS)),
    )
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def authenticate(request: HttpRequest):
    """The user, as the API's authentication classes would find it, or None if anonymous.

    A token header is tried first (DRF's order) and, when present but wrong, refused with
    ``AuthenticationFailed`` rather than falling back to the session.
    """
    credentials = await sync_to_async(TokenAuthentication().authenticate)(request)
    if credentials is not None:
        return credentials[0]
    user = await request.auser()
    return user if user.is_authenticated and user.is_active else None


def load_snapshot(pk: int) -> dict | None:
    """One snapshot, then the database connection is let go: a stream lasts up to an hour,
    and holding a connection that long per viewer would exhaust PostgreSQL's."""
    try:
        session = LoadTestSession.objects.filter(pk=pk).first()
        return None if session is None else stats_snapshot(session)
    finally:
        connection.close()


async def event_stream(
    pk: int,
    *,
    first_snapshot: dict,
    first_event_id: int,
    interval_s: float,
    max_seconds: float,
) -> AsyncIterator[str]:
    """``retry``, then the newest snapshot at once and every new one as the monitor
    publishes it, until the session ends, vanishes or time is up.

    The monitor builds one snapshot per session per tick, stores it and publishes it (see
    ``monitor.publish_snapshot``); a stream subscribes and passes each on with the monitor's
    id, so a thousand viewers cost Redis subscriptions, not database queries. Where no
    monitor publishes (a session not started, or finished and forgotten, or silent for
    STALE_AFTER_S) the stream reads the database every ``interval_s`` as before. A session
    deleted while streamed ends the stream without an event: the client's reconnection then
    gets a 404, which stops an ``EventSource`` for good.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    keys = SessionKeys(pk)
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    last_id = first_event_id - 1
    outcome = "closed"
    yield f"retry: {RETRY_MS}\n\n"
    try:
        await pubsub.subscribe(keys.snapshot_channel)  # before the read: nothing is missed
        stored = await client.get(keys.snapshot)
        published = json.loads(stored) if stored else None
        while True:
            if published is not None:
                event, data, event_id = published["event"], published["data"], published["id"]
            elif first_snapshot is not None:
                event = "end" if first_snapshot["status"] in TERMINAL_STATUSES else "stats"
                data, event_id = first_snapshot, last_id + 1
            else:
                outcome = "session deleted"
                return
            if published is None or event_id > last_id:  # a tick seen twice is sent once
                last_id = event_id
                if event == "end":
                    outcome = "ended"
                    yield format_event(event, data, event_id)
                    return
                yield format_event(event, data, event_id)
            wait_s = STALE_AFTER_S if published is not None else interval_s
            message = await _next_message(pubsub, min(loop.time() + wait_s, deadline))
            if loop.time() >= deadline:
                outcome = "timed out"
                yield format_event("timeout", {"session": pk}, last_id + 1)
                return
            if message is not None:
                published = json.loads(message["data"])
            else:  # no monitor is publishing: read the database
                published = None
                first_snapshot = await sync_to_async(load_snapshot)(pk)
    except asyncio.CancelledError:
        outcome = "client disconnected"
        raise
    finally:
        logger.debug("Event stream of session %s closed: %s", pk, outcome)
        await pubsub.aclose()
        await client.aclose()


async def _next_message(pubsub, until: float) -> dict | None:
    """The next published message, or None at loop time ``until`` (``get_message`` also
    answers None for the subscription's confirmation, which is not the end of the wait)."""
    loop = asyncio.get_running_loop()
    while (left_s := until - loop.time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left_s)
        if message is not None:
            return message
    return None


def format_event(event: str, data: dict, event_id: int) -> str:
    """One SSE message. ``json.dumps`` escapes newlines, so ``data`` is a single line."""
    payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n"


def _next_event_id(request: HttpRequest) -> int:
    """Continue the numbering after the ``Last-Event-ID`` a reconnecting client sends."""
    last = request.headers.get("Last-Event-ID", "")
    return int(last) + 1 if last.isdigit() else 1


def _unauthorized(detail: str) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=401)
    response["WWW-Authenticate"] = TokenAuthentication.keyword  # as DRF answers a 401
    return response
