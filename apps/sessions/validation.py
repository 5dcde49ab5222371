"""Checks shared by the model layer, the admin and the API, so every edge refuses the same input.

Each check raises Django's ``ValidationError`` keyed by field name; the API turns that into a
400 with a message per field, the admin shows it beside the field. The bounds below keep every
number inside its database column (PostgreSQL's integer is the narrowest) and within reason,
and every text within what HTTP, the database and a person reading it can take; the README's
"Validation rules and bounds" table lists them.
"""

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import accumulate
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab as celery_crontab
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.sessions.choices import WebhookEvent
from apps.sessions.results.thresholds import thresholds_problems
from apps.workers.checks import parse_checks, parse_statuses
from apps.workers.extraction import parse_extractions
from apps.workers.http import ENGINE_HEADERS, FIELD_VALUE, TOKEN
from apps.workers.plan import Plan
from apps.workers.templating import TemplateError, origin_placeholder_position, parse_template
from loadtest_project import allowlist

INT32_MAX = 2**31 - 1  # PostgreSQL's integer column
MAX_ERRORS_PER_MINUTE_MAX = INT32_MAX
DURATION_MINUTES_MAX = Decimal(525_600)  # a year
THINK_TIME_S_MAX = 3600.0
RAMP_UP_S_MAX = 86_400.0
WEIGHT_MAX = 1e6
TIMEOUT_S_MIN = 0.001
TIMEOUT_S_MAX = 600.0
REGRESSION_MARGIN_PCT_MAX = 1000.0
HEADERS_MAX = 50
HEADER_NAME_CHARS_MAX = 256
HEADER_VALUE_BYTES_MAX = 8 * 2**10
BODY_BYTES_MAX = 2**20
DESCRIPTION_CHARS_MAX = 2000
JSON_DEPTH_MAX = 64


# --- text ---------------------------------------------------------------------------------

# Control characters, invisible formatting (bidirectional overrides, zero-width marks), line
# and paragraph separators, and unpaired surrogates: they break log lines and CSV rows,
# disguise what a name says, or cannot be stored.
_REFUSED_IN_LINE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# In free text, line breaks and tabs are fine.
_ALLOWED_IN_TEXT = frozenset("\t\n\r")


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed character')})"


def check_single_line(text: str) -> None:
    """Names and URLs: printable characters of any script, on one line."""
    for char in text:
        if unicodedata.category(char) in _REFUSED_IN_LINE:
            raise ValidationError(
                f"Contains {_describe(char)}: control, invisible formatting and line-separator "
                "characters are not allowed here."
            )


def check_text(text: str) -> None:
    """Descriptions: like a name, but tabs and line breaks are allowed."""
    for char in text:
        if char not in _ALLOWED_IN_TEXT and unicodedata.category(char) in _REFUSED_IN_LINE:
            raise ValidationError(
                f"Contains {_describe(char)}: control, invisible formatting and line-separator "
                "characters other than tab and line breaks are not allowed here."
            )


def check_body(body: str) -> None:
    """A request body is sent as the user wrote it (UTF-8), up to BODY_BYTES_MAX."""
    if "\0" in body:
        raise ValidationError("The body contains a NUL character, which cannot be stored.")
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > BODY_BYTES_MAX:
        raise ValidationError(
            f"The body is {size:,} bytes; at most {BODY_BYTES_MAX:,} bytes (1 MiB) are sent."
        )


def _shorten(text: str, chars: int = 60) -> str:
    return text if len(text) <= chars else f"{text[:chars]}..."


