"""A session's configuration: created, changed while pending (or live while running, through
``live.py``), cloned, deleted and purged after its retention."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.sessions.access import audit, config_history
from apps.sessions.access.permissions import (
    ADD_SESSIONS,
    CHANGE_SESSIONS,
    DELETE_SESSIONS,
    require_permission,
)
from apps.sessions.catalog.defaults import default_target
from apps.sessions.choices import TERMINAL_STATUSES, EventKind, SessionStatus, Via
from apps.sessions.errors import SessionStateError
from apps.sessions.lifecycle.live import change_users, change_weights
from apps.sessions.models import LoadTestSession
from apps.sessions.results.configuration import CONFIG_CHOICES, START, configuration_at
from apps.sessions.results.records import actor_name, record_event
from apps.sessions.validation import clean_tags

logger = logging.getLogger(__name__)


def create_session(
    session: LoadTestSession, user=None, *, via: str = Via.SYSTEM, origin: str = ""
) -> LoadTestSession:
    """Store a new, pending session that the API or the admin built from a configuration.

    Checked here as a whole configuration, whatever the edge checked before, so that nothing
    invalid is stored from any edge; without a target, the target at TARGET_APP_URL is used.
    Its first event, ``created``, says by whom, through which surface (``via``) and, when
    it copies another (a clone, a schedule's run), from what (``origin``).
    """
    require_permission(user, ADD_SESSIONS, "create sessions")
    if session.target_id is None:
        session.target = default_target()
    session.created_by = user if user is not None and user.is_authenticated else None
    session.tags = _clean_tags(session.tags)
    session.full_clean()
    with transaction.atomic():
        session.save()
        duration = (
            f"{float(session.duration_minutes):g} min"
            if session.duration_minutes
            else "until stopped"
        )
        record_event(
            session.pk,
            EventKind.CREATED,
            f"{session.concurrent_users} users, {duration}, on {session.target.name}"
            + (f"; {origin}." if origin else "."),
            actor=actor_name(user),
            via=via,
        )
    return session


def _clean_tags(tags: object) -> list[str]:
    """Tags as stored (``validation.clean_tags``), a refusal keyed by the field."""
    try:
        return clean_tags(tags)
    except ValidationError as exc:
        raise ValidationError({"tags": exc.messages}) from exc


# What may change while a session runs: the load and its mix, live. Everything else is what ran.
LIVE_FIELDS = frozenset({"concurrent_users", "endpoint_weights"})
# What may change at any status: labels to find a run by, not what it ran with.
LABEL_FIELDS = frozenset({"tags"})


def update_session(
    session: LoadTestSession, changes: Mapping[str, object], user=None, via: str = "api"
) -> LoadTestSession:
    """Change a session's configuration and record who changed what (``via`` "api"/"admin").

    Pending: any configuration field, checked as the whole configuration it produces.
    Starting or running: ``endpoint_weights`` and ``concurrent_users`` only, applied live
    (``change_weights``, ``change_users``).
    Stopping or ended: nothing; its configuration is what ran.
    At any status: ``tags``, labels rather than configuration (recorded in the history all
    the same), so a finished run can still be filed under a release or an incident. They
    change only once every other change is known to be allowed.
    """
    require_permission(user, CHANGE_SESSIONS, "change sessions")
    if "tags" in changes:
        changes = {**changes, "tags": _clean_tags(changes["tags"])}
    if session.status != SessionStatus.PENDING:
        rest = {name: value for name, value in changes.items() if name not in LABEL_FIELDS}
        _check_changeable(session, rest)
        if len(rest) < len(changes):
            session = _change_labels(session, changes, user=user, via=via)
        if "endpoint_weights" in rest:
            session = change_weights(session, rest["endpoint_weights"], user=user, via=via)
        if "concurrent_users" in rest:
            session = change_users(session, rest["concurrent_users"], user=user, via=via)
        return session
    unknown = set(changes) - set(LoadTestSession.CONFIG_FIELDS)
    if unknown:
        raise ValueError(f"Not configuration fields: {sorted(unknown)}")
    before = config_history.snapshot(session)
    for name, value in changes.items():
        setattr(session, name, value)
    session.full_clean()
    with transaction.atomic():
        # Only while still pending: a session started meanwhile keeps the configuration it
        # started with.
        updated = LoadTestSession.objects.filter(
            pk=session.pk, status=SessionStatus.PENDING
        ).update(**{name: getattr(session, name) for name in changes})
        if not updated:
            raise SessionStateError(
                f"Session {session.pk} has started meanwhile; its configuration is what runs."
            )
        session.refresh_from_db()  # the history compares values as stored (0.5 is 0.5000)
        config_history.record_changes(session, before, user=user, via=via)
    return session


def _check_changeable(session: LoadTestSession, changes: Mapping[str, object]) -> None:
    """Refuse, before anything is written, the changes a started session's status forbids."""
    if not changes:
        return
    labels = "Its tags can change at any status."
    if session.status in (SessionStatus.STARTING, SessionStatus.RUNNING):
        others = sorted(set(changes) - LIVE_FIELDS)
        if others:
            raise SessionStateError(
                "Only concurrent_users and endpoint_weights can change while a session runs "
                f"(not {', '.join(others)}). {labels}"
            )
    else:
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; its configuration is final. {labels}"
        )


