"""Settings, read only from the environment (django-environ) and failing fast on bad values.

Every variable is listed with its default in ``.env.example`` and in
docs/reference/configuration.md (a test checks that page names every one). A ``.env``
file at the project root is read when present, so a single machine needs no exports.
"""

import math
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from apps.workers.http import ENGINE_HEADERS, TRACEPARENT
from apps.workers.http import TOKEN as HTTP_TOKEN
from loadtest_project.allowlist import parse_allow_list
from loadtest_project.networks import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# Where the one-machine defaults keep their state: the SQLite database, the generated secret
# key, Celery beat's schedule, collected static files.
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


DEBUG = env.bool("DEBUG", default=False)


def _bounded_float(name: str, default: float, low: float, high: float, unit: str) -> float:
    """A number from the environment within [low, high], or a stop that names the variable
    (django-environ would turn "nan" or "ten" into an unexplained ValueError)."""
    raw = env.str(name, default=str(default))
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN fails this too
        raise ImproperlyConfigured(f"{name}={raw!r}: give {unit} from {low:g} to {high:g}.")
    return value


def _secret_key() -> str:
    """SECRET_KEY, or the contents of SECRET_KEY_FILE; never a key made up on the spot.

    Every process (web, workers, beat) must sign with the same key: a key generated per
    process would break sessions and CSRF between them, silently. So without DEBUG a missing
    key stops the process with instructions. ``scripts/dev.py`` creates one key file for
    local runs and passes SECRET_KEY_FILE; DEBUG=True keeps a key file in DATA_DIR.
    """
    key = env.str("SECRET_KEY", default="")
    key_file = env.str("SECRET_KEY_FILE", default="")
    if key:
        return key
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"SECRET_KEY_FILE={key_file} cannot be read: {exc.strerror}."
            ) from exc
        if not key:
            raise ImproperlyConfigured(f"SECRET_KEY_FILE={key_file} is empty.")
        return key
    if DEBUG:
        return _debug_secret_key()
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (and DEBUG is False). Set SECRET_KEY to a long random string, "
        "the same for every process of the service, e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))', in the environment "
        "or in .env; or set SECRET_KEY_FILE to a file that holds it. "
        "python3 scripts/dev.py run does this for you on one machine."
    )


