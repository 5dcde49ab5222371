"""Every state change of a session happens here, whoever asks: API, admin, CLI or a task.

Transitions are conditional UPDATEs on the status column, so two callers racing (a user's
stop and the monitor's end of duration, say) cannot both win; the loser sees the row as it
is now. Each change records who asked and why.

Each function that acts for a person checks that person's permission here, so the API, the
admin and any later edge refuse the same people: ``user=None`` is the system itself (the
monitor, beat, management commands), which may do anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import RedisError

from apps.workers import control, dispatch, inventory
from apps.workers.plan import EndpointPlan, FeedPlan, FlowPlan, Plan, StepPlan
from loadtest_project import celery_app

from . import audit, history, newrelic, webhooks
from .choices import (
    ACTIVE_STATUSES,
    SESSION_TRANSITIONS,
    TERMINAL_STATUSES,
    EndReason,
    EventKind,
    FeedMode,
    SessionStatus,
    WebhookEvent,
)
from .feeds import FeedError, parse_feed_csv
from .flows import check_flow, endpoint_variables, extracted_names, steps_from_data
from .models import (
    DataFeed,
    Endpoint,
    Flow,
    FlowStep,
    LoadTestSession,
    RequestLogEntry,
    Schedule,
    SessionEvent,
    Target,
    Webhook,
)
from .validation import (
    check_concurrent_users,
    check_endpoint_url,
    check_host_header,
    check_target_url,
    clean_tags,
    effective_weights,
    endpoint_weights_problems,
    template_problems,
)

logger = logging.getLogger(__name__)

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "default_endpoints.json"
# The demo catalog's flows, by endpoint name (a file of its own beside the endpoints').
DEFAULT_FLOWS = Path(__file__).resolve().parent / "data" / "default_flows.json"


class SessionStateError(Exception):
    """The action conflicts with the session's current status (the API answers 409)."""


class EngineUnavailable(Exception):
    """Redis or the broker could not be reached, so load cannot start (the API answers 503)."""


# What each kind of change needs; roles.py says which role holds which.
ADD_SESSIONS = "loadtests.add_loadtestsession"
CHANGE_SESSIONS = "loadtests.change_loadtestsession"
DELETE_SESSIONS = "loadtests.delete_loadtestsession"
OPERATE_SESSIONS = "loadtests.operate_loadtestsession"
EMERGENCY_STOP = "loadtests.emergency_stop"
ADD_WEBHOOKS = "loadtests.add_webhook"
CHANGE_WEBHOOKS = "loadtests.change_webhook"
DELETE_WEBHOOKS = "loadtests.delete_webhook"
MANAGE_GLOBAL_WEBHOOKS = "loadtests.manage_global_webhooks"
ADD_SCHEDULES = "loadtests.add_schedule"
CHANGE_SCHEDULES = "loadtests.change_schedule"
DELETE_SCHEDULES = "loadtests.delete_schedule"


def require_permission(user, permission: str, doing: str) -> None:
    """Refuse ``user`` unless it holds ``permission`` (the API answers 403, the admin shows
    the message); ``user=None`` is the system itself."""
    if user is not None and not user.has_perm(permission):
        raise PermissionDenied(
            f"Your role does not allow you to {doing} (it needs the permission {permission}; "
            "see the roles in the README)."
        )


# --- catalog ---------------------------------------------------------------------------------


# The catalog file speaks the API's language (``timeout``, as in /api/endpoints/); the code
# uses the model's names. Renamed here, once; a field the file leaves out takes the model's
# default.
CATALOG_TO_MODEL_FIELDS = {"timeout": "timeout_s"}


def default_catalog() -> list[dict]:
    """The default catalog's endpoints (the data file), by model field name."""
    return [
        {CATALOG_TO_MODEL_FIELDS.get(key, key): value for key, value in item.items()}
        for item in json.loads(DEFAULT_CATALOG.read_text())
    ]


def load_default_catalog(target: Target) -> int:
    """Add the seed app's endpoints (from the data file) that the target does not have yet."""
    created = 0
    for fields in default_catalog():
        name = fields.pop("name")
        _, was_created = Endpoint.objects.get_or_create(target=target, name=name, defaults=fields)
        created += was_created
    load_default_flows(target)
    return created


def default_flows() -> list[dict]:
    """The default catalog's flows (the data file), as catalog files write them."""
    return json.loads(DEFAULT_FLOWS.read_text())


def load_default_flows(target: Target) -> int:
    """Add the demo catalog's flows the target does not have yet, where it has every endpoint
    they call (a target whose catalog was changed keeps what it has)."""
    created = 0
    for item in default_flows():
        if target.flows.filter(name=item["name"]).exists():
            continue
        names = {step["endpoint"] for step in item["steps"]}
        if target.endpoints.filter(name__in=names).count() < len(names):
            continue
        flow = Flow(
            target=target,
            name=item["name"],
            weight=item.get("weight", 1.0),
            description=item.get("description", ""),
        )
        save_flow(flow, steps_from_data(target, item["steps"]), via="system")
        created += 1
    return created


CHANGE_CATALOG = ("loadtests.add_target", "loadtests.add_endpoint", "loadtests.change_endpoint")
FLOW_FILE_FIELDS = ("name", "weight", "description", "steps")
ENDPOINT_FILE_FIELDS = ("name", "url", "method", "weight", "timeout", "description", "headers",
                        "body", "expected_statuses", "checks")  # fmt: skip


def _full_clean_under(instance, prefix: str) -> None:
    """``full_clean``, its field errors named under ``prefix`` (``target.name``,
    ``endpoints[2].weight``) so that a catalog file's error points at its entry."""
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {f"{prefix}.{name}": messages for name, messages in exc.message_dict.items()}
        ) from exc


