"""What every admin page of the app shares: figure columns, refusals shown as messages, the
configuration history on save, and read-only pages."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import get_script_prefix

from apps.sessions.access import config_history
from apps.sessions.access.permissions import ADD_FLOWS, CHANGE_FLOWS, DELETE_FLOWS, VIEW_FLOWS
from apps.sessions.choices import SessionStatus
from apps.sessions.errors import EngineUnavailable, SessionStateError
from apps.sessions.models import LoadTestSession


def count_column(field: str):
    """A column (or read-only field) showing a count with thousands separators, sortable."""

    def column(obj) -> str | None:
        value = getattr(obj, field)
        return None if value is None else f"{value:,}"

    column.__name__ = field
    return admin.display(description=field.replace("_", " "), ordering=field)(column)


def ms_column(field: str, sortable: bool = True):
    """A column (or read-only field) showing milliseconds to 1 decimal: the stored floats
    carry microsecond noise (12.3456789) that nobody reads. A computed figure (a property,
    not a column) is not ``sortable``."""

    def column(obj) -> str | None:
        value = getattr(obj, field)
        return None if value is None else f"{value:,.1f}"

    column.__name__ = field
    ordering = field if sortable else None
    return admin.display(description=field.replace("_", " "), ordering=ordering)(column)


def dashboard_path(session: LoadTestSession) -> str:
    """The session's live dashboard page, ``/sessions/<id>/`` under the site's prefix."""
    return f"{get_script_prefix()}sessions/{session.pk}/"


class HistoryAdminMixin:
    """Record configuration changes made in the admin, as the API does."""

    def save_model(self, request, obj, form, change) -> None:
        before = config_history.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        if before is not None:
            config_history.record_changes(obj, before, user=request.user, via="admin")

    def save_formset(self, request, form, formset, change) -> None:
        # The forms have already copied the new values onto their instances: read the old
        # ones from the database.
        befores = {
            inline.instance.pk: config_history.snapshot(
                type(inline.instance).objects.get(pk=inline.instance.pk)
            )
            for inline in formset.initial_forms
            if inline.has_changed() and type(inline.instance) in config_history.TRACKED_FIELDS
        }
        super().save_formset(request, form, formset, change)
        for instance, _ in formset.changed_objects:
            if instance.pk in befores:
                config_history.record_changes(instance, befores[instance.pk], user=request.user,
                                       via="admin")  # fmt: skip


class CatalogPermissionsMixin:
    """Flows are part of the catalog: the admin asks for the endpoints' permissions, as the
    API and the services do (``ADD_FLOWS``...)."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(VIEW_FLOWS)

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(ADD_FLOWS)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(CHANGE_FLOWS)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(DELETE_FLOWS)


def refusal(exc: Exception) -> str:
    """What a refused change says to the person who tried it."""
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


# Refusals of the services that a page shows as a message; the view's transaction has rolled
# back whatever the attempt had written.
SERVICE_REFUSALS = (SessionStateError, EngineUnavailable, ValidationError)


def is_live(session: LoadTestSession) -> bool:
    """Starting or running: the session's live fields (its users) still change its load."""
    return session.status in (SessionStatus.STARTING, SessionStatus.RUNNING)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the system: readable, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
