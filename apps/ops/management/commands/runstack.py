"""``manage.py runstack``: the whole service on one machine, from the Procfile, until Ctrl-C.

Prepares the database (migrate, static files, an admin user and its API token, the default
target), starts Redis when REDIS_URL is not set, then runs every Procfile process (web, load
worker(s), control worker, beat, Flower, demo target) and prints where to open them.

It then supervises them: a process that exits (a crash, an out-of-memory kill, kill -9) is
started again after a delay (1 s, doubling to 30 s while it keeps crashing), and so is the
embedded Redis, whose append-only file in DATA_DIR/redis keeps every session's state across
its restarts and the run command's. Ctrl-C or SIGTERM stops every process it started,
workers first given time to flush.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loadtest_project import celery_app
from loadtest_project.allowlist import is_allowed
from loadtest_project.embedded_redis import (
    EmbeddedRedis,
    RedisNotFound,
    port_in_use,
    redis_answers,
)
from loadtest_project.procfile import (
    RELEASE,
    ProcessGroup,
    RestartBackoff,
    read_procfile,
    wait_for_celery_nodes,
)

from .prepare import (
    embedded_redis_password,
    flower_basic_auth,
    metrics_token_file,
    prepare_service,
)


def _metrics_access(token_file) -> str:
    """How to scrape /metrics, in the banner: the token's file, never the token."""
    if token_file is not None:
        return f"header 'Authorization: Bearer <the token in {token_file}>'"
    if settings.METRICS_TOKEN:
        return "header 'Authorization: Bearer <METRICS_TOKEN>'"
    return "from METRICS_ALLOWED_ADDRESSES only"


def _shown_host(bind_host: str) -> str:
    """Where a browser on this machine reaches a server bound to ``bind_host``."""
    return "localhost" if bind_host in ("0.0.0.0", "::") else bind_host


def make_data_private(data_dir: Path) -> None:
    """The data folder holds the database (API tokens, endpoints' secrets) and Redis's
    append-only file (plans with their headers and bodies): readable by its owner only. The
    umask covers what this command and every process it starts will create (SQLite's -wal
    and -shm, Redis's files); the walk, what an earlier release left readable."""
    os.umask(0o077)
    data_dir.chmod(0o700)
    for folder, subfolders, files in os.walk(data_dir):
        for name in subfolders:
            (Path(folder) / name).chmod(0o700)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o600)


REDIS = "redis"  # the embedded Redis, in the supervisor's messages


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except urllib.error.HTTPError:
            return True  # it answered (401 from Flower's basic auth, say)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