def import_catalog(
    target_fields: Mapping[str, object],
    endpoints: list,
    user=None,
    via: str = "cli",
    flows: list | None = None,
) -> tuple[Target, int, int]:
    """Create or update a target (found by base URL, else made with ``target_fields``) and
    its endpoints (by name), all or nothing, each checked as the admin and the API check it;
    changes to existing endpoints go into the configuration history. Returns the target and
    how many endpoints were created and updated.

    Errors are keyed ``target`` or ``endpoints[N].field``: a file's reader can find them.
    ``flows`` (``[{name, weight, description, steps}]``, steps naming endpoints) are written
    after the endpoints, by name too (``flows[N].field``, ``flows[N].steps[i].field``).
    """
    for permission in CHANGE_CATALOG:
        require_permission(user, permission, "change the catalog of targets and endpoints")
    with transaction.atomic():
        base_url = target_fields.get("base_url")
        target = (
            Target.objects.filter(base_url=base_url).order_by("pk").first()
            if isinstance(base_url, str)
            else None
        )
        if target is None:
            target = Target(
                name=target_fields.get("name") or str(base_url)[:100],
                base_url=base_url,
                description=target_fields.get("description") or "",
            )
            _full_clean_under(target, "target")
            target.save()
        created = updated = 0
        for index, item in enumerate(endpoints):
            where = f"endpoints[{index}]"
            if not isinstance(item, Mapping):
                raise ValidationError({where: ["Must be an object with name, url, method..."]})
            unknown = sorted(str(key) for key in item if key not in ENDPOINT_FILE_FIELDS)
            if unknown:
                fields_text = ", ".join(ENDPOINT_FILE_FIELDS)
                raise ValidationError(
                    {f"{where}.{unknown[0]}": [f"Unknown field; the fields are {fields_text}."]}
                )
            fields = {CATALOG_TO_MODEL_FIELDS.get(key, key): value for key, value in item.items()}
            endpoint = Endpoint.objects.filter(target=target, name=fields.get("name")).first()
            before = history.snapshot(endpoint) if endpoint is not None else None
            if endpoint is None:
                endpoint = Endpoint(target=target)
            for name, value in fields.items():
                setattr(endpoint, name, value)
            _full_clean_under(endpoint, where)
            endpoint.save()
            if before is None:
                created += 1
            else:
                updated += bool(history.record_changes(endpoint, before, user=user, via=via))
        for index, item in enumerate(flows or ()):
            _import_flow(target, item, f"flows[{index}]", user=user, via=via)
    return target, created, updated


def _import_flow(target: Target, item: object, where: str, user, via: str) -> Flow:
    """One flow of a catalog file, created or updated by name (``save_flow``)."""
    if not isinstance(item, Mapping):
        raise ValidationError({where: ["Must be an object with name, weight, steps..."]})
    unknown = sorted(str(key) for key in item if key not in FLOW_FILE_FIELDS)
    if unknown:
        fields_text = ", ".join(FLOW_FILE_FIELDS)
        raise ValidationError(
            {f"{where}.{unknown[0][:40]}": [f"Unknown field; the fields are {fields_text}."]}
        )
    name = item.get("name")
    flow = Flow.objects.filter(target=target, name=name).first() if isinstance(name, str) else None
    flow = flow or Flow(target=target)
    for field in ("name", "weight", "description"):
        if field in item:
            setattr(flow, field, item[field])
    try:
        steps = steps_from_data(target, item.get("steps"))
        return save_flow(flow, steps, user=user, via=via)
    except ValidationError as exc:
        raise ValidationError(
            {f"{where}.{key}": messages for key, messages in exc.message_dict.items()}
        ) from exc


# A flow is part of its target's catalog: whoever may edit the endpoints may edit the flows,
# and whoever may see the endpoints sees the flows, from every surface.
VIEW_FLOWS = "loadtests.view_endpoint"
ADD_FLOWS = "loadtests.add_endpoint"
CHANGE_FLOWS = "loadtests.change_endpoint"
DELETE_FLOWS = "loadtests.delete_endpoint"


def save_flow(flow: Flow, steps: list[FlowStep], user=None, via: str = "api") -> Flow:
    """Create or change a flow with its steps, written whole (the old steps are replaced),
    checked as one (``flows.check_flow``); a change goes into the configuration history."""
    creating = flow.pk is None
    require_permission(
        user,
        ADD_FLOWS if creating else CHANGE_FLOWS,
        "add flows" if creating else "change flows",
    )
    check_flow(flow, steps)
    with transaction.atomic():
        stored = None if creating else Flow.objects.filter(pk=flow.pk).first()
        before = history.snapshot(stored) if stored is not None else None
        flow.save()
        flow.steps.all().delete()
        for position, step in enumerate(steps, start=1):
            step.pk = None
            step.flow = flow
            step.position = position
        FlowStep.objects.bulk_create(steps)
        if before is not None:
            history.record_changes(flow, before, user=user, via=via)
    return flow


def delete_flow(flow: Flow, user=None) -> None:
    """Delete a flow and its steps (the endpoints stay); finished sessions keep their plan."""
    require_permission(user, DELETE_FLOWS, "delete flows")
    flow.delete()


def catalog_weights(target: Target) -> dict[str, float]:
    """Name -> default weight of what a session of ``target`` mixes: its endpoints and its
    flows (their names never clash)."""
    return {
        **dict(target.endpoints.values_list("name", "weight")),
        **dict(target.flows.values_list("name", "weight")),
    }


def find_default_target() -> Target | None:
    return Target.objects.filter(base_url=settings.TARGET_APP_URL).order_by("pk").first()


def default_catalog_weights() -> dict[str, float]:
    """Endpoint name -> weight of the default catalog, for validating before it exists."""
    default_weight = Endpoint._meta.get_field("weight").default
    return {fields["name"]: fields.get("weight", default_weight) for fields in default_catalog()}


def default_flow_weights() -> dict[str, float]:
    """Flow name -> weight of the default catalog, for validating before it exists."""
    return {item["name"]: item.get("weight", 1.0) for item in default_flows()}


def default_target() -> Target:
    """The target at TARGET_APP_URL, created with the default catalog on first use."""
    target = find_default_target()
    if target is not None:
        return target
    check_target_url(settings.TARGET_APP_URL)
    with transaction.atomic():
        name = "Default target"
        if Target.objects.filter(name=name).exists():
            name = f"Default target ({settings.TARGET_APP_URL})"
        target = Target.objects.create(
            name=name,
            base_url=settings.TARGET_APP_URL,
            description="The application at TARGET_APP_URL, with the demo app's endpoints.",
        )
        load_default_catalog(target)
    return target


# --- planning --------------------------------------------------------------------------------


