"""The dashboard's pages. Each needs a signed-in user who may view sessions; the forms act
through ``services`` (with their permission checks); the live parts are the page scripts
reading the API and its event stream."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from redis.exceptions import RedisError
from rest_framework.exceptions import ValidationError as DRFValidationError

from apps.sessions.access import config_history
from apps.sessions.access.permissions import (
    ADD_SESSIONS,
    CHANGE_SCHEDULES,
    CHANGE_SESSIONS,
    DELETE_SCHEDULES,
    EMERGENCY_STOP,
    OPERATE_SESSIONS,
    require_permission,
)
from apps.sessions.api import comparison_params
from apps.sessions.api.session_filters import filter_sessions
from apps.sessions.api.snapshots import stats_snapshot
from apps.sessions.catalog.defaults import catalog_weights, default_target, find_default_target
from apps.sessions.choices import ACTIVE_STATUSES, TERMINAL_STATUSES, SessionStatus, Via
from apps.sessions.dashboard import tables
from apps.sessions.dashboard.forms import SessionForm
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.lifecycle.editing import check_clone_config
from apps.sessions.lifecycle.start import start_session
from apps.sessions.models import LoadTestSession, Schedule, Target
from apps.sessions.results import comparison, what_ran
from apps.sessions.results.configuration import CLONE_WORDS, changed_while_running, clone_choices
from apps.sessions.results.figures import run_figures
from apps.workers.control import get_redis
from apps.workers.inventory import live_workers, worker_summary

VIEW_SESSIONS = "loadtests.view_loadtestsession"
RECENT_FINISHED = 20
HISTORY_SHOWN = 50
ERRORS_SHOWN = 20
SESSIONS_PER_PAGE = 50


def _require_viewer(request) -> None:
    require_permission(request.user, VIEW_SESSIONS, "view sessions")


def _can(request) -> dict[str, bool]:
    """What the page offers this user; the server refuses the rest all the same."""
    user = request.user
    return {
        "add": user.has_perm(ADD_SESSIONS),
        "operate": user.has_perm(OPERATE_SESSIONS),
        "change": user.has_perm(CHANGE_SESSIONS),
        "emergency_stop": user.has_perm(EMERGENCY_STOP),
        "admin": user.is_staff,
    }


def _workers_or_none() -> list[dict] | None:
    """The live workers, or None when Redis cannot say (the page says so)."""
    try:
        return live_workers(get_redis())
    except (RedisError, OSError):
        return None


def _worker_context() -> dict:
    """The live workers and their count by role (None, both, when Redis cannot say): the
    control worker runs no load, so the pages count it apart."""
    workers = _workers_or_none()
    return {
        "workers": workers,
        "worker_summary": None if workers is None else worker_summary(workers),
    }


def _links() -> dict[str, str]:
    return {"flower_url": settings.FLOWER_URL}


@login_required
def overview(request):
    _require_viewer(request)
    sessions = LoadTestSession.objects.select_related("target")
    context = {
        "active": sessions.filter(status__in=ACTIVE_STATUSES).order_by("-start_time"),
        "pending": sessions.filter(status=SessionStatus.PENDING)[:RECENT_FINISHED],
        "finished": sessions.filter(status__in=TERMINAL_STATUSES).order_by("-end_time")[
            :RECENT_FINISHED
        ],
        **_worker_context(),
        "can": _can(request),
        **_links(),
    }
    return render(request, "dashboard/overview.html", context)


@login_required
def session_list(request):
    """Past (and present) sessions, filtered as ``GET /api/sessions/`` filters them, each
    with its whole-run figures; rows can be picked to compare."""
    _require_viewer(request)
    sessions = LoadTestSession.objects.select_related("target").prefetch_related("endpoint_stats")
    errors: dict[str, list[str]] = {}
    try:
        sessions = filter_sessions(sessions, request.GET)
    except DRFValidationError as exc:
        errors = {
            name: [str(m) for m in (messages if isinstance(messages, list) else [messages])]
            for name, messages in exc.detail.items()
        }
        sessions = sessions.none()
    page = Paginator(sessions.order_by("-created_at", "-pk"), SESSIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = [(session, run_figures(session).as_dict()) for session in page]
    context = {
        "page": page,
        "rows": rows,
        "errors": errors,
        "targets": Target.objects.order_by("name"),
        "statuses": SessionStatus.choices,
        "chosen": {
            "target": request.GET.getlist("target"),
            "status": request.GET.getlist("status"),
        },
        "can": _can(request),
        **_links(),
    }
    return render(request, "dashboard/sessions.html", context, status=400 if errors else 200)


@login_required
def session_detail(request, pk: int):
    _require_viewer(request)
    session = get_object_or_404(LoadTestSession.objects.select_related("target"), pk=pk)
    # The live weights: each endpoint's, then each flow's (``endpoint_weights`` names either).
    weights = {
        name: (session.endpoint_weights or {}).get(name, weight)
        for name, weight in catalog_weights(session.target).items()
    }
    against = comparison.against_baseline(session)
    changes = what_ran.changes_while_running(session)
    context = {
        "session": session,
        "baseline_id": session.target.baseline_session_id,
        "against_baseline": against,
        "baseline_rows": tables.baseline_rows(against) if against else [],
        "columns": tables.COLUMNS,
        "may_be_baseline": comparison.is_finished(session) and session.total_requests > 0,
        "snapshot": stats_snapshot(session),
        "weights": weights,
        "errors": session.error_samples.order_by("-at", "-pk")[:ERRORS_SHOWN],
        "history": config_history.history_of(session)[:HISTORY_SHOWN],
        "clone_choices": clone_choices(session),
        "is_terminal": session.status in TERMINAL_STATUSES,
        "can": _can(request),
        "users_run": what_ran.users_run(session, changes) if session.start_time else None,
        "changes_while_running": len(changes),
        "live_window_s": settings.LIVE_WINDOW_S,
        "live_window_max_s": settings.LIVE_WINDOW_MAX_S,
        **_links(),
    }
    return render(request, "dashboard/session_detail.html", context)


@login_required
def compare(request):
    """Sessions side by side (``?ids=1,2,3``): the comparison table, rendered here, and the
    overlaid charts and distributions, which compare.js draws from the API."""
    _require_viewer(request)
    # ``?ids=1,2`` as the API takes it, or ``?ids=1&ids=2`` as the overview's checkboxes send.
    ids = ",".join(request.GET.getlist("ids"))
    context: dict = {"can": _can(request), **_links()}
    try:
        sessions = comparison_params.parse_sessions(ids)
        margin_pct = comparison_params.parse_margin(request.GET.get("margin_pct"))
    except DRFValidationError as exc:
        context["problem"] = "; ".join(
            f"{name}: {' '.join(str(m) for m in messages)}" for name, messages in exc.detail.items()
        )
        return render(request, "dashboard/compare.html", context, status=400)
    result = comparison.compare(sessions, margin_pct=margin_pct)
    context.update(
        result=result,
        columns=tables.COLUMNS,
        rows=tables.comparison_rows(result),
        chart_sessions=[
            {"id": s.pk, "name": f"#{s.pk} {s.session_name}", "start": _epoch(s)} for s in sessions
        ],
    )
    return render(request, "dashboard/compare.html", context)


def _epoch(session: LoadTestSession) -> float | None:
    """When the session's load started, in epoch seconds: its charts' zero."""
    start = session.load_started_at or session.start_time
    return start.timestamp() if start else None


@login_required
def session_new(request):
    """New session (``?target=``), or Clone (``?clone=<id>``) prefilled; Save, Save and start."""
    require_permission(request.user, ADD_SESSIONS, "create sessions")
    clone_config = ""  # which configuration a clone copies, said when there are two
    if request.method == "POST":
        target = _chosen_target(request.POST.get("target"))
        form = SessionForm.from_post(target, request.POST)
        session = form.save(request)
        if session is not None:
            if "start" in request.POST:
                _start(request, session)
            return redirect("dashboard:session", pk=session.pk)
    elif request.GET.get("clone"):
        source = get_object_or_404(LoadTestSession, pk=_int_or_404(request.GET["clone"]))
        try:
            which = check_clone_config(request.GET.get("config"))
        except ValidationError as exc:
            form = SessionForm.clone_of(source)
            form.errors["non_field_errors"] = [
                f"config: {message}" for message in exc.message_dict["config"]
            ]
        else:
            form = SessionForm.clone_of(source, which)
            clone_config = which if changed_while_running(source) else ""
    else:
        form = SessionForm.blank(_chosen_target(request.GET.get("target")))
    context = {
        "form": form,
        "clone_config": CLONE_WORDS.get(clone_config, ""),
        "targets": Target.objects.order_by("name"),
        "can": _can(request),
        "session_header_name": settings.SESSION_HEADER_NAME,
        **_links(),
    }
    return render(request, "dashboard/session_form.html", context, status=_form_status(form))


@login_required
def schedules(request):
    """The schedules of load; enabling, disabling and deleting go through the API."""
    require_permission(request.user, "loadtests.view_schedule", "view schedules")
    context = {
        "schedules": Schedule.objects.select_related("template", "created_by"),
        "can_change": request.user.has_perm(CHANGE_SCHEDULES),
        "can_delete": request.user.has_perm(DELETE_SCHEDULES),
        "can": _can(request),
        **_links(),
    }
    return render(request, "dashboard/schedules.html", context)


@login_required
def workers(request):
    _require_viewer(request)
    context = {**_worker_context(), "can": _can(request), **_links()}
    return render(request, "dashboard/workers.html", context)


def _start(request, session: LoadTestSession) -> None:
    """Start after saving; a refusal is shown on the session's page (it stays pending)."""
    try:
        started = start_session(session, user=request.user, via=Via.PAGE)
    except (PermissionDenied, ValidationError, SessionStateError,
            EngineUnavailable) as exc:  # fmt: skip
        text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        messages.error(request, f"Saved, but not started: {text}")
        return
    for warning in getattr(started, "warnings", []):
        messages.warning(request, warning)


def _chosen_target(raw: str | None) -> Target | None:
    """The target picked in the form; the default target (made on first use) otherwise."""
    if raw:
        return get_object_or_404(Target, pk=_int_or_404(raw))
    existing = find_default_target()
    if existing is not None:
        return existing
    try:
        return default_target()
    except ValidationError:  # TARGET_APP_URL not on the allow-list: the user picks one
        return Target.objects.order_by("name").first()


def _int_or_404(raw: str) -> int:
    if not raw.isdigit():
        raise Http404("No such id.")
    return int(raw)


def _form_status(form: SessionForm) -> int:
    has_errors = form.errors or any(w.errors for w in form.weights)
    return 400 if has_errors else 200
