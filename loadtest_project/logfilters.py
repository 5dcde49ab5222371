"""Logging filters: credentials removed from every log line, beat's ticks kept at DEBUG.

Secrets reach logs by accident: an exception message quoting a request, a debug line with
headers, a URL with a token in it. Rather than trust every call site, every handler scrubs
the formatted message: the value of every secret-looking name (Authorization, Cookie, X-Custom-Auth,
password, token... in header, key=value or JSON form), scheme credentials, and credentials
inside URLs.
"""

import logging
import re

from apps.workers.secrets import REDACTED, is_secret_name

# A name followed by ":" or "=" (quoted or not): its value is redacted when the name looks
# secret (apps.workers.secrets owns that rule). After ":" the value runs to the end of the
# line, a quote or a comma ("Authorization: Token abc"); after "=" to a space or separator.
_KEY = re.compile(r"([\w.-]+)(['\"]?\s*([:=])\s*['\"]?)")
_VALUE_AFTER = {":": re.compile(r"[^'\"\n,}]+"), "=": re.compile(r"[^'\"\s&,;}]+")}

_PATTERNS = [
    # Bare scheme credentials: Token 0123..., Bearer eyJ..., Basic dXNlcjpw...
    re.compile(r"(?i)(\b(?:token|bearer|basic)\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # Credentials in URLs: scheme://user:password@host
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)"),
]


def _redact_secret_keys(text: str) -> str:
    parts, done = [], 0
    for key in _KEY.finditer(text):
        if key.start() < done or not is_secret_name(key.group(1)):
            continue
        value = _VALUE_AFTER[key.group(3)].match(text, key.end())
        if value:
            parts += [text[done : value.start()], REDACTED]
            done = value.end()
    return "".join([*parts, text[done:]])


def redact(text: str) -> str:
    text = _redact_secret_keys(text)
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