def build_plan(session: LoadTestSession) -> Plan:
    """The frozen, self-contained instructions every shard of the session executes.

    The allow-list is checked again here: the environment may have changed since the target
    was saved. The single endpoints with weight come first, then, per flow with weight, its
    steps (weight 0, ``flow`` set: they are sent only as steps), and the flows themselves.
    """
    errors: dict[str, list[str]] = {}
    try:
        check_target_url(session.target.base_url)
    except ValidationError as exc:
        errors["target"] = exc.messages
    weights = effective_weights(catalog_weights(session.target), session.endpoint_weights)
    endpoints = []

    def add_endpoint(endpoint: Endpoint, **fields) -> None:
        try:
            check_endpoint_url(endpoint.url)
            check_host_header(endpoint.absolute_url(), endpoint.headers)
        except ValidationError as exc:
            errors.setdefault("endpoints", []).extend(
                f"{fields['name']}: {message}" for message in exc.messages
            )
        endpoints.append(
            EndpointPlan(
                method=endpoint.method,
                url=endpoint.absolute_url(),
                timeout_s=endpoint.timeout_s,
                headers=endpoint.headers,
                body=endpoint.body,
                endpoint_id=endpoint.pk,
                expected_statuses=endpoint.expected_statuses,
                checks=tuple(endpoint.checks or ()),
                **fields,
            )
        )

    for endpoint in session.target.endpoints.order_by("name"):
        weight = weights[endpoint.name]
        if weight > 0:
            add_endpoint(endpoint, name=endpoint.name, weight=weight)
    flows: list[FlowPlan] = []
    for flow in session.target.flows.order_by("name").prefetch_related("steps__endpoint"):
        weight = weights[flow.name]
        if weight <= 0:
            continue
        steps = list(flow.steps.all())
        # The endpoints may have changed since the flow was saved: its variables again.
        known: set[str] = set()
        for step in steps:
            missing = sorted(endpoint_variables(step.endpoint) - known)
            if missing:
                errors.setdefault("flows", []).append(
                    f"Flow '{flow.name}', step {step.position} ({step.endpoint.name}): its "
                    f"templates use {', '.join(missing)}, which no earlier step extracts."
                )
            known.update(extracted_names(step))
        step_plans = []
        for step in steps:
            add_endpoint(
                step.endpoint,
                name=step_plan_name(flow.name, step.position, step.endpoint.name),
                weight=0.0,
                flow=len(flows),
            )
            step_plans.append(
                StepPlan(
                    endpoint=len(endpoints) - 1,
                    think_time_s=step.think_time_s,
                    extract=tuple(step.extract or ()),
                )
            )
        flows.append(
            FlowPlan(name=flow.name, weight=weight, steps=tuple(step_plans), flow_id=flow.pk)
        )
    if not endpoints:
        errors.setdefault("endpoint_weights", []).append(
            "No endpoint of this target has a positive weight, and no flow: nothing to send."
        )
    if errors:
        raise ValidationError(errors)
    plan = Plan(
        session_id=session.pk,
        endpoints=tuple(endpoints),
        flows=tuple(flows),
        request_interval_min=session.request_interval_min,
        request_interval_max=session.request_interval_max,
        target_rps=session.target_rps,
        ramp_up_s=session.ramp_up_seconds,
        duration_s=None if session.runs_until_stopped else float(session.duration_minutes) * 60,
        request_log=session.enable_logging,
        session_header=settings.SESSION_HEADER_NAME if session.send_session_header else "",
        traceparent=session.send_traceparent,
        feed=feed_plan(session.target),
    )
    problems = template_problems(plan)  # variables outside flows, feed columns it lacks
    if problems:
        raise ValidationError({"endpoints": problems})
    return plan


def feed_plan(target: Target) -> FeedPlan | None:
    """The target's data feed as the shards take it, or None when it has none."""
    feed = DataFeed.objects.filter(target=target).first()
    if feed is None:
        return None
    return FeedPlan(
        columns=tuple(feed.columns),
        rows=tuple(tuple(row) for row in feed.rows),
        mode=feed.mode,
        name=feed.filename,
    )


# A step's name in the plan and its statistics, "shop \u203a 2. cart-add" (a single right
# angle quote): within the 100 characters of a statistics row's name, the flow's name
# shortened if need be.
STEP_NAME_CHARS_MAX = 100
STEP_NAME_SEPARATOR = " \u203a "


def step_plan_name(flow_name: str, position: int, endpoint_name: str) -> str:
    tail = f"{STEP_NAME_SEPARATOR}{position}. {endpoint_name}"
    room = STEP_NAME_CHARS_MAX - len(tail)
    if len(flow_name) > room:
        flow_name = flow_name[: max(room - 3, 0)] + "..."
    return (flow_name + tail)[:STEP_NAME_CHARS_MAX]


# --- lifecycle -------------------------------------------------------------------------------


def move_status(
    session_id: int, sources: Collection[SessionStatus], status: SessionStatus, **fields
) -> bool:
    """Move the session to ``status`` if it is in one of ``sources`` now, setting ``fields``
    too; returns whether it moved. The one way a status changes: a conditional UPDATE, so of
    two callers racing only one wins, and only along SESSION_TRANSITIONS."""
    forbidden = sorted(source for source in sources if status not in SESSION_TRANSITIONS[source])
    if forbidden:
        raise ValueError(f"A session cannot move from {forbidden} to {status!r}.")
    moved = LoadTestSession.objects.filter(pk=session_id, status__in=sources)
    return bool(moved.update(status=status, **fields))


def start_session(session: LoadTestSession, user=None) -> LoadTestSession:
    """pending -> starting: freeze the plan, publish it to Redis and queue the shards.

    Redis is asked first how many load worker processes are free: when it is unreachable that
    fails at once, before anything is claimed. The returned session carries ``warnings``
    (a list of sentences, not stored): today, that its shards will wait for free processes.
    """
    require_permission(user, OPERATE_SESSIONS, "start sessions")
    if session.status != SessionStatus.PENDING:
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; only a pending session can be started."
        )
    check_total_users(session.concurrent_users)
    plan = build_plan(session)
    try:
        capacity = inventory.load_capacity(control.get_redis())
    except (RedisError, OSError) as exc:
        raise _cannot_queue(exc) from exc
    shards = len(dispatch.shard_shares(session.concurrent_users, session.target_rps))
    claimed = move_status(
        session.pk,
        (SessionStatus.PENDING,),
        SessionStatus.STARTING,
        start_time=timezone.now(),
        started_by=user,
        plan=plan.to_json(),
    )
    if not claimed:
        session.refresh_from_db()
        raise SessionStateError(f"Session {session.pk} is already {session.status}.")
    try:
        dispatch.dispatch_session(session.pk, plan, session.concurrent_users, session.target_rps)
        queue_monitor_tick(session.pk)  # the first tick now; beat drives the rest
    except Exception as exc:
        logger.exception("Session %s: could not dispatch its shards", session.pk)
        _undo_start(session.pk)
        raise _cannot_queue(exc) from exc
    logger.info(
        "Session %s started by %s: %s users (%s model).",
        session.pk,
        user or "system",
        session.concurrent_users,
        session.pacing,
    )
    session.refresh_from_db()
    shortfall = capacity.shortfall_warning(shards)
    session.warnings = [shortfall] if shortfall else []
    return session


