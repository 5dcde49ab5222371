"""The Flows page: each target's flows with their steps and weights, and a form to create,
edit and delete them. The steps are edited as JSON (the API's shape), and every save goes
through ``save_flow``: the API's rules, messages and permissions. Who may only read
the catalog sees the list without the buttons, and the server refuses their forms anyway."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from apps.sessions.access.permissions import (
    ADD_FLOWS,
    CHANGE_FLOWS,
    DELETE_FLOWS,
    VIEW_FLOWS,
    require_permission,
)
from apps.sessions.catalog.flow_changes import delete_flow, save_flow
from apps.sessions.catalog.flows import steps_as_data, steps_from_data
from apps.sessions.choices import Via
from apps.sessions.dashboard.views import _can as dashboard_can
from apps.sessions.dashboard.views import _links
from apps.sessions.models import Flow, Target
from apps.sessions.validation import BODY_BYTES_MAX, loads_json

# The steps editor's text: a flow has at most 50 steps of a few hundred characters each.
STEPS_TEXT_CHARS_MAX = BODY_BYTES_MAX


def _can(request) -> dict[str, bool]:
    """The dashboard's own entries (the navigation reads them) and what this page offers."""
    user = request.user
    return {
        **dashboard_can(request),
        "add_flow": user.has_perm(ADD_FLOWS),
        "change_flow": user.has_perm(CHANGE_FLOWS),
        "delete_flow": user.has_perm(DELETE_FLOWS),
    }


@login_required
def flow_list(request):
    """Every target's flows (``?target=`` for one), steps in order."""
    require_permission(request.user, VIEW_FLOWS, "view flows")
    targets = Target.objects.order_by("name").prefetch_related("flows__steps__endpoint")
    if request.GET.get("target"):
        target = _target_or_none(request.GET["target"])
        targets = targets.filter(pk=target.pk if target is not None else None)
    context = {"targets": targets, "can": _can(request), **_links()}
    return render(request, "dashboard/flows.html", context)


@dataclass
class FlowForm:
    """What the form shows and what was wrong, by field (``steps`` holds every step's)."""

    flow: Flow
    steps_text: str
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, flow: Flow) -> FlowForm:
        """The form of a stored flow (its steps by endpoint name), or of a new one."""
        stored = steps_as_data(flow.steps.select_related("endpoint")) if flow.pk else []
        shown = [
            {
                "endpoint": step["endpoint_name"],
                "think_time_s": step["think_time_s"],
                "extract": step["extract"],
            }
            for step in stored
        ]
        return cls(flow=flow, steps_text=json.dumps(shown, indent=2, ensure_ascii=False))

    def save(self, request, post) -> Flow | None:
        """Apply the posted fields and save through the services; None (errors filed) if not."""
        flow = self.flow
        if flow.pk is None:
            flow.target = _target_or_none(post.get("target", ""))
            if flow.target_id is None:
                self.errors["target"] = ["Choose a target."]
        flow.name = post.get("name", "")
        flow.description = post.get("description", "")
        raw_weight = post.get("weight", "").strip()
        try:
            flow.weight = float(raw_weight)
        except ValueError:
            self.errors["weight"] = ["Enter a number (0 leaves the flow out of sessions)."]
        self.steps_text = post.get("steps", "")
        steps_data = self._read_steps()
        if self.errors:
            return None
        try:
            steps = steps_from_data(flow.target, steps_data)
            return save_flow(flow, steps, user=request.user, via=Via.PAGE)
        except ValidationError as exc:
            for key, problems in exc.message_dict.items():
                name = key if key in ("target", "name", "weight", "description") else "steps"
                shown = problems if name != "steps" or key == "steps" else [
                    _with_step_label(key, problem) for problem in problems
                ]  # fmt: skip
                self.errors.setdefault(name, []).extend(shown)
            return None

    def _read_steps(self) -> object:
        if len(self.steps_text) > STEPS_TEXT_CHARS_MAX:
            self.errors["steps"] = [f"At most {STEPS_TEXT_CHARS_MAX:,} characters of steps."]
            return None
        try:
            return loads_json(self.steps_text or "[]")
        except ValueError as exc:
            self.errors["steps"] = [f"Not valid JSON: {exc}."]
            return None


def _target_or_none(raw: str) -> Target | None:
    """The target a form or query names by id; None for anything else (a 64-bit key at most:
    PostgreSQL refuses a query for a larger one)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) >= 2**63:
        return None
    return Target.objects.filter(pk=int(raw)).first()


def _with_step_label(key: str, problem: str) -> str:
    """A step's problem led by the step it is about, unless the message already names it
    ("Flow 'shop', step 2 (cart-add): ..."), so the form does not say the step twice."""
    if problem.startswith("Flow '"):
        return problem
    return f"{_step_label(key)}: {problem}"


def _step_label(key: str) -> str:
    """``steps[1].endpoint`` as a person counts it: "Step 2, endpoint"."""
    head, _, name = key.partition(".")
    number = int(head[head.index("[") + 1 : -1]) + 1
    return f"Step {number}, {name}" if name else f"Step {number}"


@login_required
def flow_edit(request, pk: int | None = None):
    """Create (``/flows/new/?target=``) or edit a flow; a refusal is shown on the form."""
    if pk is None:
        require_permission(request.user, ADD_FLOWS, "add flows")
        flow = Flow()
        flow.target = _target_or_none(request.GET.get("target", ""))
    else:
        require_permission(request.user, CHANGE_FLOWS, "change flows")
        flow = get_object_or_404(Flow.objects.select_related("target"), pk=pk)
    form = FlowForm.of(flow)
    status = 200
    if request.method == "POST":
        saved = form.save(request, request.POST)
        if saved is not None:
            messages.success(request, f"Flow '{saved.name}' saved.")
            return redirect(f"{_list_url()}?target={saved.target_id}")
        status = 400
    context = {
        "form": form,
        "targets": Target.objects.order_by("name"),
        "can": _can(request),
        **_links(),
    }
    return render(request, "dashboard/flow_form.html", context, status=status)


@login_required
def flow_delete(request, pk: int):
    if request.method != "POST":
        return redirect(_list_url())
    flow = get_object_or_404(Flow, pk=pk)
    delete_flow(flow, user=request.user)  # PermissionDenied: a 403
    messages.success(request, f"Flow '{flow.name}' deleted.")
    return redirect(_list_url())


def _list_url() -> str:
    return reverse("dashboard:flows")
