"""Webhooks in the admin, saved through the same checks as the API."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from apps.sessions.access.permissions import MANAGE_GLOBAL_WEBHOOKS
from apps.sessions.integrations.webhook_settings import (
    check_webhook_scope,
    delete_webhook,
    save_webhook,
)
from apps.sessions.models import Webhook
from apps.workers.secrets import describe_url


class WebhookForm(forms.ModelForm):
    """The secret is never shown: the field starts empty, and empty keeps the stored one
    (``clear_secret`` removes it)."""

    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        max_length=Webhook._meta.get_field("secret").max_length,
        help_text="Signs each body (X-Loadtest-Signature). Leave empty to keep the current secret.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the secret.")

    class Meta:
        model = Webhook
        fields = ["name", "url", "secret", "clear_secret", "events", "format", "session",
                  "enabled"]  # fmt: skip

    def clean(self):
        data = super().clean()
        # Checked here too, so the admin says why beside the field instead of a 403 page.
        try:
            check_webhook_scope(self.user, data.get("session") and data["session"].pk)
        except PermissionDenied as exc:
            self.add_error("session", str(exc))
        return data

    def _post_clean(self):
        stored_secret = self.instance.secret
        super()._post_clean()
        if self.cleaned_data.get("clear_secret"):
            self.instance.secret = ""
        elif not self.cleaned_data.get("secret"):
            self.instance.secret = stored_secret


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Webhooks, saved through ``services`` with the API's checks: a session's by its
    operators, a global one by the admin role."""

    form = WebhookForm
    list_display = ["name", "scope", "host", "events", "format", "enabled", "updated_at"]
    list_filter = ["enabled", "format"]
    search_fields = ["name"]

    @admin.display(description="scope")
    def scope(self, webhook: Webhook) -> str:
        return f"session #{webhook.session_id}" if webhook.session_id else "global"

    @admin.display(description="receiver")
    def host(self, webhook: Webhook) -> str:
        return describe_url(webhook.url)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.user = request.user
        return form

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and not self._may_manage_scope(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not self._may_manage_scope(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    @staticmethod
    def _may_manage_scope(request, webhook: Webhook) -> bool:
        return webhook.session_id is not None or request.user.has_perm(MANAGE_GLOBAL_WEBHOOKS)

    def save_model(self, request, obj, form, change) -> None:
        save_webhook(obj, user=request.user, via="admin")

    def delete_model(self, request, obj) -> None:
        delete_webhook(obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for webhook in queryset:
            delete_webhook(webhook, user=request.user)