def _cannot_queue(exc: Exception) -> EngineUnavailable:
    return EngineUnavailable(
        f"Could not queue the load: Redis or the Celery broker is unreachable ({exc}). Check "
        "REDIS_URL and that Redis is running; the session is still pending and can be started "
        "again."
    )


def check_total_users(additional_users: int) -> None:
    """MAX_TOTAL_USERS caps the users of all running sessions together."""
    limit = settings.MAX_TOTAL_USERS
    if not limit or additional_users <= 0:
        return
    running = (
        LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
            users=Sum("concurrent_users")
        )["users"]
        or 0
    )
    if running + additional_users > limit:
        raise ValidationError(
            {
                "concurrent_users": [
                    f"{running} users already run in other sessions; {additional_users} more "
                    f"would pass MAX_TOTAL_USERS ({limit})."
                ]
            }
        )


def create_session(session: LoadTestSession, user=None) -> LoadTestSession:
    """Store a new, pending session that the API or the admin built from a LoadTestConfig.

    Checked here as a whole configuration, whatever the edge checked before, so that nothing
    invalid is stored from any edge; without a target, the target at TARGET_APP_URL is used.
    """
    require_permission(user, ADD_SESSIONS, "create sessions")
    if session.target_id is None:
        session.target = default_target()
    session.created_by = user if user is not None and user.is_authenticated else None
    session.tags = _clean_tags(session.tags)
    session.full_clean()
    session.save()
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

    Pending: any LoadTestConfig field, checked as the whole configuration it produces.
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
    before = history.snapshot(session)
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
        history.record_changes(session, before, user=user, via=via)
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
    before = history.snapshot(session)
    with transaction.atomic():
        LoadTestSession.objects.filter(pk=session.pk).update(**labels)
        session.refresh_from_db()
        history.record_changes(session, before, user=user, via=via)
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


def clone_session(session: LoadTestSession, user=None) -> LoadTestSession:
    """A new pending session with the same configuration, to run the same test again."""
    copied = session.config()
    copied["session_name"] = f"{session.session_name} (copy)"[:200]
    return create_session(LoadTestSession(**copied), user=user)


def _undo_start(session_id: int) -> None:
    """Back to pending after a failed dispatch, so nothing is lost and a retry can start it.

    Anything that did reach Redis is withdrawn first: shards queued before the failure find
    no control state and exit without sending.
    """
    try:
        control.forget_session(control.get_redis(), session_id)
    except Exception:
        logger.warning("Session %s: could not withdraw a partial dispatch from Redis.", session_id)
    move_status(
        session_id,
        (SessionStatus.STARTING,),
        SessionStatus.PENDING,
        start_time=None,
        started_by=None,
        plan=None,
    )


def stop_session(
    session: LoadTestSession,
    user=None,
    reason: EndReason = EndReason.STOPPED_BY_USER,
    detail: str = "",
) -> LoadTestSession:
    """Ask every shard to stop; the monitor records the terminal status once they have.

    A session that never started is stopped at once. Stopping a stopping session is a no-op.
    """
    require_permission(user, OPERATE_SESSIONS, "stop sessions")
    return _stop(session, user, reason, detail)


def _stop(session: LoadTestSession, user, reason: EndReason, detail: str) -> LoadTestSession:
    """``stop_session`` for a caller that has checked its own permission (the emergency stop)."""
    if session.status == SessionStatus.PENDING:
        ended = move_status(
            session.pk,
            (SessionStatus.PENDING,),
            reason.final_status,
            end_time=timezone.now(),
            end_reason=reason,
            end_detail=detail,
            stopped_by=user,
        )
        if ended:
            webhooks.notify_final(session.pk)
            session.refresh_from_db()
            return session
        session.refresh_from_db()
    if session.status == SessionStatus.STOPPING:
        return session
    if session.status not in ACTIVE_STATUSES:
        raise SessionStateError(f"Session {session.pk} has already ended ({session.status}).")
    # Redis first: that is what the shards watch, so the load stops as soon as possible.
    try:
        control.request_stop(control.get_redis(), session.pk)
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis to stop the load ({exc}). Check that Redis is running at "
            "REDIS_URL and stop again; meanwhile shards stop by themselves once they have "
            "lost Redis for longer than HEARTBEAT_TTL_S."
        ) from exc
    move_status(
        session.pk,
        (SessionStatus.STARTING, SessionStatus.RUNNING),
        SessionStatus.STOPPING,
        end_reason=reason,
        end_detail=detail,
        stopped_by=user,
    )
    logger.info("Session %s: stop requested by %s (%s).", session.pk, user or "system", reason)
    session.refresh_from_db()
    return session


# The monitor's tick, queued by name: the monitor calls these services, so they cannot import
# its task module (``apps/sessions/tasks.py`` registers the task under this name).
MONITOR_SESSION_TASK = "apps.sessions.tasks.monitor_session"

# The shortest span the monitor's timing gives a few ticks (a tick's lock, a queued tick's
# life, how late a tick may be before the monitor counts itself away): MONITOR_INTERVAL_S may
# be short (the tests use 0.5 s), a pass over a busy session or a busy control worker not.
MONITOR_TICKS_MIN_S = 5.0


def monitor_ticks_s(ticks: int) -> float:
    """``ticks`` monitor intervals in seconds, never less than MONITOR_TICKS_MIN_S."""
    return max(MONITOR_TICKS_MIN_S, ticks * settings.MONITOR_INTERVAL_S)


def queue_monitor_tick(session_id: int) -> None:
    """One monitor pass for the session, soon. Stale ticks expire rather than pile up while
    the control worker is down."""
    celery_app.send_task(MONITOR_SESSION_TASK, (session_id,), expires=monitor_ticks_s(5))


def mark_running(session_id: int, load_started_at) -> bool:
    """starting -> running, once the first shard has begun sending, and when that was: the
    duration counts from then. The first time recorded stays (the row is the truth)."""
    LoadTestSession.objects.filter(pk=session_id, load_started_at__isnull=True).update(
        load_started_at=load_started_at
    )
    moved = move_status(session_id, (SessionStatus.STARTING,), SessionStatus.RUNNING)
    if moved:
        webhooks.notify(session_id, WebhookEvent.STARTED)
        newrelic.queue_marker(session_id, newrelic.START)
    return moved