class Command(BaseCommand):
    help = "Run the whole service on this machine (web, workers, beat, Flower, demo target)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("LOAD_WORKERS", "1")),
            help="How many load worker processes to start (default LOAD_WORKERS or 1).",
        )
        parser.add_argument(
            "--no-app", action="store_true", help="Do not start the demo target app."
        )

    def handle(self, *args, **options) -> None:
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        host = os.environ.get("HOST", "127.0.0.1")
        shown_host = _shown_host(host)
        # Flower answers on this machine only unless FLOWER_HOST says otherwise (README).
        flower_host = _shown_host(os.environ.get("FLOWER_HOST", "127.0.0.1"))
        ports = {
            "web": int(os.environ.get("WEB_PORT", "8000")),
            "flower": int(os.environ.get("FLOWER_PORT", "5555")),
            "app": int(os.environ.get("APP_PORT", "5001")),
        }
        if options["no_app"]:
            del ports["app"]
        for name, port in ports.items():
            if port_in_use(port):
                raise CommandError(
                    f"Port {port} (for {name}) is already in use. Stop what uses it or set "
                    f"{name.upper()}_PORT to another port."
                )

        make_data_private(settings.DATA_DIR)
        redis_server, redis_url = self._redis()
        group = ProcessGroup()
        try:
            username, password, token = self._prepare_database(ports.get("app"))
            flower_auth = flower_basic_auth()
            metrics_token = metrics_token_file()
            env = {
                "REDIS_URL": redis_url,
                "DATA_DIR": str(settings.DATA_DIR),
                "TARGET_APP_URL": settings.TARGET_APP_URL,
                "ALLOWED_TARGET_HOSTS": ",".join(settings.ALLOWED_TARGET_HOSTS),
                "FLOWER_BASIC_AUTH": flower_auth,
                "FLOWER_URL": os.environ.get("FLOWER_URL")
                or f"http://{flower_host}:{ports['flower']}/",
                "HOST": host,
                **({"METRICS_TOKEN_FILE": str(metrics_token)} if metrics_token else {}),
            }
            self._start_processes(group, env, ports, options["workers"])
            node_host = socket.gethostname()  # what Celery's %h expands to
            nodes = [f"{os.environ.get('CONTROL_NAME', 'control')}@{node_host}"] + [
                f"load{number}@{node_host}" for number in range(1, options["workers"] + 1)
            ]
            self._wait_ready(group, shown_host, flower_host, ports, nodes)
            self._banner(shown_host, flower_host, ports, (username, password), flower_auth, token,
                         redis_url, redis_server, metrics_token)  # fmt: skip
            self._supervise(group, redis_server)
        finally:
            self.stdout.write("Stopping every process (workers flush their statistics)...")
            group.stop_all(grace_s=20)
            if redis_server is not None:
                redis_server.stop()
            self.stdout.write("Stopped.")

    def _redis(self) -> tuple[EmbeddedRedis | None, str]:
        url = os.environ.get("REDIS_URL")
        if url:
            if not redis_answers(url):
                raise CommandError(f"REDIS_URL={url} does not answer. Start Redis or unset it.")
            return None, url
        port = int(os.environ.get("EMBEDDED_REDIS_PORT", "6390"))
        server = EmbeddedRedis(
            port=port,
            log_path=settings.DATA_DIR / "redis.log",
            data_dir=settings.DATA_DIR / "redis",
            password=embedded_redis_password(),
        )
        try:
            url = server.start()
        except (RedisNotFound, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        settings.REDIS_URL = url
        celery_app.conf.broker_url = url
        return server, url

    def _prepare_database(self, app_port: int | None) -> tuple[str, str, str]:
        if "TARGET_APP_URL" not in os.environ and app_port is not None:
            settings.TARGET_APP_URL = f"http://localhost:{app_port}"
            # The default allow-list names the demo target's usual port: one moved by
            # APP_PORT is allowed where it really listens (here and in every child process).
            for host in ("localhost", "127.0.0.1"):
                if not is_allowed(settings.ALLOWED_TARGET_HOSTS, host, app_port, "http"):
                    settings.ALLOWED_TARGET_HOSTS = [
                        *settings.ALLOWED_TARGET_HOSTS,
                        f"{host}:{app_port}",
                    ]
                    self.stdout.write(f"Allowing the demo target at {host}:{app_port}.")
        return prepare_service()

    def _start_processes(self, group, env, ports, worker_count: int) -> None:
        procfile = read_procfile()
        for name, command in procfile.items():
            if name == RELEASE:
                continue  # a one-off step, not a service: _prepare_database ran it already
            if name == "app" and "app" not in ports:
                continue
            if name == "worker":
                for number in range(1, worker_count + 1):
                    group.start(
                        f"worker{number}", command, env={**env, "WORKER_NAME": f"load{number}"}
                    )
                continue
            process_env = dict(env)
            if name in ports:
                process_env["PORT"] = str(ports[name])
            group.start(name, command, env=process_env)

    def _wait_ready(self, group, host: str, flower_host: str, ports, nodes: list[str]) -> None:
        checks = {
            "web": f"http://{host}:{ports['web']}/",
            "flower": f"http://{flower_host}:{ports['flower']}/",
        }
        if "app" in ports:
            checks["app"] = f"http://{host}:{ports['app']}/health"
        for name, url in checks.items():
            if not _wait_http(url, timeout_s=60):
                exited = group.first_exited()
                detail = f" ({exited.name} exited)" if exited else ""
                raise CommandError(f"{name} did not answer at {url} within 60 s{detail}.")
        missing = wait_for_celery_nodes(
            celery_app, nodes, 60, keep_waiting=lambda: group.first_exited() is None
        )
        if missing:
            raise CommandError(f"Celery workers did not answer within 60 s: {sorted(missing)}.")

    def _banner(
        self,
        host,
        flower_host,
        ports,
        admin,
        flower_auth,
        token,
        redis_url,
        redis_server,
        metrics_token,
    ) -> None:
        web = f"http://{host}:{ports['web']}"
        username, password = admin
        # FLOWER_BASIC_AUTH may list several user:password pairs; the first is shown.
        flower_user, _, flower_password = flower_auth.split(",")[0].partition(":")
        lines = [
            "",
            "The load tester is running:",
            f"  Dashboard    {web}/              sign in as the admin below (or any user)",
            f"  Admin        {web}/admin/        user {username!r}, password {password}",
            f"  API          {web}/api/          header 'Authorization: Token {token}'",
            f"  Flower       http://{flower_host}:{ports['flower']}/   "
            f"user {flower_user!r}, password {flower_password}",
        ]
        lines.append(f"  Metrics      {web}/metrics       {_metrics_access(metrics_token)}")
        if "app" in ports:
            lines.append(f"  Demo target  http://{host}:{ports['app']}/   (the default target)")
        if redis_server is not None:
            shown_redis = f"redis://127.0.0.1:{redis_server.port}/0 (embedded, password in " \
                          f"{settings.DATA_DIR / 'redis_password'})"  # fmt: skip
        else:
            shown_redis = f"{redis_url} (from REDIS_URL)"
        lines += [f"  Redis        {shown_redis}", "Press Ctrl-C to stop everything.", ""]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _supervise(self, group: ProcessGroup, redis_server: EmbeddedRedis | None) -> None:
        """Restart whatever exits, each after its own backoff, until Ctrl-C or SIGTERM."""
        stop_requested = []

        def request_stop(signum, frame) -> None:
            stop_requested.append(signum)

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        backoffs: dict[str, RestartBackoff] = {}
        restart_at: dict[str, float] = {}  # name -> time.monotonic() of its next start
        redis_started_at = time.monotonic()
        while not stop_requested:
            exited = {
                process.name: (process.popen.returncode, process.uptime_s())
                for process in group.exited()
            }
            if redis_server is not None and redis_server.exit_code() is not None:
                exited[REDIS] = (redis_server.exit_code(), time.monotonic() - redis_started_at)
            for name, (code, uptime_s) in exited.items():
                if name not in restart_at:
                    delay_s = backoffs.setdefault(name, RestartBackoff()).delay_s(uptime_s)
                    restart_at[name] = time.monotonic() + delay_s
                    self.stdout.write(self.style.WARNING(
                        f"{name} exited with code {code}; restarting in {delay_s:g} s"
                    ))  # fmt: skip
                    continue
                if time.monotonic() < restart_at[name]:
                    continue
                del restart_at[name]
                if name == REDIS:
                    redis_started_at = time.monotonic()
                    try:
                        redis_server.start()
                    except RuntimeError as exc:  # still exited: the next pass retries
                        self.stdout.write(self.style.ERROR(f"{REDIS} did not start: {exc}"))
                        continue
                    pid = redis_server.process.pid
                else:
                    pid = group.restart(next(p for p in group.processes if p.name == name)).pid
                self.stdout.write(f"{name} restarted (pid {pid}).")
            time.sleep(0.2)
