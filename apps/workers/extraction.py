"""Values a flow's step takes from an answer for the steps after it: a login's token, an id.

Written in the catalog as a JSON list on a flow's step (``FlowStep.extract``), carried in the
plan as written and parsed here once per shard. Each item names a variable and says where its
value is: a JSON path into the body (the same path syntax as the response checks), a regular
expression over the body (its first group, or the whole match), or a response header. The
parser is also the control plane's validator (ValueError naming ``extract[i].key``), so what
a shard compiles has been accepted by the same code.

A value that is not found fails the step (an ``application`` failure named
``extract <variable>``), and with it the rest of that iteration of the flow: sending later
steps with an empty token would only measure the target's refusals.

Patterns run with the ``regex`` module rather than ``re``, for its timeout: a pattern that
backtracks catastrophically on some answer (``(a|aa)+$`` on a long run of a's) would hold the
shard's event loop, and with it every user of the shard, for as long as it runs. It gets
``REGEX_TIMEOUT_S`` per answer and then fails the step saying so. Compiling is bounded too,
before it starts (``pattern_size``): counted repetitions are unrolled into the program, and a
few nested counts would take hundreds of megabytes from the web process that validates the
flow and from every shard that runs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import regex

from .checks import _MISSING, follow, parse_json_path
from .http import TOKEN, Response
from .pattern_size import PatternTooLarge, check_pattern_size
from .userstate import UserState

EXTRACTIONS_MAX = 20  # per step
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
# Names the templates already give a meaning to.
RESERVED_NAMES = frozenset({"user_id", "feed"})
REGEX_CHARS_MAX = 500
# An extracted value is kept per user until the iteration ends: a cap keeps 20,000 users'
# variables in kilobytes each, whatever the target answers.
VALUE_CHARS_MAX = 4096
SOURCES = ("json_path", "regex", "header")
REGEX_TIMEOUT_S = 0.05  # per answer searched: a step's wait, never the shard's


@dataclass(frozen=True)
class Extraction:
    """One variable to take from an answer, parsed."""

    name: str
    source: str  # one of SOURCES
    expression: str  # as written: the path, the pattern or the header name
    steps: tuple[str | int, ...] = ()
    pattern: regex.Pattern[str] | None = None
    header: bytes = b""

    def value(self, response: Response, document: Any) -> str | None:
        """The value in ``response`` (``document``: its body parsed as JSON, or ``NOT_JSON``),
        or None when it is not there."""
        if self.source == "header":
            headers = response.headers or {}
            raw = headers.get(self.header)
            return None if raw is None else raw.decode("latin-1")[:VALUE_CHARS_MAX]
        if self.source == "regex":
            assert self.pattern is not None
            text = response.body_prefix.decode("utf-8", "replace")
            try:
                match = self.pattern.search(text, timeout=REGEX_TIMEOUT_S)
            except TimeoutError:
                raise TooSlow(
                    f"the regex {self.expression} took longer than "
                    f"{REGEX_TIMEOUT_S * 1000:g} ms on this answer ({len(text):,} characters): "
                    "make it simpler"
                ) from None
            if match is None:
                return None
            group = match.group(1) if self.pattern.groups else match.group(0)
            return None if group is None else group[:VALUE_CHARS_MAX]
        if document is NOT_JSON:
            return None
        found = follow(document, self.steps)
        if found is _MISSING:
            return None
        text = (
            found
            if isinstance(found, str)
            else json.dumps(found, separators=(",", ":"), ensure_ascii=False)
        )
        return text[:VALUE_CHARS_MAX]


class TooSlow(Exception):
    """A pattern ran out of its time on an answer (never a TimeoutError: that is the
    request's own timeout to the shard)."""


NOT_JSON = object()


def parse_document(response: Response) -> Any:
    """The answer's body as JSON, or NOT_JSON (not JSON, or cut at the body limit)."""
    if response.body_bytes > len(response.body_prefix):
        return NOT_JSON
    try:
        return json.loads(response.body_prefix)
    except (ValueError, RecursionError):
        return NOT_JSON


def _parse_item(item: object, index: int) -> Extraction:
    where = f"extract[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(
            f'{where}: an object like {{"name": "token", "json_path": "$.token"}} (or "regex" '
            'or "header" instead of "json_path").'
        )
    name = item.get("name")
    if not isinstance(name, str) or not VARIABLE.match(name):
        raise ValueError(
            f"{where}.name: a variable name: a letter or _, then letters, digits or _ (at most 64)."
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"{where}.name: {name!r} is reserved by the templates; choose another.")
    sources = [key for key in SOURCES if key in item]
    if len(sources) != 1:
        raise ValueError(f"{where}: exactly one of {', '.join(SOURCES)}.")
    source = sources[0]
    unknown = sorted(str(key) for key in item if key not in ("name", source))
    if unknown:
        raise ValueError(f"{where}.{unknown[0][:40]}: unknown key; use name and {source}.")
    expression = item[source]
    if not isinstance(expression, str) or not expression:
        raise ValueError(f"{where}.{source}: a non-empty string.")
    if source == "json_path":
        try:
            steps = parse_json_path(expression)
        except ValueError as exc:
            raise ValueError(f"{where}.json_path: {exc}") from exc
        return Extraction(name, source, expression, steps=steps)
    if source == "header":
        if len(expression) > 256 or not TOKEN.match(expression):
            raise ValueError(f"{where}.header: a header name (letters, digits, -_).")
        return Extraction(name, source, expression, header=expression.lower().encode())
    if len(expression) > REGEX_CHARS_MAX:
        raise ValueError(f"{where}.regex: at most {REGEX_CHARS_MAX} characters.")
    try:
        check_pattern_size(expression)
    except PatternTooLarge as exc:
        raise ValueError(f"{where}.regex: {exc}") from exc
    try:
        pattern = regex.compile(expression)
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        raise ValueError(f"{where}.regex: not a regular expression ({exc}).") from exc
    if pattern.groups > 1:
        raise ValueError(
            f"{where}.regex: at most one group, the value; make others (?:...) groups."
        )
    return Extraction(name, source, expression, pattern=pattern)


def parse_extractions(value: object) -> tuple[Extraction, ...]:
    """A step's ``extract`` list, parsed; ValueError names the item's index and key. A
    variable is set once per step (two items of one name would make the order matter)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError('extract: a list like [{"name": "token", "json_path": "$.token"}].')
    if len(value) > EXTRACTIONS_MAX:
        raise ValueError(f"extract: at most {EXTRACTIONS_MAX} per step ({len(value):,} given).")
    parsed: list[Extraction] = []
    for index, item in enumerate(value):
        extraction = _parse_item(item, index)
        if any(earlier.name == extraction.name for earlier in parsed):
            raise ValueError(f"extract[{index}].name: {extraction.name!r} is set twice.")
        parsed.append(extraction)
    return tuple(parsed)


def extract_variables(
    extractions: tuple[Extraction, ...], response: Response, state: UserState
) -> tuple[str, str] | None:
    """Set the user's variables from the answer; the first one not found (its variable's
    name and why), or None."""
    document = None
    if any(extraction.source == "json_path" for extraction in extractions):
        document = parse_document(response)
    variables = state.variables
    if variables is None:
        variables = state.variables = {}
    for extraction in extractions:
        try:
            value = extraction.value(response, document)
        except TooSlow as exc:
            return extraction.name, str(exc)
        if value is None:
            return extraction.name, f"{extraction.expression} not found"
        variables[extraction.name] = value
    return None