def note_waiting(session_id: int, detail: str) -> None:
    """Say what an active session waits for (``status_detail``; "" once nothing holds it
    up), recording each new reason as an event."""
    changed = (
        LoadTestSession.objects.filter(pk=session_id, status__in=ACTIVE_STATUSES)
        .exclude(status_detail=detail)
        .update(status_detail=detail)
    )
    if changed and detail:
        logger.warning("Session %s: %s", session_id, detail)
        record_event(session_id, EventKind.WAITING_FOR_WORKERS, detail)


def finish_session(
    session_id: int, reason: EndReason, detail: str = "", *, notify: bool = True
) -> bool:
    """An active session reaches its terminal status. Returns False if it had already ended.

    A reason recorded when the stop was requested wins over the one given here, so a user's
    stop reads "stopped by user" even though the monitor is the one finishing it. The
    webhooks hear of it here unless the caller (``notify=False``) tells them itself, once it
    has copied the last statistics into the summary they receive.
    """
    session = LoadTestSession.objects.filter(pk=session_id).first()
    if session is None or session.status not in ACTIVE_STATUSES:
        return False
    final_reason = EndReason(session.end_reason) if session.end_reason else EndReason(reason)
    updated = move_status(
        session_id,
        ACTIVE_STATUSES,
        final_reason.final_status,
        end_reason=final_reason,
        end_detail=detail or session.end_detail,
        end_time=timezone.now(),
        status_detail="",
    )
    if updated:
        logger.info(
            "Session %s ended: %s (%s). %s",
            session_id,
            final_reason.final_status,
            final_reason,
            detail,
        )
        if notify:
            webhooks.notify_final(session_id)
            newrelic.queue_marker(session_id, newrelic.END)
    return bool(updated)


def record_threshold_results(session_id: int, results: list[dict], *, final: bool = False) -> None:
    """Store each threshold's latest judgement (``apps.sessions.verdicts``); ``final`` marks
    the figures complete (``results_final_at``), even for a session without thresholds."""
    fields: dict[str, object] = {"threshold_results": results}
    if final:
        fields["results_final_at"] = timezone.now()
    LoadTestSession.objects.filter(pk=session_id).update(**fields)


def record_event(session_id: int, kind: str, message: str, *, at=None, hostname="", shard=None):
    """Record an event; the session keeps its newest SESSION_EVENTS_KEPT, whichever path
    wrote them (a load reduction flapping for weeks must not grow the table)."""
    event = SessionEvent.objects.create(
        session_id=session_id,
        at=at or timezone.now(),
        kind=kind,
        message=message,
        hostname=hostname,
        shard=shard,
    )
    keep_newest(SessionEvent.objects.filter(session_id=session_id), settings.SESSION_EVENTS_KEPT)
    return event


def record_request_log(session_id: int, samples: list[dict]) -> None:
    """Add the shards' sampled requests (oldest first) to the session's request log, keeping
    the newest REQUEST_LOG_KEPT, in one transaction: a reader never sees more. Text is cut to
    its column: paths may be long."""

    def fitted(field: str, value: str) -> str:
        return value[: RequestLogEntry._meta.get_field(field).max_length]

    entries = [
        RequestLogEntry(
            session_id=session_id,
            at=datetime.fromtimestamp(sample["at"], tz=UTC),
            endpoint=fitted("endpoint", sample["endpoint"]),
            method=fitted("method", sample["method"]),
            path=fitted("path", sample["path"]),
            status=sample["status"],
            failure_class=sample["failure_class"],
            latency_ms=sample["latency_ms"],
            hostname=fitted("hostname", sample["hostname"]),
            trace_id=fitted("trace_id", sample.get("trace_id", "")),
        )
        for sample in samples
    ]
    with transaction.atomic():
        RequestLogEntry.objects.bulk_create(entries)
        keep_newest(
            RequestLogEntry.objects.filter(session_id=session_id), settings.REQUEST_LOG_KEPT
        )


def keep_newest(rows: QuerySet, kept: int) -> None:
    """Delete all but the ``kept`` newest of ``rows`` (by ``at``): a session's logs of events,
    errors and requests stay bounded however long it runs."""
    stale_ids = list(rows.order_by("-at", "-pk").values_list("pk", flat=True)[kept:])
    if stale_ids:
        rows.model.objects.filter(pk__in=stale_ids).delete()


def _check_running(session: LoadTestSession, what: str) -> None:
    if session.status not in (SessionStatus.STARTING, SessionStatus.RUNNING):
        raise SessionStateError(
            f"Session {session.pk} is {session.status}; {what} can change while it runs."
        )


def _apply_live(
    session: LoadTestSession,
    changes: dict[str, object],
    tell_engine: Callable[[], object],
    *,
    what: str,
    kept: str,
    user,
    via: str,
) -> None:
    """A running session's change: the engine first (Redis; nothing stored if it cannot be
    told), then the row and the configuration history."""
    before = history.snapshot(session)
    try:
        tell_engine()
    except (RedisError, OSError, BrokerUnavailable) as exc:
        raise EngineUnavailable(
            f"Could not reach Redis to change the {what} ({exc}). Check that Redis is running "
            f"at REDIS_URL, then try again; the session keeps its current {kept}."
        ) from exc
    LoadTestSession.objects.filter(pk=session.pk).update(**changes)
    session.refresh_from_db()
    history.record_changes(session, before, user=user, via=via)


def change_users(
    session: LoadTestSession, concurrent_users: int, user=None, via: str = "api"
) -> LoadTestSession:
    """Change the load of a running session (the seed's adjust_worker_count).

    The new count is spread over shards at once: running shards adjust within a poll, new
    shards are queued, shards no longer needed retire. Validated like a new configuration.
    """
    require_permission(user, OPERATE_SESSIONS, "change the load of running sessions")
    _check_running(session, "users")
    check_concurrent_users(concurrent_users)
    check_total_users(concurrent_users - session.concurrent_users)
    previous = session.concurrent_users
    _apply_live(
        session,
        {"concurrent_users": concurrent_users},
        lambda: dispatch.resize_session(session.pk, concurrent_users, session.target_rps),
        what="load",
        kept="users",
        user=user,
        via=via,
    )
    record_event(
        session.pk,
        EventKind.USERS_CHANGED,
        f"Users {previous} -> {concurrent_users} by {user or 'system'}.",
    )
    logger.info("Session %s: users %s -> %s by %s.", session.pk, previous, concurrent_users,
                user or "system")  # fmt: skip
    session.refresh_from_db()
    return session


