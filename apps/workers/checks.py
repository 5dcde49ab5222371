"""What makes an answer right: the statuses an endpoint expects and its response checks.

Both are written in the catalog (``Endpoint.expected_statuses``, ``Endpoint.checks``), carried
in the plan as written, and compiled here once per shard into ``ResponseRules``: a status
table indexed by the code, and checks whose JSON paths are already parsed, so the hot loop
pays one list index per answer and evaluates checks only for endpoints that have some.

The parsers are the validators too: the control plane calls ``normalise_statuses`` and
``parse_checks`` to refuse bad input (ValueError, messages naming the item, the check's index
and key), so that what a shard compiles has been accepted by the same code.

An answer whose status is not expected keeps the class of its code: 5xx (and anything above)
``http_5xx``, 4xx ``http_4xx``; an unexpected 2xx or 3xx (only 201 expected, 200 came)
is an ``application`` failure: the target answered, but not as the test says it must.
The first failing check makes an expected answer an ``application`` failure too.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .breaker import UNAVAILABLE_STATUSES
from .http import TOKEN, Response
from .vocabulary import FailureClass

STATUS_MIN, STATUS_MAX = 100, 599
DEFAULT_EXPECTED_STATUSES = "200-399"
STATUSES_CHARS_MAX = 200
STATUS_TABLE_SIZE = 1000  # httptools reads any three-digit status

CHECKS_MAX = 20  # per endpoint
CHECK_NAME_CHARS_MAX = 60
CHECK_TEXT_CHARS_MAX = 1000  # a body_contains value, a json_path_equals value (as JSON)
JSON_PATH_CHARS_MAX = 200
JSON_PATH_STEPS_MAX = 32
MAX_MS_MAX = 600_000.0  # the longest endpoint timeout
DEFAULT_CHECK_BODY_LIMIT = 2**20  # bytes of a checked body kept (CHECK_BODY_LIMIT)
SHOWN_CHARS = 60  # of a value quoted in a message

# A check type -> the keys it needs besides ``type`` (and the optional ``name``).
CHECK_TYPES: dict[str, tuple[str, ...]] = {
    "body_contains": ("value",),
    "body_not_contains": ("value",),
    "json_path_equals": ("path", "value"),
    "json_path_exists": ("path",),
    "header_present": ("header",),
    "max_ms": ("value",),
}
_BODY_TYPES = frozenset({"body_contains", "body_not_contains"})
_JSON_TYPES = frozenset({"json_path_equals", "json_path_exists"})


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...")


# --- expected statuses ----------------------------------------------------------------------

_STATUS_ITEM = re.compile(r"([0-9]{3})(?:-([0-9]{3}))?\Z")  # ASCII digits only


def parse_statuses(spec: object) -> list[tuple[int, int]]:
    """``"200-299,404"`` -> ``[(200, 299), (404, 404)]``: ranges and single statuses within
    100-599, in ascending order without overlap; spaces around items are ignored.
    ValueError names the item and its position."""
    if not isinstance(spec, str):
        raise ValueError('Give statuses as text, like "200-399" or "200-299,404".')
    if len(spec) > STATUSES_CHARS_MAX:
        raise ValueError(f"At most {STATUSES_CHARS_MAX} characters ({len(spec):,} given).")
    if not spec.strip():
        raise ValueError('Give at least one status or range, like "200-399".')
    ranges: list[tuple[int, int]] = []
    position = 0
    for number, item in enumerate(spec.split(","), start=1):
        where = f"Item {number} ({_shown(item.strip())}, at character {position + 1})"
        position += len(item) + 1
        match = _STATUS_ITEM.match(item.strip())
        if match is None:
            raise ValueError(f"{where}: not a status (404) or a range (200-299).")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not (STATUS_MIN <= low <= STATUS_MAX and STATUS_MIN <= high <= STATUS_MAX):
            raise ValueError(f"{where}: statuses go from {STATUS_MIN} to {STATUS_MAX}.")
        if high < low:
            raise ValueError(f"{where}: a range goes from the lower status to the higher.")
        if ranges and low <= ranges[-1][1]:
            raise ValueError(
                f"{where}: items must be in ascending order without overlap "
                f"(the previous one ends at {ranges[-1][1]})."
            )
        ranges.append((low, high))
    return ranges


def normalise_statuses(spec: object) -> str:
    """The spec as stored: no spaces, adjacent ranges joined (``200-299,300-399`` ->
    ``200-399``), a single status without a range."""
    merged: list[list[int]] = []
    for low, high in parse_statuses(spec):
        if merged and low == merged[-1][1] + 1:
            merged[-1][1] = high
        else:
            merged.append([low, high])
    return ",".join(f"{low}" if low == high else f"{low}-{high}" for low, high in merged)


def status_table(spec: str) -> bytes:
    """One byte per status code (0 to 999): 1 where the status is expected."""
    table = bytearray(STATUS_TABLE_SIZE)
    for low, high in parse_statuses(spec):
        table[low : high + 1] = b"\x01" * (high - low + 1)
    return bytes(table)


def unexpected_status_class(status: int) -> FailureClass:
    if status >= 500:
        return FailureClass.HTTP_5XX
    if status >= 400:
        return FailureClass.HTTP_4XX
    return FailureClass.APPLICATION


def unexpected_answer(response: Response, body_chars: int) -> tuple[FailureClass, bool, str]:
    """An answer whose status the endpoint does not expect: its failure class, whether it
    says the target is unavailable (for the breaker and the back-off), and the detail for the
    error log, with the first ``body_chars`` characters of the body."""
    status = response.status
    text = response.body_prefix[:body_chars].decode(errors="replace").strip()
    return (
        unexpected_status_class(status),
        status in UNAVAILABLE_STATUSES,
        f"HTTP {status} {response.reason}: {text}".strip(),
    )


# --- JSON paths -----------------------------------------------------------------------------

_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[([0-9]{1,9})\]|\[\"([^\"\\]*)\"\]")


def parse_json_path(path: object) -> tuple[str | int, ...]:
    """``$.a.b[0]["c d"]`` -> ``("a", "b", 0, "c d")``: object keys (``.name``, or any
    text without quote or backslash as ``["..."]``) and list positions (``[N]``). No
    wildcards, filters or expressions: nothing is evaluated."""
    if not isinstance(path, str):
        raise ValueError('A JSON path is text, like "$.data.items[0].id".')
    if len(path) > JSON_PATH_CHARS_MAX:
        raise ValueError(f"A JSON path has at most {JSON_PATH_CHARS_MAX} characters.")
    if not path.startswith("$"):
        raise ValueError('A JSON path starts with "$" (the whole body), like "$.status".')
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise ValueError(
                f"Unexpected {_shown(path[position : position + 10])} at character "
                f'{position + 1} of the JSON path: use .key, [N] or ["key"].'
            )
        key, index, quoted = match.groups()
        steps.append(int(index) if index is not None else key if key is not None else quoted)
        position = match.end()
    if len(steps) > JSON_PATH_STEPS_MAX:
        raise ValueError(f"A JSON path has at most {JSON_PATH_STEPS_MAX} steps.")
    return tuple(steps)


_MISSING = object()


def follow(document: Any, steps: Sequence[str | int]) -> Any:
    """The value at ``steps`` in ``document``, or ``_MISSING``. A key reads objects only,
    a position lists only (``$.a[0]`` on ``{"a": {"0": 1}}`` finds nothing)."""
    value = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
        elif not isinstance(value, dict) or step not in value:
            return _MISSING
        value = value[step]
    return value


# --- checks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One response check, parsed: what ``Check.failure`` compares the answer with."""

    name: str
    type: str
    text: bytes = b""  # body_contains, body_not_contains
    steps: tuple[str | int, ...] = ()  # json_path_*
    path: str = ""
    value: Any = None  # json_path_equals
    header: bytes = b""  # header_present, lowercase
    max_ms: float = 0.0

    def failure(self, response: Response, document: Any, elapsed_ms: float) -> str | None:
        """Why the answer fails this check (short: what was expected), or None."""
        kind = self.type
        if kind == "body_contains":
            return None if self.text in response.body_prefix else "the body lacks the text"
        if kind == "body_not_contains":
            return "the body has the text" if self.text in response.body_prefix else None
        if kind == "max_ms":
            if elapsed_ms < self.max_ms:
                return None
            return f"answered in {elapsed_ms:.0f} ms, expected below {self.max_ms:g} ms"
        if kind == "header_present":
            names = response.headers or ()
            return None if self.header in names else f"no {self.header.decode()} header"
        if document is _NOT_JSON:
            return "the body is not JSON (or is longer than CHECK_BODY_LIMIT)"
        found = follow(document, self.steps)
        if found is _MISSING:
            return f"{self.path} not found"
        if kind == "json_path_equals" and not _same_json(found, self.value):
            return f"{self.path} is not {_shown(json.dumps(self.value, ensure_ascii=False))}"
        return None