def _change_labels(
    session: LoadTestSession, changes: Mapping[str, object], user=None, via: str = "api"
) -> LoadTestSession:
    """Write the label fields at whatever status, with their history."""
    labels = {name: changes[name] for name in LABEL_FIELDS if name in changes}
    before = config_history.snapshot(session)
    with transaction.atomic():
        LoadTestSession.objects.filter(pk=session.pk).update(**labels)
        session.refresh_from_db()
        config_history.record_changes(session, before, user=user, via=via)
    return session


def check_deletable(session: LoadTestSession) -> None:
    """A session whose shards may still send (starting, running, stopping) is never deleted:
    its row is what lets anyone stop that load."""
    if session.is_active:
        raise SessionStateError(
            f"Session {session.pk} ({session.session_name}) is {session.status}: stop it first, "
            "then delete it once it has stopped."
        )


def delete_session(session: LoadTestSession, user=None) -> None:
    """Delete a session that is not running, with its results."""
    require_permission(user, DELETE_SESSIONS, "delete sessions")
    with transaction.atomic():
        # Decide on the stored status, under a lock, not on the caller's copy: the no-op
        # UPDATE locks the row (the whole database on SQLite) until the delete commits, so a
        # start racing with this delete either lands first, and the delete is refused, or
        # finds no row to start.
        if not LoadTestSession.objects.filter(pk=session.pk).update(status=F("status")):
            return  # already deleted
        session.refresh_from_db(fields=["status"])
        check_deletable(session)
        session.delete()


def purge_expired_sessions(now=None) -> list[int]:
    """Delete the sessions that ended more than SESSION_RETENTION_DAYS ago, with all their
    results (off when 0). A system action: logged and audited. Only finished sessions go,
    through ``delete_session``, which refuses an active one under its lock whatever this
    query saw. Returns the ids deleted."""
    if not settings.SESSION_RETENTION_DAYS:
        return []
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SESSION_RETENTION_DAYS)
    expired = LoadTestSession.objects.filter(
        status__in=TERMINAL_STATUSES, end_time__lt=cutoff
    ).order_by("end_time")
    purged = []
    for session in expired:
        session_id = session.pk  # the delete clears it
        try:
            delete_session(session)
        except SessionStateError:  # cannot happen to a terminal status; never purge it
            continue
        purged.append(session_id)
    if purged:
        logger.warning(
            "SESSION_RETENTION_DAYS=%g: deleted sessions %s (ended before %s) and their results.",
            settings.SESSION_RETENTION_DAYS,
            purged,
            cutoff.isoformat(timespec="seconds"),
        )
        audit.record_system(f"purged sessions {','.join(map(str, purged))}",
                            "SESSION_RETENTION_DAYS")  # fmt: skip
    return purged


# A clone copies the run as configured at its start unless asked otherwise: live changes of
# users or weights are a run's experiments, and copying them by accident makes two runs
# whose load differs (which no comparison can judge).
CLONE_DEFAULT = START
_CLONE_WORDS = "'start' (users and weights as configured at the start) or 'end' (as it ended)"


def check_clone_config(value: object) -> str:
    """Which configuration a clone copies: ``start`` or ``end`` (None: the default); any
    other value is refused, naming the allowed ones."""
    if value is None:
        return CLONE_DEFAULT
    if isinstance(value, str) and value in CONFIG_CHOICES:
        return value
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:19] + "…"
        problem = f"'{shown}' is not a choice" if value.isprintable() else "Not a choice"
    else:
        problem = f"Must be a text, not {type(value).__name__}"
    raise ValidationError({"config": [f"{problem}: choose {_CLONE_WORDS}."]})


def clone_session(
    session: LoadTestSession, user=None, config: object = None, *, via: str = Via.SYSTEM
) -> LoadTestSession:
    """A new pending session with the same configuration, to run the same test again.

    ``config`` says which, for a run whose users or weights changed while it ran: ``start``
    (the default, ``CLONE_DEFAULT``) copies them as configured at its start, ``end`` as it
    ended; everything else cannot change once started, so it is the same in both.
    """
    require_permission(user, ADD_SESSIONS, "create sessions")
    which = check_clone_config(config)
    copied = configuration_at(session, which)
    copied["session_name"] = f"{session.session_name} (copy)"[:200]
    return create_session(
        LoadTestSession(**copied), user=user, via=via, origin=f"a clone of session {session.pk}"
    )