def change_weights(
    session: LoadTestSession, endpoint_weights: Mapping[str, float], user=None, via: str = "api"
) -> LoadTestSession:
    """Change the request mix of a running session (the seed's update_weights).

    ``endpoint_weights`` replaces the session's overrides, checked like a new configuration's
    against the target's endpoints now. Every shard picks the new weights up on its next
    control poll (``control.set_endpoint_weights``). The plan's endpoints stay those the
    session started with: an endpoint left out then (weight 0) has no prepared request on the
    shards, so giving it weight is refused with a pointer to a clone.
    """
    require_permission(user, OPERATE_SESSIONS, "change the request mix of running sessions")
    _check_running(session, "weights")
    default_weights = catalog_weights(session.target)
    problems = endpoint_weights_problems(endpoint_weights, default_weights)
    if problems:
        raise ValidationError({"endpoint_weights": problems})
    weights = effective_weights(default_weights, endpoint_weights)
    plan = session.read_plan()  # frozen by the start, with the status starting
    planned = set(_mix_names(plan))
    left_out = sorted(
        name for name, weight in endpoint_weights.items() if weight > 0 and name not in planned
    )
    if left_out:
        raise ValidationError(
            {
                "endpoint_weights": [
                    f"{', '.join(left_out)} had weight 0 when the session started, so its "
                    "shards prepared no request for it; clone the session with these weights "
                    "to send to it."
                ]
            }
        )
    plan_weights = _weights_by_plan_position(weights, plan)
    if not any(weight > 0 for weight in plan_weights):
        raise ValidationError(
            {
                "endpoint_weights": [
                    "At least one endpoint (or flow) of the running plan needs weight."
                ]
            }
        )
    _apply_live(
        session,
        {"endpoint_weights": endpoint_weights},
        lambda: control.set_endpoint_weights(control.get_redis(), session.pk, plan_weights),
        what="weights",
        kept="mix",
        user=user,
        via=via,
    )
    mix = ", ".join(
        f"{name} {weight:g}"
        for name, weight in zip(_pick_names(plan), plan_weights, strict=True)
        if name is not None
    )
    record_event(
        session.pk, EventKind.WEIGHTS_CHANGED, f"Endpoint weights now {mix} by {user or 'system'}."
    )
    logger.info("Session %s: endpoint weights %s by %s.", session.pk, mix, user or "system")
    return session


def _pick_names(plan: Plan) -> list[str | None]:
    """The names of ``Plan.pick_weights()``'s entries: each endpoint's (None for a flow's
    step, never picked on its own), then each flow's."""
    return [endpoint.name if endpoint.flow is None else None for endpoint in plan.endpoints] + [
        flow.name for flow in plan.flows
    ]


def _mix_names(plan: Plan) -> list[str]:
    """What a running plan can give weight to: its single endpoints and its flows."""
    return [name for name in _pick_names(plan) if name is not None]


def _weights_by_plan_position(weights: Mapping[str, float], plan: Plan) -> list[float]:
    """One weight per entry of ``Plan.pick_weights()``, as the shards read them: each
    endpoint of the plan (0 for a flow's steps), then each flow. An endpoint or flow deleted
    from the catalog since the start gets no more requests."""
    return [0.0 if name is None else weights.get(name, 0.0) for name in _pick_names(plan)]


def live_endpoint_weights(session: LoadTestSession) -> list[float] | None:
    """The endpoint weights a running session's shards use, by plan position, if they were
    changed while it ran (``change_weights``); None while the plan's own weights hold.

    What the monitor publishes again when Redis lost the session's state: the configuration
    history says whether the weights changed after the start, the row says what to.
    """
    changed_live = (
        history.history_of(session)
        .filter(field="endpoint_weights", changed_at__gte=session.start_time)
        .exists()
    )
    if not changed_live:
        return None
    weights = effective_weights(catalog_weights(session.target), session.endpoint_weights)
    plan_weights = _weights_by_plan_position(weights, session.read_plan())
    return plan_weights if any(weight > 0 for weight in plan_weights) else None


def emergency_stop(user=None) -> list[int]:
    """Stop every active session on every worker, now. Returns the sessions stopped.

    A global flag stops every shard started before it within a poll, even one whose session
    the database no longer counts as active; the load of sessions whose row is gone is
    stopped and forgotten (``stop_orphan_load``); then each active session is stopped as
    usual, recording who did it.
    """
    require_permission(user, EMERGENCY_STOP, "use the emergency stop")
    try:
        control.emergency_stop_all(control.get_redis())
        orphans = stop_orphan_load()
    except Exception as exc:
        raise EngineUnavailable(
            f"Could not reach Redis for the emergency stop ({exc}). Check that Redis is "
            "running at REDIS_URL and call it again; meanwhile shards stop by themselves once "
            "they have lost Redis for longer than HEARTBEAT_TTL_S."
        ) from exc
    stopped = []
    for session in LoadTestSession.objects.filter(status__in=ACTIVE_STATUSES):
        try:
            _stop(session, user, EndReason.EMERGENCY_STOP, "")
        except SessionStateError:
            continue  # it ended meanwhile
        stopped.append(session.pk)
    logger.warning("Emergency stop by %s: sessions %s; load without a session row: %s.",
                   user or "system", stopped, orphans)  # fmt: skip
    return stopped


def stop_orphan_load() -> list[int]:
    """Stop the shards of sessions whose row is gone and forget their Redis state.

    ``delete_session`` never deletes a running session, so this finds only rows removed
    behind the services' back (raw SQL, a restored backup, a bug): without its row nobody
    could stop that load. Beat runs it with every monitor pass, the emergency stop runs it
    too. Only a missing row counts: a session that has just ended keeps its Redis state until
    its monitor has copied the last counts. Returns the ids of the sessions stopped.
    """
    client = control.get_redis()
    dispatched = control.dispatched_session_ids(client)
    if not dispatched:
        return []
    existing = set(LoadTestSession.objects.filter(pk__in=dispatched).values_list("pk", flat=True))
    orphans = sorted(dispatched - existing)
    for session_id in orphans:
        # Stop first: the shards then stop within a poll even if forgetting fails halfway;
        # forgetting also takes their heartbeats off the workers' list.
        control.request_stop(client, session_id)
        control.forget_session(client, session_id)
        logger.warning(
            "Session %s has no database row: its load was stopped and its Redis state forgotten.",
            session_id,
        )
    return orphans