def check_expected_statuses(spec: str) -> None:
    """An endpoint's expected statuses, as ``checks.parse_statuses`` reads them."""
    try:
        parse_statuses(spec)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def check_response_checks(checks: object) -> None:
    """An endpoint's response checks, as a shard will compile them (``checks``)."""
    try:
        parse_checks(checks)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def check_extractions(extract: object) -> None:
    """A flow step's ``extract`` list, as a shard will parse it (``extraction``)."""
    try:
        parse_extractions(extract)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def check_finite(value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError("Must be a finite number.")


# --- JSON from the network ----------------------------------------------------------------

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects, found without parsing (no recursion):
    strings removed, then a running count over the brackets left."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _refused_constant_at(problem: str, text: str) -> int:
    """Where the constant ``_refuse_constant`` refused (NaN, Infinity, -Infinity) stands in
    ``text``, outside strings, so the error's line and column point at it; 0 for another
    problem. Python's parser does not tell the constant's position."""
    name, _, rest = problem.partition(" ")
    if rest != "is not a number JSON allows":
        return 0
    blanked = _JSON_STRING.sub(lambda string: " " * len(string.group()), text)
    found = re.search(re.escape(name), blanked)
    return found.start() if found else 0


class BoundedJSONDecoder(json.JSONDecoder):
    """JSON as the API, the admin and the database read it: nesting at most JSON_DEPTH_MAX
    deep (Python's parser recurses, and 100,000 levels crash it), no NaN or Infinity, no
    unpaired surrogate escape (no database can store one). Errors are ``JSONDecodeError``,
    which every JSON field and parser already turns into a 400."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("parse_constant", _refuse_constant)
        super().__init__(**kwargs)

    def decode(self, s: str, *args, **kwargs):
        if json_depth(s) > JSON_DEPTH_MAX:
            raise json.JSONDecodeError(
                f"JSON nested deeper than {JSON_DEPTH_MAX} levels is not accepted", s, 0
            )
        try:
            data = super().decode(s, *args, **kwargs)
        except json.JSONDecodeError:
            raise
        except ValueError as exc:  # NaN, or an integer of more than 4,300 digits
            raise json.JSONDecodeError(str(exc), s, _refused_constant_at(str(exc), s)) from exc
        if _SURROGATE_ESCAPE.search(s):
            try:
                json.dumps(data, ensure_ascii=False).encode()
            except UnicodeEncodeError as exc:
                raise json.JSONDecodeError(
                    "JSON contains an unpaired surrogate escape (\\ud800-\\udfff), which is "
                    "no character",
                    s,
                    0,
                ) from exc
        return data


def loads_json(text: str):
    """``json.loads`` with BoundedJSONDecoder's limits; ValueError with a message."""
    return json.loads(text, cls=BoundedJSONDecoder)


# --- where load may go ----------------------------------------------------------------------


def is_allowed(host: str | None, port: int, scheme: str) -> bool:
    """Is ``scheme://host:port`` on ALLOWED_TARGET_HOSTS (read at call time)?"""
    return allowlist.is_allowed(settings.ALLOWED_TARGET_HOSTS, host, port, scheme)


def _refuse_off_list(host: str, port: int, what: str) -> None:
    allowed = ", ".join(settings.ALLOWED_TARGET_HOSTS) or "nothing"
    shown = f"[{host}]" if ":" in host else host
    raise ValidationError(
        f"{what} '{shown}:{port}' is not on the allow-list ({allowed}). Add it to "
        "ALLOWED_TARGET_HOSTS (host:port, or host:* for any port) to send load there."
    )


def _split_url(url: str) -> tuple[SplitResult, int | None]:
    """The URL's parts and port, or the reason it is not one URL on one line."""
    check_single_line(url)
    if url != url.strip():
        raise ValidationError("The URL starts or ends with a space.")
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError as exc:
        raise ValidationError(f"Not a valid URL: {exc}.") from exc


def _refuse_fragment(url: str) -> None:
    """What follows a ``#`` is a fragment, which no client sends: ``http://host/#/api``
    would send every request to ``/`` while the statistics name the paths as written."""
    if "#" in url:
        raise ValidationError(
            "A URL must not contain '#': what follows it is never sent, so requests would go "
            "elsewhere than the statistics say. Write it as %23 if it belongs to the path."
        )


def check_target_url(url: str) -> None:
    """A target base URL: http(s), a host and port on the allow-list, no credentials, no
    fragment."""
    parts, port = _split_url(url)
    _refuse_fragment(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("Only http:// and https:// URLs can be load-tested.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("Put credentials in endpoint headers, not in the URL.")
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if not parts.hostname.isascii():
        raise ValidationError(
            "Write an internationalised host name in its ASCII (xn--) form, as DNS knows it."
        )
    port = port or allowlist.DEFAULT_PORTS[parts.scheme]
    if not is_allowed(parts.hostname, port, parts.scheme):
        _refuse_off_list(parts.hostname, port, "Host")


def check_host_header(url: str, headers: object) -> None:
    """A ``Host`` header sends the request to another virtual host than the URL's: it must
    be on the allow-list too, with its own port or, when it names none, the URL's."""
    if not isinstance(headers, Mapping):
        return
    value = next((value for name, value in headers.items() if str(name).lower() == "host"), None)
    if value is None:
        return
    parts = urlsplit(url)
    try:
        named = urlsplit(f"//{value}")
        port = named.port
    except ValueError as exc:
        raise ValidationError(f"The Host header is not host[:port]: {exc}.") from exc
    if not named.hostname or named.path or named.query or named.username is not None:
        raise ValidationError("The Host header must be host or host:port, nothing else.")
    scheme = parts.scheme or "http"
    port = port or parts.port or allowlist.DEFAULT_PORTS.get(scheme, 80)
    if not is_allowed(named.hostname, port, scheme):
        _refuse_off_list(named.hostname, port, "The Host header's host")


def check_endpoint_url(url: str) -> None:
    """An endpoint URL is a path on its target ("/...") or an absolute allowed URL. Spaces
    and non-ASCII characters are fine: the engine percent-encodes them (UTF-8)."""
    if url.startswith("/"):
        check_single_line(url)
        _refuse_fragment(url)
        if url.startswith("//"):
            raise ValidationError("A path must not start with '//'.")
        return
    if "://" not in url:
        raise ValidationError("Give a path starting with '/' or an absolute http(s) URL.")
    check_target_url(url)


WEBHOOK_URL_CHARS_MAX = 2000
WEBHOOK_SECRET_CHARS_MAX = 200


def check_webhook_url(url: str, target_hosts: Iterable[str] = ()) -> None:
    """A webhook URL: http(s), no credentials in it, and, where it points at a host load may
    be sent to (named on ALLOWED_TARGET_HOSTS, or the host of a target in ``target_hosts``),
    a host and port on the allow-list like any target: a webhook must not become a way to
    send requests where load may not go. Other hosts (hooks.slack.com) are fine."""
    if len(url) > WEBHOOK_URL_CHARS_MAX:
        raise ValidationError(f"The URL is longer than {WEBHOOK_URL_CHARS_MAX} characters.")
    parts, port = _split_url(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("A webhook URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Put no credentials in the URL: set the webhook's secret, which signs each body."
        )
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if not parts.hostname.isascii():
        raise ValidationError(
            "Write an internationalised host name in its ASCII (xn--) form, as DNS knows it."
        )
    port = port or allowlist.DEFAULT_PORTS[parts.scheme]
    host = allowlist.normalize_host(parts.hostname)
    load_hosts = {allowlist.normalize_host(name) for name in target_hosts if name}
    load_hosts |= {allowlist.parse_entry(entry).host for entry in settings.ALLOWED_TARGET_HOSTS}
    # Another spelling of a load host (127.1, 0.0.0.0, [::1], this machine's name for
    # localhost) is that host too: compared by address, not by string.
    load_host = allowlist.names_host(settings.ALLOWED_TARGET_HOSTS, host) or any(
        allowlist.same_host(host, name) for name in load_hosts
    )
    if load_host and not is_allowed(host, port, parts.scheme):
        shown = f"[{host}]" if ":" in host else host
        allowed = ", ".join(settings.ALLOWED_TARGET_HOSTS)
        raise ValidationError(
            f"'{shown}' is a host load may be sent to, so a webhook there must be on the "
            f"allow-list too, and port {port} is not ({allowed}). Use an allowed port, or a "
            "receiver on another host."
        )


def check_webhook_events(events: object) -> None:
    """A non-empty list of distinct event names from the webhook vocabulary."""
    if not isinstance(events, list) or not events:
        raise ValidationError("Give a non-empty list of event names.")
    known = set(WebhookEvent.values)
    unknown = [event for event in events if not isinstance(event, str) or event not in known]
    if unknown:
        shown = ", ".join(_shorten(repr(event)) for event in unknown[:5])
        raise ValidationError(
            f"Unknown event(s) {shown}; choose from {', '.join(WebhookEvent.values)}."
        )
    if len(set(events)) != len(events):
        raise ValidationError("An event is listed twice.")


def check_webhook_secret(secret: str) -> None:
    check_single_line(secret)
    if len(secret) > WEBHOOK_SECRET_CHARS_MAX:
        raise ValidationError(f"The secret is longer than {WEBHOOK_SECRET_CHARS_MAX} characters.")


def concurrent_users_problem(concurrent_users: int | None) -> str | None:
    if concurrent_users is None or concurrent_users < 1:
        return "At least 1 virtual user is needed."
    if concurrent_users > settings.MAX_USERS_PER_SESSION:
        limit = settings.MAX_USERS_PER_SESSION
        return f"At most {limit} users per session (MAX_USERS_PER_SESSION)."
    return None


def check_concurrent_users(concurrent_users: int | None) -> None:
    problem = concurrent_users_problem(concurrent_users)
    if problem:
        raise ValidationError({"concurrent_users": [problem]})


def check_headers(headers: object) -> None:
    """Request headers as HTTP/1.1 can carry them: at most HEADERS_MAX, names that are HTTP
    tokens (each once), values of visible ASCII or Latin-1 of at most HEADER_VALUE_BYTES_MAX.
    Messages never quote a value: it may be a credential."""
    if not isinstance(headers, Mapping):
        raise ValidationError("Headers must be an object mapping names to string values.")
    if len(headers) > HEADERS_MAX:
        raise ValidationError(f"{len(headers)} headers; at most {HEADERS_MAX} are sent.")
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or len(name) > HEADER_NAME_CHARS_MAX or not TOKEN.match(name):
            raise ValidationError(
                f"{_shorten(str(name))!r} is not a valid header name (letters, digits and "
                f"!#$%&'*+.^_`|~- only, at most {HEADER_NAME_CHARS_MAX} characters)."
            )
        if name.lower() in seen:
            raise ValidationError(f"Header {name!r} is given twice (names ignore case).")
        seen.add(name.lower())
        if name.lower() in ENGINE_HEADERS:
            raise ValidationError(
                f"Header {name!r} cannot be set: the engine frames each request itself "
                "(Content-Length, Transfer-Encoding) and speaks HTTP/1.1 only (Upgrade)."
            )
        if not isinstance(value, str):
            raise ValidationError(f"The value of header {name!r} must be a string.")
        if len(value) > HEADER_VALUE_BYTES_MAX:
            raise ValidationError(
                f"The value of header {name!r} has {len(value):,} characters; at most "
                f"{HEADER_VALUE_BYTES_MAX:,} bytes are sent."
            )
        if not FIELD_VALUE.match(value):
            char = next(char for char in value if not FIELD_VALUE.match(char))
            raise ValidationError(
                f"The value of header {name!r} contains {_describe(char)}: header values "
                "may only hold visible ASCII, Latin-1, spaces and tabs (RFC 9110). Encode "
                "anything else (percent- or base64-encoding, as the target expects)."
            )


# --- request templates ----------------------------------------------------------------------


def _template_fields(url: object, headers: object, body: object) -> list[tuple[str, str, str]]:
    """(error key, label, text) of every field of an endpoint that may hold a template."""
    fields = [("url", "URL", url)]
    if isinstance(headers, Mapping):
        fields += [("headers", f"Header {name!r}", value) for name, value in headers.items()]
    fields.append(("body", "Body", body))
    return [(key, label, text) for key, label, text in fields if isinstance(text, str)]


def check_endpoint_templates(url: object, headers: object, body: object) -> None:
    """The ``{{ ... }}`` placeholders of an endpoint's URL, header values and body parse (see
    ``apps.workers.templating``); errors keyed by field, each naming the header and the
    character. A placeholder never stands in an absolute URL's scheme or host, nor in a Host
    header: what the allow-list checks is fixed when saved. Variables (a flow's) and
    ``feed.<column>`` are fine here: whether a session can fill them is ``build_plan``'s
    check (``template_problems``)."""
    errors: dict[str, list[str]] = {}
    for key, label, text in _template_fields(url, headers, body):
        try:
            parse_template(text)
        except TemplateError as exc:
            errors.setdefault(key, []).append(f"{label} template, {exc}")
            continue
        if key == "url":
            position = origin_placeholder_position(text)
            if position is not None:
                errors.setdefault(key, []).append(
                    f"URL template, at character {position}: a placeholder cannot be in the "
                    "URL's scheme or host (load goes only where the allow-list says); put it in "
                    "the path or the query."
                )
        elif label.lower() == "header 'host'" and "{{" in text:
            errors.setdefault(key, []).append(
                f"{label} template, at character {text.index('{{')}: the Host header "
                "cannot hold a placeholder (load goes only where the allow-list says)."
            )
    if errors:
        raise ValidationError(errors)


def template_problems(plan: Plan) -> list[str]:
    """What in ``plan``'s templates the session cannot fill, one sentence per problem naming
    the endpoint, the field and the name: a variable in an endpoint picked on its own (only a
    flow's earlier step sets variables), a ``feed.<column>`` the plan's feed lacks (or no feed
    at all), a template that does not parse (saved before templates existed)."""
    columns = plan.feed.columns if plan.feed is not None else ()
    problems: list[str] = []
    for endpoint in plan.endpoints:
        fields = _template_fields(endpoint.url, endpoint.headers, endpoint.body)
        for _, label, text in fields:
            try:
                template = parse_template(text)
            except TemplateError as exc:
                problems.append(f"{endpoint.name}: {label} template, {exc}")
                continue
            for column in sorted(template.columns - set(columns)):
                feed = (
                    f"the target's data feed has no column '{column}' (it has {', '.join(columns)})"
                    if columns
                    else "the target has no data feed"
                )
                problems.append(
                    f"{endpoint.name}: the {label} template uses feed.{column}, but {feed}."
                )
            if endpoint.flow is None:
                problems.extend(
                    f"{endpoint.name}: the {label} template uses the variable '{name}', which "
                    "only an earlier step of a flow can set; use the endpoint in a flow, or "
                    "give it weight 0 in this session."
                    for name in sorted(template.variables)
                )
    return problems


def check_session_config(
    config: Mapping[str, Any],
    endpoint_default_weights: Mapping[str, float],
    flow_default_weights: Mapping[str, float] | None = None,
) -> None:
    """The configuration's rules, for ``config`` keyed by its field names (a
    session's ``config()``, or the API's validated data), given the default weights of the
    target's endpoints and flows (``endpoint_weights`` names either). Errors are keyed by the
    same names."""
    concurrent_users = config["concurrent_users"]
    duration_minutes = config["duration_minutes"]
    request_interval_min = config["request_interval_min"]
    request_interval_max = config["request_interval_max"]
    max_errors_per_minute = config["max_errors_per_minute"]
    endpoint_weights = config["endpoint_weights"]
    target_rps = config.get("target_rps")
    ramp_up_s = config.get("ramp_up_seconds", 0.0)
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    users_problem = concurrent_users_problem(concurrent_users)
    if users_problem:
        refuse("concurrent_users", users_problem)
    if duration_minutes is not None:
        if duration_minutes < 0:
            refuse("duration_minutes", "Must be 0 (run until stopped) or a positive number.")
        elif duration_minutes > DURATION_MINUTES_MAX:
            refuse("duration_minutes", f"At most {DURATION_MINUTES_MAX} minutes (a year).")
        elif settings.MAX_DURATION_MINUTES and (
            duration_minutes == 0 or duration_minutes > settings.MAX_DURATION_MINUTES
        ):
            refuse(
                "duration_minutes",
                f"At most {settings.MAX_DURATION_MINUTES} minutes (MAX_DURATION_MINUTES); "
                "0 (until stopped) is not allowed while that ceiling is set.",
            )
    for field, value in (
        ("request_interval_min", request_interval_min),
        ("request_interval_max", request_interval_max),
    ):
        if value is not None and not (math.isfinite(value) and 0 <= value <= THINK_TIME_S_MAX):
            refuse(field, f"Must be from 0 to {THINK_TIME_S_MAX:g} seconds.")
    if (
        "request_interval_min" not in errors
        and "request_interval_max" not in errors
        and request_interval_min is not None
        and request_interval_max is not None
        and request_interval_min > request_interval_max
    ):
        refuse(
            "request_interval_min",
            f"Must not exceed request_interval_max ({request_interval_max}).",
        )
    if target_rps is not None:
        if not math.isfinite(target_rps) or target_rps <= 0:
            refuse("target_rps", "Must be a positive number of requests per second (or empty).")
        elif target_rps > settings.MAX_REQUEST_RATE:
            refuse(
                "target_rps",
                f"At most {settings.MAX_REQUEST_RATE:g} requests/s per session (MAX_REQUEST_RATE).",
            )
    if ramp_up_s is not None and not (math.isfinite(ramp_up_s) and 0 <= ramp_up_s <= RAMP_UP_S_MAX):
        refuse("ramp_up_seconds", f"Must be from 0 to {RAMP_UP_S_MAX:g} seconds.")
    if max_errors_per_minute is not None and not (
        0 <= max_errors_per_minute <= MAX_ERRORS_PER_MINUTE_MAX
    ):
        refuse(
            "max_errors_per_minute",
            f"Must be 0 (no limit) up to {MAX_ERRORS_PER_MINUTE_MAX:,}.",
        )

    mix_default_weights = {**endpoint_default_weights, **(flow_default_weights or {})}
    for message in endpoint_weights_problems(endpoint_weights, mix_default_weights):
        refuse("endpoint_weights", message)
    for message in thresholds_problems(config.get("thresholds"), endpoint_default_weights):
        refuse("thresholds", message)
    if errors:
        raise ValidationError(errors)


def endpoint_weights_problems(
    endpoint_weights: object, endpoint_default_weights: Mapping[str, float]
) -> list[str]:
    """What is wrong with a session's ``endpoint_weights`` (overrides by endpoint or flow
    name), given the default weights of the target's endpoints and flows: the rule of a new
    configuration, and of a running session's new weights (``live.change_weights``)."""
    problems: list[str] = []
    weights = {} if endpoint_weights is None else endpoint_weights
    if not isinstance(weights, Mapping):
        problems.append("Must be an object mapping endpoint names to weights.")
        weights = {}
    unknown = [name for name in weights if name not in endpoint_default_weights]
    if unknown:
        known = ", ".join(sorted(endpoint_default_weights)) or "none"
        named = ", ".join(f"'{_shorten(name)}'" for name in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        problems.append(f"Unknown endpoint {named}{more} (this target has: {known}).")
    for name, weight in weights.items():
        if name not in endpoint_default_weights:
            continue
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            problems.append(f"The weight of '{name}' must be a number.")
        elif not (math.isfinite(weight) and 0 <= weight <= WEIGHT_MAX):
            problems.append(f"The weight of '{name}' must be from 0 to {WEIGHT_MAX:g}.")
    if not problems:
        effective = effective_weights(endpoint_default_weights, weights)
        if not any(weight > 0 for weight in effective.values()):
            problems.append(
                "At least one endpoint needs a positive weight (or a flow); this target has "
                + ("none enabled." if endpoint_default_weights else "no endpoints."),
            )
    return problems


def effective_weights(
    default_weights: Mapping[str, float], overrides: Mapping[str, float] | None
) -> dict[str, float]:
    """Each endpoint's (or flow's) own weight unless the session overrides it by name (0
    leaves it out)."""
    overrides = overrides or {}
    return {name: float(overrides.get(name, weight)) for name, weight in default_weights.items()}


# --- schedules ---------------------------------------------------------------------------

SCHEDULE_INTERVAL_S_MAX = 366 * 86_400  # a year: beyond, a crontab says it better


def check_crontab(spec: str) -> None:
    """Five crontab fields that Celery's own parser accepts."""
    check_single_line(spec)
    fields = spec.split()
    if len(fields) != 5:
        raise ValidationError(
            "A crontab has five fields: minute hour day-of-month month day-of-week "
            '(for example "0 9 * * 1-5").'
        )
    try:
        celery_crontab(*fields)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValidationError(f"Not a valid crontab: {exc}") from exc


def check_weekdays(days) -> None:
    if not isinstance(days, list) or any(type(day) is not int or not 0 <= day <= 6 for day in days):
        raise ValidationError("A list of weekdays, 0 (Monday) to 6 (Sunday).")
    if len(set(days)) != len(days):
        raise ValidationError("Each weekday at most once.")


def check_time_zone(name: str) -> None:
    try:
        # IANA names are short ASCII; anything else would reach the file system as a path.
        if not name.isascii() or len(name) > 64:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ValidationError(
            f"Unknown time zone {name[:80]!r} (an IANA name, e.g. Europe/Paris)."
        ) from exc


# --- tags ---------------------------------------------------------------------------------

TAGS_MAX = 10
TAG_CHARS_MAX = 32
# Letters and digits of any script, and - _ . : inside; no spaces, quotes, slashes or commas,
# so a tag reads the same in a URL's query, a comma-separated form field and a CSV cell.
_TAG = re.compile(r"[^\W_](?:[\w.:-]*[^\W_])?")


def clean_tags(tags: object) -> list[str]:
    """Session tags as stored: each NFKC-normalised (full-width letters become plain ones),
    stripped and lower-cased, so one label is never two; the list's order kept. Anything else
    (too many, too long, a space or symbol, the same tag twice) is refused by name."""
    if tags is None or tags == "":
        return []
    if not isinstance(tags, list | tuple):
        raise ValidationError('Give a list of short labels, e.g. ["nightly", "checkout"].')
    if len(tags) > TAGS_MAX:
        raise ValidationError(f"At most {TAGS_MAX} tags (got {len(tags)}).")
    cleaned: list[str] = []
    for position, tag in enumerate(tags, start=1):
        if not isinstance(tag, str):
            raise ValidationError(f"Tag {position}: must be text, not {type(tag).__name__}.")
        tag = unicodedata.normalize("NFKC", tag).strip().lower()
        if not tag:
            raise ValidationError(f"Tag {position}: is empty.")
        if len(tag) > TAG_CHARS_MAX:
            raise ValidationError(
                f"Tag {position} ('{_shorten(tag, 20)}'): at most {TAG_CHARS_MAX} characters."
            )
        if not _TAG.fullmatch(tag):
            raise ValidationError(
                f"Tag {position} ('{_shorten(tag, 40)}'): letters and digits, with - _ . : "
                "between them; no spaces or other symbols."
            )
        if tag in cleaned:
            raise ValidationError(f"Tag '{tag}' is given twice.")
        cleaned.append(tag)
    return cleaned


def check_tags(tags: object) -> None:
    """The model's check (``services`` store the cleaned list)."""
    clean_tags(tags)


def tags_from_text(text: str) -> list[str]:
    """A form's comma-separated tags ("nightly, checkout") as a list, for ``clean_tags``."""
    return [part for part in (piece.strip() for piece in text.split(",")) if part]
