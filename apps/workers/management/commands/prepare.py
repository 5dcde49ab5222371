"""``manage.py prepare``: everything the service needs before its processes start.

Migrates, collects static files, repairs the role groups, creates the default target
(TARGET_APP_URL with the demo app's endpoints) and an admin user with an API token. Safe to
run at every start: the run command and the compose `web` service both do.
"""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from apps.sessions import services
from apps.sessions.roles import sync_roles


def prepare_service() -> tuple[str, str, str]:
    """Returns the admin's username, password (as far as known) and API token."""
    call_command("migrate", interactive=False, verbosity=0)
    try:
        call_command("collectstatic", interactive=False, verbosity=0)
    except PermissionError as exc:
        # Typically static files collected by another user (root, at an image's build).
        raise CommandError(
            f"Cannot write the static files to {settings.STATIC_ROOT} ({exc}). The user that "
            "runs prepare must own that folder and its files; or set STATIC_ROOT to a folder "
            "it can write."
        ) from exc
    sync_roles(Group, Permission)
    services.default_target()

    username = os.environ.get("ADMIN_USERNAME", "admin")
    password = os.environ.get("ADMIN_PASSWORD", "")
    saved = settings.DATA_DIR / "admin_password"
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        password = password or secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(
            username, os.environ.get("ADMIN_EMAIL", ""), password
        )
        if "ADMIN_PASSWORD" not in os.environ:
            # Generated: keep it beside the database so later starts can show it again.
            saved.write_text(password)
            saved.chmod(0o600)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif saved.exists():
        password = saved.read_text().strip()
    else:
        password = "(unchanged; set ADMIN_PASSWORD to reset it)"
    token, _ = Token.objects.get_or_create(user=user)
    return username, password, token.key


class Command(BaseCommand):
    help = "Migrate, collect static files, create the default target and the admin user."

    def handle(self, *args, **options) -> None:
        username, _password, _token = prepare_service()
        # Platforms keep this output in their logs (a Procfile's release phase, compose's web
        # service): never the password or the token.
        self.stdout.write(
            f"Ready. Admin user {username!r}; its password is ADMIN_PASSWORD or the one generated"
            f" on first start (README: ADMIN_PASSWORD), its API token from `manage.py "
            f"drf_create_token {username}`."
        )