# --- webhooks --------------------------------------------------------------------------------


def check_webhook_scope(user, session_id: int | None) -> None:
    """A session's webhooks are its operators' (the permission to change sessions); a
    global webhook hears about every session, so only the admin role manages those."""
    if session_id is None:
        require_permission(user, MANAGE_GLOBAL_WEBHOOKS, "manage global webhooks")
    else:
        require_permission(user, CHANGE_SESSIONS, "manage a session's webhooks")


def save_webhook(webhook: Webhook, user=None, via: str = "api") -> Webhook:
    """Create or change a webhook, checked whole (URL rules in ``Webhook.clean``); a change
    needs the right to the webhook's scope before and after (moving a session's webhook to
    global needs the admin role)."""
    stored = Webhook.objects.filter(pk=webhook.pk).first() if webhook.pk else None
    if stored is None:
        require_permission(user, ADD_WEBHOOKS, "add webhooks")
    else:
        require_permission(user, CHANGE_WEBHOOKS, "change webhooks")
        check_webhook_scope(user, stored.session_id)
    check_webhook_scope(user, webhook.session_id)
    webhook.full_clean()
    if stored is None:
        webhook.created_by = user if user is not None and user.is_authenticated else None
        webhook.save()
        return webhook
    before = history.snapshot(stored)
    with transaction.atomic():
        webhook.save()
        history.record_changes(webhook, before, user=user, via=via)
    return webhook


def delete_webhook(webhook: Webhook, user=None) -> None:
    require_permission(user, DELETE_WEBHOOKS, "delete webhooks")
    check_webhook_scope(user, webhook.session_id)
    webhook.delete()


# --- baselines -------------------------------------------------------------------------------

# A run compared against must have complete figures: one that ended normally or was stopped.
BASELINE_STATUSES = (SessionStatus.COMPLETED, SessionStatus.STOPPED)


def set_baseline(session: LoadTestSession, user=None, via: str = "api") -> Target:
    """Make ``session`` its target's baseline: later finished runs on the target show their
    deltas against it and are judged for regressions (``comparison``). Only a finished run
    with results can be one; the change is in the target's configuration history."""
    require_permission(user, OPERATE_SESSIONS, "set a target's baseline")
    with transaction.atomic():
        session.refresh_from_db(fields=["status", "total_requests", "target"])
        if session.status not in BASELINE_STATUSES:
            raise SessionStateError(
                f"Session {session.pk} is {session.status}: only a completed or stopped session "
                "can be a baseline (its figures are final then; a failed run's are not "
                "representative)."
            )
        if not session.total_requests:
            raise SessionStateError(
                f"Session {session.pk} sent no request: there is nothing to compare with."
            )
        target = Target.objects.select_for_update().get(pk=session.target_id)
        return _change_baseline(target, session, user, via)


def clear_baseline(target: Target, user=None, via: str = "api") -> Target:
    """Leave ``target`` without a baseline: its runs are no longer judged for regressions."""
    require_permission(user, OPERATE_SESSIONS, "clear a target's baseline")
    with transaction.atomic():
        target = Target.objects.select_for_update().get(pk=target.pk)
        return _change_baseline(target, None, user, via)


def _change_baseline(target: Target, session: LoadTestSession | None, user, via: str) -> Target:
    before = history.snapshot(target)
    Target.objects.filter(pk=target.pk).update(baseline_session=session)
    target.refresh_from_db()
    history.record_changes(target, before, user=user, via=via)
    return target


# --- data feeds ------------------------------------------------------------------------------

# A target's feed is part of the catalog: whoever may change targets may change their feeds.
CHANGE_TARGETS = "loadtests.change_target"
FEED_FILENAME_CHARS_MAX = 200


def check_feed_mode(mode: object) -> str:
    if mode not in FeedMode.values:
        raise ValidationError(
            {
                "mode": [
                    f"Unknown mode {str(mode)[:40]!r}; choose one of {', '.join(FeedMode.values)}."
                ]
            }
        )
    return str(mode)


def clean_feed_filename(filename: object) -> str:
    """The file's own name, without directories or characters a page or log line cannot show."""
    name = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    return name[:FEED_FILENAME_CHARS_MAX]


def save_feed(
    target: Target,
    data: bytes,
    *,
    mode: object = None,
    filename: object = "",
    user=None,
    via: str = "api",
) -> DataFeed:
    """Give ``target`` the data feed in ``data`` (CSV bytes), replacing any it had; ``mode``
    None keeps the current one (sequential for a new feed). Checked whole first (see
    ``feeds.parse_feed_csv``): a bad file changes nothing. Recorded in the target's
    configuration history (field ``feed``: name, columns, rows, size, hash, mode; never the
    values)."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    if mode is not None:
        mode = check_feed_mode(mode)
    try:
        columns, rows = parse_feed_csv(data)
    except FeedError as exc:
        raise ValidationError({"file": [str(exc)]}) from exc
    with transaction.atomic():
        target = Target.objects.select_for_update().get(pk=target.pk)
        feed = DataFeed.objects.filter(target=target).first()
        before = feed.summary() if feed is not None else None
        if feed is None:
            feed = DataFeed(target=target)
        feed.filename = clean_feed_filename(filename)
        feed.columns = columns
        feed.rows = rows
        feed.row_count = len(rows)
        feed.size_bytes = len(data)
        feed.sha256 = hashlib.sha256(data).hexdigest()
        if mode is not None:
            feed.mode = mode
        feed.uploaded_at = timezone.now()
        feed.uploaded_by = user if user is not None and user.is_authenticated else None
        feed.save()
        history.record_feed_change(target, before, feed.summary(), user=user, via=via)
    return feed


def set_feed_mode(target: Target, mode: object, *, user=None, via: str = "api") -> DataFeed:
    """Change how the target's feed hands out rows (the rows stay); sessions started later
    use it."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    mode = check_feed_mode(mode)
    with transaction.atomic():
        feed = DataFeed.objects.select_for_update().filter(target=target).first()
        if feed is None:
            raise DataFeed.DoesNotExist(f"Target '{target.name}' has no data feed.")
        before = feed.summary()
        feed.mode = mode
        feed.save(update_fields=["mode"])
        history.record_feed_change(target, before, feed.summary(), user=user, via=via)
    return feed