def _debug_secret_key() -> str:
    """DEBUG only: a key generated once into DATA_DIR, so the local processes agree."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "django_celery_beat",
    "apps.sessions.apps.LoadSessionsConfig",
    "apps.workers.apps.WorkersConfig",
    "apps.ops.apps.OpsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.sessions.access.audit.AuditMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its answer (the audit above
    # then records that answer's status).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "loadtest_project.urls"
WSGI_APPLICATION = "loadtest_project.wsgi.application"
ASGI_APPLICATION = "loadtest_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite by default; PostgreSQL (or anything Django supports) by URL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, control worker and tests write to one SQLite file from several processes:
    # WAL lets readers run beside the writer, IMMEDIATE transactions take the write lock up
    # front (no "database is locked" on lock upgrade), and the timeout waits for it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests run real worker processes, which must open the same test database: a file.
    DATABASES["default"]["TEST"] = {
        "NAME": env.str("TEST_DATABASE_NAME", default=str(DATA_DIR / "test_db.sqlite3"))
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The dashboard's sign-in page (Django's LoginView, under the django-axes lockout); after
# signing in or out, people land on the overview or the sign-in page.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
SERVESTATIC_USE_FINDERS = DEBUG

# --- Redis and Celery -----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-connection-retry-on-startup
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Results travel through Redis keys of our own (statistics, heartbeats), never task results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Two queues: long-running shards on `load`, short control tasks on `control`, consumed by
# separate worker processes so that control is never starved by load.
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {"apps.workers.tasks.run_shard": {"queue": "load"}}
# A load worker takes one shard per free process, never a backlog it cannot start.
# https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Shards acknowledge on receipt: with acks_late, Redis would re-deliver a shard that outlives
# the visibility timeout and double the load (celery#5935). Liveness comes from heartbeats.
CELERY_TASK_ACKS_LATE = False
# Flower shows tasks as they happen: from the moment a worker receives them. No "task-sent"
# event at publication: Celery sends it for every task or none, and the monitor's, queued every
# MONITOR_INTERVAL_S per session, would flood Flower's task list (their tasks also send no
# worker events: apps/sessions/tasks.py). A shard no worker has taken yet shows in Flower's
# Broker tab as a message in the `load` queue.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-send-sent-event
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = False
# No acknowledgement emulation: the broker never re-delivers a message (a re-delivered shard
# would double the load; liveness comes from heartbeats), and kombu 5.7 crashes a worker
# restoring emulated unacknowledged messages when Redis goes away.
CELERY_BROKER_TRANSPORT_OPTIONS = {"ack_emulation": False}
# A short task's message is taken only when a process is free to run it, and a busy load
# worker never holds a queued shard another worker could start now. No message then waits
# unacknowledged in a worker (kombu crashes restoring those when Redis restarts).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-disable-prefetch
CELERY_WORKER_DISABLE_PREFETCH = True
# Beat drives every session's monitor, which moves statistics into the database and looks
# after the session (see apps/sessions/monitor.py), every MONITOR_INTERVAL_S.
MONITOR_INTERVAL_S = env.float("MONITOR_INTERVAL_S", default=1.0)
# The live latency percentiles (the session page's tile, the charts' latency lines) cover the
# answers of this sliding window, stretched up to LIVE_WINDOW_MAX_S while it holds too few
# answers for p99 to differ from the maximum (see apps/sessions/results/live.py).
LIVE_WINDOW_S = _bounded_float("LIVE_WINDOW_S", 10, 1, 600, "seconds")
LIVE_WINDOW_MAX_S = _bounded_float("LIVE_WINDOW_MAX_S", 60, LIVE_WINDOW_S, 3600, "seconds")
# How often beat rolls old time-series points up and purges expired sessions.
DOWNSAMPLE_INTERVAL_S = _bounded_float("DOWNSAMPLE_INTERVAL_S", 300, 1, 86400, "seconds")
# Beat keeps its schedule in the database (django-celery-beat), where the schedules of load
# live too; this entry is copied there each time beat starts. loadtest_project.beat stores a
# fractional interval (0.5 s) exactly, which the stock scheduler would truncate to 0 seconds.
# https://django-celery-beat.readthedocs.io/en/latest/
CELERY_BEAT_SCHEDULER = "loadtest_project.beat:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "monitor-active-sessions": {
        "task": "apps.sessions.tasks.monitor_active_sessions",
        "schedule": MONITOR_INTERVAL_S,
        # Whole seconds only in the database: a tick not taken within a second is dropped
        # (the next one comes anyway).
        "options": {"expire_seconds": max(1, math.ceil(MONITOR_INTERVAL_S))},
    },
    # Bounded growth for sessions that run for weeks (apps/sessions/downsampling.py): old
    # per-second points rolled up, finished sessions past SESSION_RETENTION_DAYS purged.
    "downsample-timeseries": {
        "task": "apps.sessions.tasks.downsample_and_purge",
        "schedule": DOWNSAMPLE_INTERVAL_S,
        "options": {"expire_seconds": max(1, math.ceil(DOWNSAMPLE_INTERVAL_S))},
    },
}

# --- The load-testing service ---------------------------------------------------------------
# The default target: where a session goes when it names no target.
TARGET_APP_URL = env.str("TARGET_APP_URL", default="http://localhost:5001")
# Hosts and ports that load may be sent to (loadtest_project/allowlist.py): "host" is the
# scheme's default port only, "host:port" one port, "host:*" any port, ".domain" also admits
# subdomains, "[::1]:8080" an IPv6 address. The defaults admit the demo target only.
try:
    ALLOWED_TARGET_HOSTS = parse_allow_list(
        env.list("ALLOWED_TARGET_HOSTS", default=["localhost:5001", "127.0.0.1:5001", "app:5001"])
    )
except ValueError as exc:
    raise ImproperlyConfigured(f"ALLOWED_TARGET_HOSTS: {exc}") from exc
# Ceilings on what one session may ask for (0 for MAX_DURATION_MINUTES: no ceiling).
MAX_USERS_PER_SESSION = env.int("MAX_USERS_PER_SESSION", default=1000)
MAX_DURATION_MINUTES = env.float("MAX_DURATION_MINUTES", default=0)
MAX_REQUEST_RATE = env.float("MAX_REQUEST_RATE", default=10000)
# Ceiling on the users of all running sessions together (0: none).
MAX_TOTAL_USERS = env.int("MAX_TOTAL_USERS", default=5000)
# Virtual users per shard task: a session of N users becomes ceil(N / this) shards.
LOAD_SHARD_USERS = env.int("LOAD_SHARD_USERS", default=50)
# How often a shard pushes its statistics to Redis.
STATS_FLUSH_INTERVAL_S = env.float("STATS_FLUSH_INTERVAL_S", default=1.0)
# How often a shard reads its session's control state (stop takes effect within this).
CONTROL_POLL_INTERVAL_S = env.float("CONTROL_POLL_INTERVAL_S", default=0.1)
# How long a stopping shard waits for requests already in flight before cutting them (counted
# apart as "cut by the stop", never as failures); an emergency stop does not wait. Short, so a
# stop on a saturated target ends the session within about a second.
STOP_GRACE_S = env.float("STOP_GRACE_S", default=0.5)
# A shard heartbeat older than this means its worker is gone.
HEARTBEAT_TTL_S = env.float("HEARTBEAT_TTL_S", default=10.0)
# Bytes of a response body a shard keeps for an endpoint whose checks read the body
# (body_contains, json_path_*): the rest is counted, not kept. Endpoints without such
# checks keep 256 bytes, for the error log.
CHECK_BODY_LIMIT = env.int("CHECK_BODY_LIMIT", default=2**20)
# A session whose shards no load worker has picked up after this long fails with a reason.
SHARD_START_TIMEOUT_S = env.float("SHARD_START_TIMEOUT_S", default=60.0)
# Data feeds (a CSV per target, shipped whole with every session's plan to every shard):
# the largest file accepted, in bytes, and the most data rows.
FEED_MAX_BYTES = int(_bounded_float("FEED_MAX_BYTES", 2**20, 1024, 2**30, "bytes"))
FEED_MAX_ROWS = int(_bounded_float("FEED_MAX_ROWS", 100_000, 1, 10_000_000, "rows"))

# Where the landing page links to Flower.
FLOWER_URL = env.str("FLOWER_URL", default="http://localhost:5555/")

# Error handling in the engine. "Unavailable" failures (network, timeout, 502/503/504) open
# an endpoint's circuit breaker after this many in a row (0: never), for a cooldown that
# doubles while probes fail, up to the maximum.
CIRCUIT_BREAKER_FAILURES = env.int("CIRCUIT_BREAKER_FAILURES", default=10)
CIRCUIT_BREAKER_COOLDOWN_S = env.float("CIRCUIT_BREAKER_COOLDOWN_S", default=2.0)
CIRCUIT_BREAKER_MAX_COOLDOWN_S = env.float("CIRCUIT_BREAKER_MAX_COOLDOWN_S", default=30.0)
# A user whose requests find the target unavailable waits up to base * 2^n (full jitter).
BACKOFF_BASE_S = env.float("BACKOFF_BASE_S", default=0.1)
BACKOFF_MAX_S = env.float("BACKOFF_MAX_S", default=10.0)
# When this share of a session's requests found the target unavailable over the window, its
# load is multiplied by LOAD_REDUCTION_FACTOR, and restored below half that share.
LOAD_REDUCTION_ERROR_RATE = env.float("LOAD_REDUCTION_ERROR_RATE", default=0.5)
LOAD_REDUCTION_WINDOW_S = env.float("LOAD_REDUCTION_WINDOW_S", default=10.0)
LOAD_REDUCTION_FACTOR = env.float("LOAD_REDUCTION_FACTOR", default=0.5)
# A session's thresholds are judged live (and may abort it) only once their scope (the
# session, or the endpoint) has this many requests; at the end they are always judged.
THRESHOLD_MIN_REQUESTS = env.int("THRESHOLD_MIN_REQUESTS", default=100)
# A later session on a target with a baseline is a regression when a figure (p50/p95/p99,
# error rate, requests/s) is worse than the baseline's by more than this many percent
# (a target may set its own); see apps/sessions/comparison.py for the absolute floors.
REGRESSION_MARGIN_PCT = _bounded_float("REGRESSION_MARGIN_PCT", 10, 0, 1000, "percent")
# Resource guard: a shard sheds users while its worker process passes these (0: no ceiling).
WORKER_MAX_RSS_MB = env.float("WORKER_MAX_RSS_MB", default=1024)
WORKER_MAX_CPU_PERCENT = env.float("WORKER_MAX_CPU_PERCENT", default=0)
# How many engine events (breaker, shedding, re-dispatch) and sampled errors a session keeps.
SESSION_EVENTS_KEPT = env.int("SESSION_EVENTS_KEPT", default=500)
ERROR_SAMPLES_KEPT = env.int("ERROR_SAMPLES_KEPT", default=200)
# How many sampled requests a session with enable_logging keeps in its request log.
REQUEST_LOG_KEPT = env.int("REQUEST_LOG_KEPT", default=1000)
# A session's time series keeps per-second points for the last hour, per-minute points up
# to this many days, per-hour points after that (apps/sessions/downsampling.py).
TIMESERIES_MINUTE_DAYS = _bounded_float("TIMESERIES_MINUTE_DAYS", 7, 0, 3650, "days")
# Finished sessions (and all their results) are deleted this many days after they ended;
# 0 keeps them for ever.
SESSION_RETENTION_DAYS = _bounded_float("SESSION_RETENTION_DAYS", 0, 0, 36500, "days (0: off)")

# --- Notifications (webhooks) -------------------------------------------------------------
# The service's address as its users reach it: webhook bodies link to a session's page here.
SITE_URL = env.str("SITE_URL", default="http://localhost:8000").rstrip("/")
# One delivery attempt waits this long for the receiver's answer.
WEBHOOK_TIMEOUT_S = env.float("WEBHOOK_TIMEOUT_S", default=5.0)
# Failed attempts are retried this many times, after WEBHOOK_RETRY_BASE_S, then twice as
# long each time (10, 20, 40, 80, 160 s by default).
WEBHOOK_MAX_RETRIES = env.int("WEBHOOK_MAX_RETRIES", default=5)
WEBHOOK_RETRY_BASE_S = env.float("WEBHOOK_RETRY_BASE_S", default=10.0)
# A failed attempt that will be retried is recorded as a session event at most this often per
# webhook and session; the last failure always is.
WEBHOOK_FAILURE_EVENT_INTERVAL_S = env.float("WEBHOOK_FAILURE_EVENT_INTERVAL_S", default=60.0)

# --- The APM beside the load (docs/guides/apm.md) -----------------------------------------
# The header every request of a session carries, naming it (its id), unless the session
# turns it off (send_session_header).
SESSION_HEADER_NAME = env.str("SESSION_HEADER_NAME", default="X-Load-Test-Session")
if not HTTP_TOKEN.match(SESSION_HEADER_NAME) or SESSION_HEADER_NAME.lower() in (
    *ENGINE_HEADERS,
    "host",
    TRACEPARENT,
):
    raise ImproperlyConfigured(
        f"SESSION_HEADER_NAME={SESSION_HEADER_NAME!r} is not a header name a request may carry: "
        "give an HTTP token (letters, digits and !#$%&'*+-.^_`|~, no space or colon), not "
        "Host, Content-Length, Transfer-Encoding, Upgrade or traceparent."
    )
# New Relic, off unless NEW_RELIC_API_KEY (a user key, for NerdGraph) and NEW_RELIC_ENTITY_GUID
# are set: change-tracking markers at a session's start and end on that entity, and, with an
# account id and a license (or insert) key for the Event API, a LoadTestSummary event per
# session every NEW_RELIC_EVENT_INTERVAL_S (apps/sessions/newrelic.py).
NEW_RELIC_API_KEY = env.str("NEW_RELIC_API_KEY", default="")
NEW_RELIC_ENTITY_GUID = env.str("NEW_RELIC_ENTITY_GUID", default="").strip()
NEW_RELIC_ACCOUNT_ID = env.str("NEW_RELIC_ACCOUNT_ID", default="").strip()
NEW_RELIC_LICENSE_KEY = env.str("NEW_RELIC_LICENSE_KEY", default="")
NEW_RELIC_INSERT_KEY = env.str("NEW_RELIC_INSERT_KEY", default="")
NEW_RELIC_REGION = env.str("NEW_RELIC_REGION", default="us").strip().lower()
if NEW_RELIC_REGION not in ("us", "eu"):
    raise ImproperlyConfigured(f"NEW_RELIC_REGION={NEW_RELIC_REGION!r}: give us or eu.")
if NEW_RELIC_ACCOUNT_ID and not NEW_RELIC_ACCOUNT_ID.isdigit():
    raise ImproperlyConfigured(
        f"NEW_RELIC_ACCOUNT_ID={NEW_RELIC_ACCOUNT_ID!r}: give the account's number."
    )
_NEW_RELIC_HOSTS = {
    "us": ("https://api.newrelic.com", "https://insights-collector.newrelic.com"),
    "eu": ("https://api.eu.newrelic.com", "https://insights-collector.eu01.nr-data.net"),
}[NEW_RELIC_REGION]
NEW_RELIC_GRAPHQL_URL = env.str("NEW_RELIC_GRAPHQL_URL", default=f"{_NEW_RELIC_HOSTS[0]}/graphql")
NEW_RELIC_EVENTS_URL = env.str(
    "NEW_RELIC_EVENTS_URL",
    default=f"{_NEW_RELIC_HOSTS[1]}/v1/accounts/{NEW_RELIC_ACCOUNT_ID}/events",
)
NEW_RELIC_EVENT_INTERVAL_S = _bounded_float("NEW_RELIC_EVENT_INTERVAL_S", 60, 1, 3600, "seconds")
NEW_RELIC_TIMEOUT_S = _bounded_float("NEW_RELIC_TIMEOUT_S", 5, 0.1, 60, "seconds")
# A failure to reach New Relic is recorded as a session event at most this often per session.
NEW_RELIC_FAILURE_EVENT_INTERVAL_S = _bounded_float(
    "NEW_RELIC_FAILURE_EVENT_INTERVAL_S", 300, 0, 86400, "seconds"
)
CELERY_BEAT_SCHEDULE["newrelic-summaries"] = {
    "task": "apps.sessions.tasks.send_newrelic_summaries",
    "schedule": NEW_RELIC_EVENT_INTERVAL_S,
    "options": {"expire_seconds": max(1, math.ceil(NEW_RELIC_EVENT_INTERVAL_S))},
}

# --- API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.sessions.api.permissions.HasActionPermission"],
    # Bad page, page_size and ordering parameters are a 400, not ignored (query_params.py).
    "DEFAULT_PAGINATION_CLASS": "apps.sessions.api.query_params.StrictPages",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "apps.sessions.api.query_params.StrictOrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.sessions.api.throttles.UserThrottle",
        "apps.sessions.api.throttles.AnonymousThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.sessions.api.exceptions.exception_handler",
    # JSON bounded in size and depth (DRF's own parser is bounded in neither), forms.
    "DEFAULT_PARSER_CLASSES": [
        "apps.sessions.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# The largest request body the API and the admin read (bytes); larger ones get 413 (API) or
# 400 (admin). Django applies it to forms; BoundedJSONParser to JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=5 * 2**19)
# Requests per user (or per address, for anonymous calls) and period: second/minute/hour/day.
API_USER_RATE = env.str("API_USER_RATE", default="600/minute")
API_ANONYMOUS_RATE = env.str("API_ANONYMOUS_RATE", default="30/minute")
# Throttle counts live in the cache: shared through Redis, so that the limit holds across
# every web process (a per-process cache would limit nothing).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "lt-cache",
    }
}
# Server-Sent Events (/api/sessions/{id}/events/): one snapshot per interval; a stream ends
# after SSE_MAX_SECONDS and the client reconnects (proxies never see an endless request).
SSE_INTERVAL_S = env.float("SSE_INTERVAL_S", default=1.0)
SSE_MAX_SECONDS = env.float("SSE_MAX_SECONDS", default=3600)
SPECTACULAR_SETTINGS = {
    "TITLE": "Load tester API",
    "DESCRIPTION": "Targets, endpoints and load-test sessions: start, stop, resize, results.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and its assets come from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Security -------------------------------------------------------------------------------
# HTTPS=True in production: secure cookies, HSTS and redirects to https (behind a proxy that
# terminates TLS, also set SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO).
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
_proxy_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Proxies in front of the web server that append to X-Forwarded-For (0: clients connect
# directly and the header is ignored). Rate limits, the login lockout and the audit log all
# take the client's address from loadtest_project.client_address, which trusts only these.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 or more.")

# Sign-in lockout (django-axes) on every password form: the admin login, the browsable
# API's login and POST /api/auth/token/. After LOGIN_FAILURE_LIMIT failures for one user (from
# anywhere) or from one address (for any user), sign-ins for that user or from that address
# are refused, right password or not, until LOGIN_LOCKOUT_MINUTES after the last failure.
# https://django-axes.readthedocs.io/en/latest/4_configuration.html
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_MINUTES = env.float("LOGIN_LOCKOUT_MINUTES", default=15)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_LOCKOUT_MINUTES <= 0:
    raise ImproperlyConfigured(
        "LOGIN_FAILURE_LIMIT must be at least 1 and LOGIN_LOCKOUT_MINUTES more than 0."
    )
AUTHENTICATION_BACKENDS = [
    # Refuses locked-out users and addresses before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "loadtest_project.client_address.client_address"
# Attempts made while locked out neither extend the lock nor grow its database row: the
# lock ends a fixed time after the last counted failure, which the answer can tell.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "apps.sessions.access.lockout.lockout_response"
# The attempted user name, cut to the column axes stores it in (a longer one is a 500 on
# PostgreSQL); axes cuts the user agent and path itself.
AXES_USERNAME_CALLABLE = "apps.sessions.access.lockout.attempted_username"


# --- Prometheus (/metrics) -------------------------------------------------------------------
# /metrics answers only when at least one guard is set (otherwise 404: off). With a token, a
# scrape must send "Authorization: Bearer <METRICS_TOKEN>" (METRICS_TOKEN_FILE: read from a
# file); with an address list, it must come from one of these IPs or networks (CIDR), as
# loadtest_project.client_address sees it. With both, both. Bad tokens lock an address out
# like failed sign-ins do (LOGIN_FAILURE_LIMIT within LOGIN_LOCKOUT_MINUTES).
def _metrics_token() -> str:
    token = env.str("METRICS_TOKEN", default="").strip()
    token_file = env.str("METRICS_TOKEN_FILE", default="")
    if not token and token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"METRICS_TOKEN_FILE={token_file} cannot be read: {exc.strerror}."
            ) from exc
    if token and (len(token) < 16 or not token.isascii() or not token.isprintable()):
        raise ImproperlyConfigured(
            "METRICS_TOKEN must be at least 16 printable ASCII characters, e.g. the output of "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return token


METRICS_TOKEN = _metrics_token()
METRICS_ALLOWED_ADDRESSES = parse_networks(
    "METRICS_ALLOWED_ADDRESSES", env.list("METRICS_ALLOWED_ADDRESSES", default=[])
)
# Finished sessions stay on /metrics this long after their end, so that the scrapes after
# the end see their final counts.
METRICS_FINISHED_WINDOW_S = _bounded_float(
    "METRICS_FINISHED_WINDOW_S", 900.0, 0.0, 7 * 86400.0, "seconds"
)
# The most sessions one scrape reports (active ones first, then the latest finished): label
# cardinality, and so the size of a scrape, stays bounded whatever runs.
METRICS_MAX_SESSIONS = int(_bounded_float("METRICS_MAX_SESSIONS", 20, 1, 1000, "a count"))

# --- Logging --------------------------------------------------------------------------------
# Every process (web, load workers, control worker, beat) logs through this configuration:
# Celery's own is switched off in loadtest_project/celery.py.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# Optional file that every process appends to. Several processes (and a Celery worker's pool
# children) write it at once, so none of them may rotate it: a rotation by one would leave
# the others writing to the renamed file. Rotation is the system's job (logrotate, see
# docs/operations/monitoring.md); WatchedFileHandler reopens the file when it has been moved away.
LOG_FILE = env.str("LOG_FILE", default="")
if LOG_FILE:
    Path(LOG_FILE).parent.mkdir(parents=True, exist_ok=True)
# Which process wrote a line (processes share a terminal or LOG_FILE): the run command and
# the tests name each process after its Procfile line; other runners may set it. The pid
# follows the name on every line.
LOG_PROCESS_NAME = env.str("LOG_PROCESS_NAME", default="")
_log_handlers = ["console", *(["file"] if LOG_FILE else [])]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Authorization, cookies, tokens and passwords never reach a log line.
        "redact": {"()": "loadtest_project.logfilters.RedactSecrets"},
        "beat_ticks_at_debug": {"()": "loadtest_project.logfilters.TicksAtDebug"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s "
            f"[{(LOG_PROCESS_NAME or '-').replace('%', '%%')} %(process)d] "
            "%(name)s: %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        },
        **(
            {
                "file": {
                    "class": "logging.handlers.WatchedFileHandler",
                    "filename": LOG_FILE,
                    "formatter": "plain",
                    "filters": ["redact"],
                }
            }
            if LOG_FILE
            else {}
        ),
    },
    "root": {"handlers": _log_handlers, "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": _log_handlers, "level": LOG_LEVEL, "propagate": False},
        # uvicorn (the web process) brings its own handler: ours instead, for its start-up
        # lines and errors. Its access log ("uvicorn.access") stays as the Procfile sets it.
        "uvicorn.error": {"handlers": _log_handlers, "level": LOG_LEVEL, "propagate": False},
        # One line per task received/succeeded drowns everything else: monitors tick every
        # second. Failures are still logged (at ERROR).
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        # Beat's start-up lines stay; its "Sending due task" line per tick is DEBUG.
        "celery.beat": {"filters": ["beat_ticks_at_debug"]},
    },
}
