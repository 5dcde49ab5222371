"""The Targets pages: every target with its endpoints, and its data feed, which people with
the catalog's permission (the admin role) upload, re-mode or delete here; others see it
read-only. The forms act through ``services`` (the API's checks, history ``via: dashboard``)
and each change is in the audit log, as from the API and the admin."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render

from apps.sessions.access import audit
from apps.sessions.access.permissions import CHANGE_TARGETS, require_permission
from apps.sessions.catalog.feed_csv import PREVIEW_ROWS
from apps.sessions.catalog.feeds import delete_feed, save_feed, set_feed_mode
from apps.sessions.choices import FeedMode, Via
from apps.sessions.dashboard.views import _can, _links
from apps.sessions.models import DataFeed, Target

VIEW_TARGETS = "loadtests.view_target"


def _context(request) -> dict:
    """What every dashboard page passes its base template (the navigation's choices)."""
    return {"can": _can(request), **_links()}


@login_required
def target_list(request):
    require_permission(request.user, VIEW_TARGETS, "view targets")
    targets = Target.objects.annotate(endpoint_count=Count("endpoints")).select_related("feed")
    context = {"targets": targets.order_by("name"), **_context(request)}
    return render(request, "dashboard/targets.html", context)


@login_required
def target_detail(request, pk: int):
    require_permission(request.user, VIEW_TARGETS, "view targets")
    target = get_object_or_404(Target, pk=pk)
    problems: list[str] = []
    if request.method == "POST":
        problems = _change_feed(request, target)
        if not problems:
            return redirect("dashboard:target", pk=target.pk)
    feed = DataFeed.objects.filter(target=target).select_related("uploaded_by").first()
    context = {
        "target": target,
        "endpoints": target.endpoints.order_by("name"),
        "feed": feed,
        "preview": feed.preview(PREVIEW_ROWS) if feed else [],
        "problems": problems,
        "modes": FeedMode.choices,
        "may_change_feed": request.user.has_perm(CHANGE_TARGETS),
        "feed_max_bytes": settings.FEED_MAX_BYTES,
        "feed_max_rows": settings.FEED_MAX_ROWS,
        **_context(request),
    }
    return render(request, "dashboard/target_detail.html", context, status=400 if problems else 200)


def _change_feed(request, target: Target) -> list[str]:
    """Upload, re-mode or delete the feed, as the form's ``action`` says; what went wrong, in
    words (nothing changed then), or [] after a change (a message says what was done)."""
    action = request.POST.get("action", "")
    try:
        if action == "upload":
            done = _upload(request, target)
        elif action == "mode":
            feed = set_feed_mode(target, request.POST.get("mode"), user=request.user,
                                          via=Via.PAGE)  # fmt: skip
            done = f"The data feed's mode is now {feed.mode}."
        elif action == "delete":
            delete_feed(target, user=request.user, via=Via.PAGE)
            done = "The data feed is deleted."
        else:
            return ["Choose to upload, change the mode of, or delete the data feed."]
    except PermissionDenied:
        audit.record(request, 403, action=f"feed {action} target {target.pk}")
        raise
    except ValidationError as exc:
        audit.record(request, 400, action=f"feed {action} target {target.pk}")
        return exc.messages
    except DataFeed.DoesNotExist as exc:
        return [str(exc)]
    audit.record(request, 200, action=f"feed {action} target {target.pk}")
    messages.success(request, done)
    return []


def _upload(request, target: Target) -> str:
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationError("Choose a CSV file to upload.")
    if upload.size > settings.FEED_MAX_BYTES:
        raise ValidationError(
            f"The file is {upload.size:,} bytes; a data feed may be at most "
            f"{settings.FEED_MAX_BYTES:,} bytes (FEED_MAX_BYTES)."
        )
    feed = save_feed(
        target,
        upload.read(),
        mode=request.POST.get("mode") or None,
        filename=upload.name,
        user=request.user,
        via=Via.PAGE,
    )
    return (
        f"Data feed {feed.filename} stored: {feed.row_count:,} rows of "
        f"{', '.join(feed.columns)}, mode {feed.mode}."
    )