def delete_feed(target: Target, *, user=None, via: str = "api") -> bool:
    """Remove the target's data feed; returns whether it had one. Sessions already started
    keep theirs (it is in their plan)."""
    require_permission(user, CHANGE_TARGETS, "change targets' data feeds")
    with transaction.atomic():
        feed = DataFeed.objects.select_for_update().filter(target=target).first()
        if feed is None:
            return False
        before = feed.summary()
        feed.delete()
        history.record_feed_change(target, before, None, user=user, via=via)
    return True


# --- schedules -------------------------------------------------------------------------------

# Beat queues this with the schedule's id (apps/sessions/tasks.py), on the control queue.
RUN_SCHEDULE_TASK = "apps.sessions.tasks.run_schedule"
# A run waiting to start counts as running: a second firing must not start another beside it.
SCHEDULE_BUSY_STATUSES = (SessionStatus.PENDING, *ACTIVE_STATUSES)


def save_schedule(schedule: Schedule, user=None) -> Schedule:
    """Create or change a schedule, and the PeriodicTask beat fires it by, in one transaction.

    Beat (django-celery-beat's DatabaseScheduler) notices the changed PeriodicTask within its
    loop interval, so a new, changed, disabled or enabled schedule needs no restart.
    """
    creating = schedule.pk is None
    require_permission(
        user,
        ADD_SCHEDULES if creating else CHANGE_SCHEDULES,
        "create schedules" if creating else "change schedules",
    )
    if creating and user is not None and user.is_authenticated:
        schedule.created_by = user
    schedule.full_clean()
    with transaction.atomic():
        schedule.save()
        _sync_periodic_task(schedule)
    return schedule


def _sync_periodic_task(schedule: Schedule) -> None:
    fields: dict[str, object] = {"interval": None, "crontab": None}
    if schedule.interval_seconds:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=schedule.interval_seconds, period=IntervalSchedule.SECONDS
        )
    else:
        minute, hour, day_of_month, month_of_year, day_of_week = schedule.crontab.split()
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=schedule.time_zone,
        )
    task = schedule.periodic_task or PeriodicTask(name=f"schedule-{schedule.pk}")
    task.task = RUN_SCHEDULE_TASK
    task.args = json.dumps([schedule.pk])
    task.queue = "control"
    task.enabled = schedule.enabled
    # A firing the control worker has not taken before the next one is due is dropped, not
    # piled up behind an outage (the next firing comes anyway).
    task.expire_seconds = schedule.interval_seconds
    task.description = f"Schedule {schedule.pk}: {schedule.name}"[:200]
    for name, value in fields.items():
        setattr(task, name, value)
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=task)


def delete_schedule(schedule: Schedule, user=None) -> None:
    """Delete a schedule and its PeriodicTask; its runs stay, as ordinary sessions."""
    require_permission(user, DELETE_SCHEDULES, "delete schedules")
    with transaction.atomic():
        if schedule.periodic_task_id:
            PeriodicTask.objects.filter(pk=schedule.periodic_task_id).delete()
        schedule.delete()


def _note_schedule(schedule_id: int, message: str, skipped: bool = False) -> None:
    logger.info("Schedule %s: %s", schedule_id, message)
    fields: dict[str, object] = {"last_message": message}
    if skipped:
        fields.update(last_skipped_at=timezone.now(), skipped_runs=F("skipped_runs") + 1)
    Schedule.objects.filter(pk=schedule_id).update(**fields)


def run_schedule(schedule_id: int, now: datetime | None = None) -> LoadTestSession | None:
    """One firing of a schedule (beat, through the task): start a run, or record why not.

    No overlap: while the previous run is pending or active the firing is skipped and counted.
    Outside the window nothing starts. The run is created and started with the permissions
    of the schedule's owner, like any session that person starts; its duration is cut to end
    when the window closes.
    """
    now = now or timezone.now()
    with transaction.atomic():
        # Lock the schedule's row (the whole database on SQLite) until the run exists, so two
        # firings racing cannot both find no run and both start one.
        if not Schedule.objects.filter(pk=schedule_id).update(enabled=F("enabled")):
            return None  # deleted meanwhile
        schedule = Schedule.objects.select_related("template", "created_by").get(pk=schedule_id)
        if not schedule.enabled:
            return None
        seconds_left = schedule.window().seconds_left(now)
        if seconds_left is None:
            logger.debug("Schedule %s: outside its window, nothing started.", schedule_id)
            return None
        busy = schedule.runs.filter(status__in=SCHEDULE_BUSY_STATUSES).order_by("pk").first()
        if busy is not None:
            _note_schedule(
                schedule_id,
                f"Skipped at {now:%Y-%m-%d %H:%M:%S %Z}: the previous run, session {busy.pk}, "
                f"is still {busy.status}.",
                skipped=True,
            )
            return None
        owner = schedule.created_by
        if owner is None or not owner.is_active:
            _note_schedule(schedule_id, "Not started: the schedule's owner no longer exists.")
            return None
        config = schedule.template.config()
        # To the second: runs of a schedule firing more than once a minute stay distinct.
        config["session_name"] = f"{schedule.name} {now:%Y-%m-%d %H:%M:%S}"[:200]
        duration = schedule.run_duration_minutes or config["duration_minutes"]
        if schedule.window_start is not None:
            # A run never outlasts its window; 0 (until stopped) ends with the window too.
            window_minutes = Decimal(seconds_left / 60).quantize(Decimal("0.0001"))
            duration = min(duration, window_minutes) if duration else window_minutes
        config["duration_minutes"] = max(duration, Decimal("0.0001"))
        run = LoadTestSession(**config, schedule=schedule)
        try:
            run = create_session(run, user=owner)
        except (PermissionDenied, ValidationError) as exc:
            _note_schedule(schedule_id, f"Not started: {_words(exc)}")
            return None
        Schedule.objects.filter(pk=schedule_id).update(
            last_run_at=now, last_message=f"Started session {run.pk}."
        )
    try:
        return start_session(run, user=owner)
    except (PermissionDenied, ValidationError, SessionStateError, EngineUnavailable) as exc:
        # A run that never started is withdrawn (a pending one would hold off every later
        # firing as "still running"); the schedule says why.
        run.refresh_from_db(fields=["status"])
        if run.status == SessionStatus.PENDING:
            delete_session(run)
        _note_schedule(schedule_id, f"A run could not start: {_words(exc)}")
        return None


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)
