"""``manage.py prepare``: everything the service needs before its processes start.

Migrates, collects static files, repairs the role groups, creates the default target
(TARGET_APP_URL with the demo app's endpoints) and an admin user with an API token. Safe to
run at every start: the run command and the compose `web` service both do.

A generated admin password is saved in DATA_DIR under the database's fingerprint, one file
per database: switching DATABASE_URL never shows another database's password. Flower has
credentials of its own (``flower_basic_auth``), never the admin's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from rest_framework.authtoken.models import Token

from apps.sessions.access.roles import sync_roles
from apps.sessions.catalog.defaults import default_target


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
    default_target()

    username = os.environ.get("ADMIN_USERNAME", "admin")
    password = os.environ.get("ADMIN_PASSWORD", "")
    saved = admin_password_file()
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        password = password or secrets.token_urlsafe(12)
        user = user_model.objects.create_superuser(
            username, os.environ.get("ADMIN_EMAIL", ""), password
        )
        if "ADMIN_PASSWORD" not in os.environ:
            # Generated: keep it with this database so later starts can show it again.
            write_secret(saved, password)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    else:
        password = _saved_admin_password(user, saved)
    token, _ = Token.objects.get_or_create(user=user)
    return username, password, token.key


def database_fingerprint() -> str:
    """A short, stable name for the database in use: engine, server and database name (the
    resolved file for SQLite), never the password."""
    config = connection.settings_dict
    name = str(config["NAME"])
    if config["ENGINE"].endswith("sqlite3"):
        name = str(Path(name).resolve())
    server = [str(config.get(key) or "") for key in ("ENGINE", "HOST", "PORT", "USER")]
    identity = "|".join([*server, name])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def admin_password_file() -> Path:
    return settings.DATA_DIR / f"admin_password.{database_fingerprint()}"


def _saved_admin_password(user, saved: Path) -> str:
    """The saved password if it still signs ``user`` in; otherwise say how to set one.

    ``admin_password`` is where versions before per-database files saved it: adopted for
    this database when it signs the user in here.
    """
    legacy = settings.DATA_DIR / "admin_password"
    for candidate in (saved, legacy):
        password = candidate.read_text().strip() if candidate.exists() else ""
        if password and user.check_password(password):
            if candidate == legacy:
                write_secret(saved, password)
            return password
    return "(not saved for this database; set ADMIN_PASSWORD to reset it)"


def flower_basic_auth() -> str:
    """Flower's ``user:password``: FLOWER_BASIC_AUTH, or credentials generated once and kept
    in DATA_DIR/flower_basic_auth. Flower's page cannot lock out password guessing, so its
    password is long and random, and never the admin's."""
    configured = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    if configured:
        return configured
    saved = settings.DATA_DIR / "flower_basic_auth"
    if not saved.exists():
        write_secret(saved, f"flower:{secrets.token_urlsafe(24)}")
    return saved.read_text().strip()


def embedded_redis_password() -> str:
    """The embedded Redis's password, generated once into DATA_DIR/redis_password (0600):
    127.0.0.1 is reachable by every user of the machine, and Redis holds sessions' plans."""
    saved = settings.DATA_DIR / "redis_password"
    if not saved.exists():
        write_secret(saved, secrets.token_urlsafe(32))
    return saved.read_text().strip()


def metrics_token_file() -> Path | None:
    """For one machine: a METRICS_TOKEN generated once into DATA_DIR/metrics_token, so that
    /metrics is on and guarded. None when the operator chose a guard (METRICS_TOKEN,
    METRICS_TOKEN_FILE or METRICS_ALLOWED_ADDRESSES): theirs stands as it is."""
    if settings.METRICS_TOKEN or settings.METRICS_ALLOWED_ADDRESSES:
        return None
    saved = settings.DATA_DIR / "metrics_token"
    if not saved.exists():
        write_secret(saved, secrets.token_urlsafe(32))
    return saved


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, from the first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as secret_file:
        secret_file.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through os.open


class Command(BaseCommand):
    help = "Migrate, collect static files, create the default target and the admin user."

    def handle(self, *args, **options) -> None:
        username, _password, _token = prepare_service()
        # Platforms keep this output in their logs (a Procfile's release phase, compose's web
        # service): never the password or the token.
        self.stdout.write(
            f"Ready. Admin user {username!r}; its password is ADMIN_PASSWORD or the one generated"
            f" on first start, kept in {admin_password_file()}; its API token from `manage.py "
            f"drf_create_token {username}`."
        )
