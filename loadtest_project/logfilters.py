"""Logging filters: credentials removed from every log line, beat's ticks kept at DEBUG.

Secrets reach logs by accident: an exception message quoting a request, a debug line with
headers, a URL with a token in it. Rather than trust every call site, every handler scrubs
the formatted message: Authorization and Cookie values, API tokens, session and CSRF cookies,
passwords and secrets in key=value or JSON form, and credentials inside URLs.
"""

import logging
import re

REDACTED = "[redacted]"

_PATTERNS = [
    # Header lines and dict entries: Authorization: Token abc / 'Cookie': 'sessionid=...'
    re.compile(
        r"(?i)(\b(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key)['\"]?"
        r"\s*[:=]\s*['\"]?)([^'\"\n,}]+)"
    ),
    # Bare scheme credentials: Token 0123..., Bearer eyJ..., Basic dXNlcjpw...
    re.compile(r"(?i)(\b(?:token|bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # key=value and "key": "value" for secret-looking keys.
    re.compile(
        r"(?i)(\b(?:password|passwd|secret|secret_key|api_key|apikey|access_token|"
        r"refresh_token|token|sessionid|csrftoken|csrfmiddlewaretoken)['\"]?\s*[:=]\s*['\"]?)"
        r"([^'\"\s&,;}]+)"
    ),
    # Credentials in URLs: scheme://user:password@host
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)"),
]


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        if pattern.groups == 3:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)
        else:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites the record's message (with its arguments merged) and any traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class TicksAtDebug(logging.Filter):
    """Celery beat logs every task it queues at INFO: with monitors every second, one line per
    second that buries everything else. Attached to the ``celery.beat`` logger, this filter
    relabels those lines DEBUG and lets them through only when that level is enabled, so
    LOG_LEVEL=DEBUG still shows every tick while beat's other INFO lines (start-up, shutdown)
    are kept."""

    TICK_PREFIX = "Scheduler: Sending due task"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not str(record.msg).startswith(self.TICK_PREFIX):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
