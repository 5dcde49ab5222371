"""Secrets in an endpoint's configuration, and masking them by value wherever text leaves.

An endpoint's headers, body and query string may carry credentials, and a target may echo
them back in an error page that becomes an error sample. Masking by header name misses
``X-Custom-Auth`` and every echo, so this module masks by value: every configured header value
(of at least ``MIN_SECRET_CHARS``; shorter ones are no secret and would mask ordinary text)
and every value of a secret-looking key in a JSON or form body or in the query string,
whatever it is called and wherever it appears.

Both layers use it, so there is one list of secret-looking names and one masker: the engine
for error samples before they leave the worker and again when the monitor stores them, the
control plane for exports, the configuration history and the log filter.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, unquote_plus, urlsplit

from .plan import Plan

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4

# A header, form field, JSON key or log key whose name contains one of these (ignoring case,
# "-", "_" and ".") is taken to hold a secret: Authorization, X-Custom-Auth, Cookie,
# X-API-Key, api_key, access_token, client_secret, password, sessionid, X-CSRFToken...
SECRET_NAME_WORDS = (
    "auth",
    "cookie",
    "token",
    "secret",
    "passw",
    "apikey",
    "sessionid",
    "csrf",
    "signature",
    "credential",
    "privatekey",
    "accesskey",
)


def is_secret_name(name: str) -> bool:
    squeezed = re.sub(r"[-_.\s]", "", name.lower())
    return any(word in squeezed for word in SECRET_NAME_WORDS)


def mask_headers_by_name(headers: Mapping[str, str] | None) -> dict:
    """Headers to show a person: the values of secret-looking names replaced."""
    return {
        name: REDACTED if is_secret_name(name) else value for name, value in (headers or {}).items()
    }


def endpoint_secrets(headers: Mapping | None, body: str = "", url: str = "") -> frozenset[str]:
    """Every value of this request that must not be shown: all header values (with the
    credential alone for "Bearer x", "Basic x" and each cookie's value), and the values of
    secret-looking keys in the body (JSON or form) and in the query string."""
    values = tuple(value for value in (headers or {}).values() if isinstance(value, str))
    return _endpoint_secrets(values, body or "", url or "")


# A shard masks each error sample it keeps, and a body may be 1 MiB of JSON: parse it once
# per endpoint, not once per sample. (Strings cache their hash, so a hit costs no rehash.)
@lru_cache(maxsize=32)
def _endpoint_secrets(header_values: tuple[str, ...], body: str, url: str) -> frozenset[str]:
    found: set[str] = set()
    for value in header_values:
        found.update(_header_value_secrets(value.strip()))
    found.update(_body_secrets(body))
    found.update(_form_secrets(urlsplit(url).query))
    return frozenset(secret for secret in found if len(secret) >= MIN_SECRET_CHARS)


def plan_secrets(plan: Plan | None) -> set[str]:
    """The secrets of every endpoint of a session's frozen plan (None: not started)."""
    found: set[str] = set()
    for endpoint in plan.endpoints if plan is not None else ():
        found |= endpoint_secrets(endpoint.headers, endpoint.body, endpoint.url)
    return found


def mask_secrets(text: str, secrets: Iterable[str], cut_short: bool = False) -> str:
    """``text`` with every secret replaced by REDACTED, also as a target may echo it:
    percent-encoded, JSON-escaped or HTML-escaped. ``cut_short``: the text may have been cut
    in the middle of a secret (the start of a response body), so a text that ends with the
    start of one (MIN_SECRET_CHARS or more of it) has that start masked too."""
    longest_first, ordered = _echo_forms_of(frozenset(secrets))
    for form in longest_first:
        if form in text:
            text = text.replace(form, REDACTED)
    if cut_short and ordered:
        # The longest tail of the text that some form starts with: in sorted order, the
        # first form not below the tail is the one to try.
        longest = len(longest_first[0])
        for start in range(max(0, len(text) - longest), len(text) - MIN_SECRET_CHARS + 1):
            tail = text[start:]
            index = bisect_left(ordered, tail)
            if index < len(ordered) and ordered[index].startswith(tail):
                return text[:start] + REDACTED
    return text


@lru_cache(maxsize=32)
def _echo_forms_of(secrets: frozenset[str]) -> tuple[list[str], list[str]]:
    """The forms of these secrets, longest first (to replace) and sorted (to search)."""
    forms = {form for secret in secrets for form in _echo_forms(secret)}
    return sorted(forms, key=len, reverse=True), sorted(forms)


def _echo_forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], html.escape(secret)}
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def _header_value_secrets(value: str) -> set[str]:
    found = {value}
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    found.add(credential)
    if scheme.lower() == "basic":
        try:
            user_password = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            user_password = ""
        found.update({user_password, user_password.partition(":")[2]})
    for pair in value.split(";"):  # a Cookie header: name=value; name=value
        found.add(pair.partition("=")[2].strip())
    return found


def _body_secrets(body: str) -> set[str]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return _form_secrets(body)
    found: set[str] = set()
    # Iterative walk: the body is whatever a user typed, and may nest deeper than the stack.
    pending: list[tuple[object, bool]] = [(document, False)]
    while pending:
        item, under_secret_key = pending.pop()
        if isinstance(item, Mapping):
            pending.extend(
                (value, under_secret_key or is_secret_name(str(key))) for key, value in item.items()
            )
        elif isinstance(item, list):
            pending.extend((value, under_secret_key) for value in item)
        elif under_secret_key and item is not None and not isinstance(item, bool):
            found.add(str(item))
    return found


def _form_secrets(encoded: str) -> set[str]:
    found: set[str] = set()
    for pair in encoded.split("&"):
        name, _, raw = pair.partition("=")
        if raw and is_secret_name(unquote_plus(name)):
            found.update({raw, unquote_plus(raw)})
    return found


def describe_url(url: str) -> str:
    """The URL as messages may show it: scheme, host and port, never credentials, path or
    query (where a key may sit)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        return "(an unreadable URL)"