def _same_json(found: Any, expected: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1 (Python's == says it is)."""
    if isinstance(found, bool) or isinstance(expected, bool):
        return type(found) is type(expected) and found == expected
    return bool(found == expected)


_NOT_JSON = object()


def _check_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: a non-empty string.")
    if len(value) > CHECK_TEXT_CHARS_MAX:
        raise ValueError(f"{where}: at most {CHECK_TEXT_CHARS_MAX} characters.")
    if "\0" in value:
        raise ValueError(f"{where}: contains a NUL character.")
    return value


def _check_json_value(value: object, where: str) -> Any:
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: a JSON value (finite numbers only).") from exc
    if len(text) > CHECK_TEXT_CHARS_MAX:
        raise ValueError(f"{where}: at most {CHECK_TEXT_CHARS_MAX} characters as JSON.")
    return value


def _check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: a non-empty string.")
    if len(value) > CHECK_NAME_CHARS_MAX:
        raise ValueError(f"{where}: at most {CHECK_NAME_CHARS_MAX} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in value):
        raise ValueError(f"{where}: control or invisible characters are not allowed.")
    return value


def _parse_check(item: object, index: int) -> Check:
    where = f"checks[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: an object with a type, like {{'type': 'body_contains', ...}}.")
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in CHECK_TYPES:
        raise ValueError(f"{where}.type: one of {', '.join(CHECK_TYPES)}.")
    needed = CHECK_TYPES[kind]
    for key in needed:
        if key not in item:
            raise ValueError(f"{where}.{key}: required by a {kind} check.")
    unknown = sorted(str(key) for key in item if key not in ("type", "name", *needed))
    if unknown:
        raise ValueError(
            f"{where}.{_shown(unknown[0])[1:-1]}: unknown key; a {kind} check has "
            f"{', '.join(('type', 'name', *needed))}."
        )
    name = _check_name(item.get("name", kind), f"{where}.name")
    if kind in _BODY_TYPES:
        text = _check_text(item["value"], f"{where}.value")
        return Check(name, kind, text=text.encode())
    if kind in _JSON_TYPES:
        path = item["path"]
        try:
            steps = parse_json_path(path)
        except ValueError as exc:
            raise ValueError(f"{where}.path: {exc}") from exc
        value = _check_json_value(item["value"], f"{where}.value") if "value" in needed else None
        return Check(name, kind, steps=steps, path=str(path), value=value)
    if kind == "header_present":
        header = item["header"]
        if not isinstance(header, str) or len(header) > 256 or not TOKEN.match(header):
            raise ValueError(f"{where}.header: a header name (letters, digits, -_).")
        return Check(name, kind, header=header.lower().encode())
    limit = item["value"]
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not math.isfinite(limit):
        raise ValueError(f"{where}.value: a number of milliseconds.")
    if not 0 < limit <= MAX_MS_MAX:
        raise ValueError(f"{where}.value: from more than 0 up to {MAX_MS_MAX:g} ms.")
    return Check(name, kind, max_ms=float(limit))


def parse_checks(checks: object) -> tuple[Check, ...]:
    """An endpoint's ``checks`` list, parsed; ValueError names the check's index and key.
    A check without a name is named after its type (``body_contains``, then
    ``body_contains-2``...); names are unique within the endpoint."""
    if checks is None:
        return ()
    if not isinstance(checks, list):
        raise ValueError("checks: a list of checks (objects with a type).")
    if len(checks) > CHECKS_MAX:
        raise ValueError(f"checks: at most {CHECKS_MAX} per endpoint ({len(checks):,} given).")
    parsed: list[Check] = []
    names: set[str] = set()
    for index, item in enumerate(checks):
        check = _parse_check(item, index)
        if isinstance(item, Mapping) and "name" not in item:
            number = 1
            while check.name in names:
                number += 1
                check = Check(**{**check.__dict__, "name": f"{check.type}-{number}"})
        elif check.name in names:
            raise ValueError(f"checks[{index}].name: {_shown(check.name)} is used twice.")
        names.add(check.name)
        parsed.append(check)
    return tuple(parsed)


# --- what a shard uses ----------------------------------------------------------------------


class ResponseRules:
    """An endpoint's expected statuses and checks, compiled for the hot loop."""

    __slots__ = ("body_limit", "checks", "expected", "needs_headers", "needs_json")

    def __init__(self, expected_statuses: str, checks: object, body_limit: int) -> None:
        self.expected = status_table(expected_statuses)
        self.checks = parse_checks(checks)
        types = {check.type for check in self.checks}
        self.needs_json = bool(types & _JSON_TYPES)
        self.needs_headers = "header_present" in types
        # Bytes of the body the client keeps: all (up to the limit) if a check reads it.
        self.body_limit = body_limit if types & (_BODY_TYPES | _JSON_TYPES) else 0

    def first_failure(self, response: Response, elapsed_ms: float) -> tuple[str, str] | None:
        """The first failing check's name and why, or None when all pass."""
        document: Any = None
        if self.needs_json:
            if response.body_bytes > len(response.body_prefix):
                document = _NOT_JSON  # cut at CHECK_BODY_LIMIT: not the whole document
            else:
                try:
                    document = json.loads(response.body_prefix)
                except (ValueError, RecursionError):
                    document = _NOT_JSON
        for check in self.checks:
            why = check.failure(response, document, elapsed_ms)
            if why is not None:
                return check.name, why
        return None
