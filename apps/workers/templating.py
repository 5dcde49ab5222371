"""Request templates: ``{{ expression }}`` placeholders in an endpoint's path, headers and body.

Why a language of our own: the text comes from users (dashboard, API, config files) and runs in
the hot loop of every shard, so it must be safe (no ``eval``, no Jinja executing user code),
checkable when saved (an error names the character it is at) and cheap per request. The
language is deliberately tiny: a placeholder holds one literal, one name or one call of a
built-in function with literal arguments; no operators, no nesting.

- functions: ``random_int(a, b)``, ``choice("a", "b", ...)``, ``uuid()``, ``seq()``,
  ``now_iso()``, ``random_string(n)``;
- names: ``user_id``, ``feed.<column>`` (the data feed's current row) and a bare identifier,
  a variable a flow's earlier step extracted;
- literals: integers, decimals, "double" or 'single' quoted strings (``\\"``, ``\\'`` and
  ``\\\\`` escapes); ``{{ "{{" }}`` writes a literal ``{{``. A ``}}`` outside a placeholder
  is ordinary text (JSON bodies end objects with it).

A template is parsed once (``parse_template``) into literal pieces and small render callables.
This module is the language: its parser, its functions and ``Template``, which the control
plane also uses to check what is saved. Turning an endpoint's templates into request bytes
(``compile_request``) is ``templated_requests``' business.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .userstate import UserState

MAX_TEMPLATE_CHARS = 1 << 20  # 1 MiB of text: the largest body the catalog accepts
MAX_PLACEHOLDERS = 1000  # per field
MAX_CHOICES = 100
MAX_RANDOM_STRING_CHARS = 1000
MAX_NUMBER_CHARS = 40  # digits of a literal number (no 10**100 bounds, no 1e400)
MAX_NAME_CHARS = 100
RANDOM_INT_LIMIT = 2**63 - 1  # random_int's bounds lie within +-this
_FLOAT_EXACT_SPAN = 2**32  # up to this many values, random() * span is uniform enough
FUNCTIONS = ("random_int", "choice", "uuid", "seq", "now_iso", "random_string")
_FUNCTION_LIST = ", ".join(FUNCTIONS)
_SYNTAX_HINT = (
    "a placeholder holds one function call, a name or a literal, e.g. {{ random_int(1, 10) }}, "
    '{{ user_id }}, {{ feed.email }} or {{ "{{" }}'
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_SPACES = re.compile(r"[ \t\r\n]*")
_STRING_BODY = {'"': re.compile(r'[^"\\]*'), "'": re.compile(r"[^'\\]*")}
_OPERATORS = frozenset("+*/%<>=!&|^~[]")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\"}
_RANDOM_STRING_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class TemplateError(ValueError):
    """A template that cannot be parsed or whose call is wrong. ``position`` is the 0-based
    character offset in the text; ``message`` says what is wrong and what is allowed."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"at character {position}: {message}")
        self.message = message
        self.position = position


# --- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, string, "(", ")", ",", ".", "}}"
    value: str  # the name, the number as written, the string's value
    position: int


class _Tokens:
    """The tokens of one placeholder, read on demand from just after its ``{{``."""

    def __init__(self, text: str, position: int, opening: int) -> None:
        self.text = text
        self.position = position
        self.opening = opening  # where the placeholder's "{{" is, for "not closed"

    def next(self) -> _Token:
        text = self.text
        start = _SPACES.match(text, self.position).end()  # type: ignore[union-attr]  # * matches
        if start >= len(text):
            raise TemplateError(
                f"the '{{{{' at character {self.opening} is not closed by '}}}}'", self.opening
            )
        char = text[start]
        if text.startswith("}}", start):
            self.position = start + 2
            return _Token("}}", "}}", start)
        if char in "(),.":
            self.position = start + 1
            return _Token(char, char, start)
        if char in "\"'":
            return self._string(start)
        if char.isascii() and (char.isdigit() or char == "-"):
            return self._number(start)
        name = _NAME.match(text, start)
        if name is not None:
            if name.end() - start > MAX_NAME_CHARS:
                raise TemplateError(f"a name is at most {MAX_NAME_CHARS} characters", start)
            self.position = name.end()
            return _Token("name", name.group(), start)
        if char in _OPERATORS:
            raise TemplateError(f"no operators ({char!r}): {_SYNTAX_HINT}", start)
        raise TemplateError(f"unexpected character {_describe(char)}; {_SYNTAX_HINT}", start)

    def _string(self, start: int) -> _Token:
        quote_char, text = self.text[start], self.text
        body = _STRING_BODY[quote_char]
        pieces, position = [], start + 1
        while True:
            run = body.match(text, position).end()  # type: ignore[union-attr]  # * matches
            pieces.append(text[position:run])
            if run >= len(text):
                raise TemplateError(
                    f"the string that starts here is not closed by {quote_char}", start
                )
            if text[run] == quote_char:
                self.position = run + 1
                return _Token("string", "".join(pieces), start)
            escaped = text[run + 1 : run + 2]  # after a backslash
            if escaped not in _ESCAPES:
                raise TemplateError("in a string, a backslash escapes only \\\", \\' or \\\\", run)
            pieces.append(_ESCAPES[escaped])
            position = run + 2

    def _number(self, start: int) -> _Token:
        number = _NUMBER.match(self.text, start)
        if number is None:
            raise TemplateError(f"a '-' must start a number; {_SYNTAX_HINT}", start)
        end = number.end()
        if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "._"):
            raise TemplateError(
                "a number is digits with an optional decimal part (no exponent, no letters)",
                start,
            )
        if end - start > MAX_NUMBER_CHARS:
            raise TemplateError(f"a number is at most {MAX_NUMBER_CHARS} characters", start)
        self.position = end
        return _Token("number", number.group(), start)


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X}"


Render = Callable[[UserState], str]
Piece = Callable[[UserState], bytes]  # a value as the request's bytes, per request


@dataclass(frozen=True)
class Placeholder:
    """One placeholder that renders per request. ``render`` gives its text; ``options`` (a
    choice's values) let a field encode them once; ``safe_bytes``, when set, gives the same
    value as bytes that need no encoding anywhere (ASCII letters, digits and ``-:.``): the
    fast way for the functions that only ever render those."""

    render: Render
    safe_bytes: Piece | None = None
    options: tuple[str, ...] | None = None
    column: str | None = None  # feed.<column>, bound to a position by ``Template.bind``
    variable: str | None = None
    width: int | None = None  # the length of every value (all ASCII), when they all have one


@dataclass(frozen=True)
class _Parsed:
    """A placeholder's meaning: a constant text, or a placeholder rendered per request."""

    constant: str | None = None
    placeholder: Placeholder | None = None


def _parse_placeholder(text: str, opening: int) -> tuple[_Parsed, int]:
    """The placeholder whose ``{{`` is at ``opening``, and where the text resumes after it."""
    tokens = _Tokens(text, opening + 2, opening)
    first = tokens.next()
    if first.kind == "}}":
        raise TemplateError(f"the placeholder is empty; {_SYNTAX_HINT}", first.position)
    if first.kind in ("string", "number"):
        _expect_end(tokens, "after a literal")
        return _Parsed(constant=first.value), tokens.position
    if first.kind != "name":
        raise TemplateError(f"unexpected {first.value!r}; {_SYNTAX_HINT}", first.position)
    after = tokens.next()
    if after.kind == "(":
        placeholder = _parse_call(first, tokens)
    elif after.kind == ".":
        placeholder = _parse_column(first, tokens)
    elif after.kind == "}}":
        return _Parsed(placeholder=_name(first)), tokens.position
    else:
        raise TemplateError(
            f"expected '}}}}' or '(' after {first.value!r}; {_SYNTAX_HINT}", after.position
        )
    _expect_end(tokens, "after the expression (one expression per placeholder)")
    return _Parsed(placeholder=placeholder), tokens.position


def _expect_end(tokens: _Tokens, where: str) -> None:
    token = tokens.next()
    if token.kind != "}}":
        raise TemplateError(f"expected '}}}}' {where}; no operators", token.position)


def _name(token: _Token) -> Placeholder:
    name = token.value
    if name in FUNCTIONS:
        raise TemplateError(f"{name} is a function: write {name}()", token.position)
    if name == "feed":
        raise TemplateError("write feed.<column>, e.g. feed.email", token.position)
    if name == "user_id":
        return Placeholder(lambda user: str(user.user_id), lambda user: b"%d" % user.user_id)
    return Placeholder(_variable_renderer(name), variable=name)


def _variable_renderer(name: str) -> Render:
    def render(user: UserState) -> str:
        variables = user.variables
        return variables.get(name, "") if variables else ""

    return render


def _parse_column(first: _Token, tokens: _Tokens) -> Placeholder:
    if first.value != "feed":
        raise TemplateError(
            f"no attribute access on {first.value!r}: only feed.<column> has a dot",
            first.position,
        )
    column = tokens.next()
    if column.kind != "name":
        raise TemplateError(
            "after 'feed.' comes a column name (letters, digits, _)", column.position
        )
    return Placeholder(_unbound_column(column.value), column=column.value)


def _unbound_column(column: str) -> Render:
    def render(user: UserState) -> str:
        raise LookupError(f"feed.{column}: the template was not bound to the feed's columns")

    return render


def _column_renderer(index: int) -> Render:
    def render(user: UserState) -> str:
        row = user.row
        return row[index] if row is not None and index < len(row) else ""

    return render


def _parse_call(name: _Token, tokens: _Tokens) -> Placeholder:
    if name.value not in FUNCTIONS:
        raise TemplateError(f"unknown function {name.value!r}; use {_FUNCTION_LIST}", name.position)
    arguments: list[_Token] = []
    token = tokens.next()
    while token.kind != ")":
        if token.kind not in ("number", "string"):
            raise TemplateError(
                f"{name.value}()'s arguments are literal numbers or strings (no names, no "
                "nested calls), separated by commas",
                token.position,
            )
        arguments.append(token)
        if len(arguments) > MAX_CHOICES:
            raise TemplateError(f"at most {MAX_CHOICES} arguments", token.position)
        token = tokens.next()
        if token.kind == ",":
            token = tokens.next()
        elif token.kind != ")":
            raise TemplateError(f"expected ',' or ')' in {name.value}()", token.position)
    return _FUNCTION_PARSERS[name.value](name, arguments, token.position)


def _no_arguments(name: _Token, arguments: list[_Token]) -> None:
    if arguments:
        raise TemplateError(f"{name.value}() takes no arguments", arguments[0].position)


def _integer(name: _Token, argument: _Token, low: int, high: int) -> int:
    if argument.kind != "number" or not re.fullmatch(r"-?[0-9]+", argument.value):
        raise TemplateError(f"{name.value}() takes integers", argument.position)
    value = int(argument.value)
    if not low <= value <= high:
        raise TemplateError(
            f"{name.value}()'s argument must be between {low} and {high}", argument.position
        )
    return value


def _random_int(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    if len(arguments) != 2:
        raise TemplateError("random_int(a, b) takes two integers, a <= b", closing)
    low, high = (_integer(name, a, -RANDOM_INT_LIMIT, RANDOM_INT_LIMIT) for a in arguments)
    if low > high:
        raise TemplateError(
            f"random_int(a, b) needs a <= b (here {low} > {high})", arguments[0].position
        )
    span = high - low + 1
    # Bounds of one sign and as many characters: every value in between has as many.
    width = len(str(low)) if len(str(low)) == len(str(high)) and (low >= 0 or high < 0) else None
    if span <= _FLOAT_EXACT_SPAN:  # one float draw: faster than randrange, uniform enough
        draw = random.random

        def number(user: UserState) -> bytes:
            return b"%d" % (low + int(draw() * span))

    else:
        randrange, stop = random.randrange, high + 1

        def number(user: UserState) -> bytes:
            return b"%d" % randrange(low, stop)

    return Placeholder(lambda user: number(user).decode(), number, width=width)


def _choice(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    if not arguments:
        raise TemplateError(
            f'choice() takes 1 to {MAX_CHOICES} values, e.g. choice("a", "b")', closing
        )
    options = tuple(argument.value for argument in arguments)
    pick = random.choice
    return Placeholder(lambda user: pick(options), options=options)


def _uuid(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    _no_arguments(name, arguments)
    uuid = _batched(_uuid4_batch)
    return Placeholder(lambda user: uuid(user).decode(), uuid, width=36)


def _batched(make_batch: Callable[[], list[bytes]]) -> Piece:
    """A placeholder's values handed out one per call, made a batch at a time (for values a
    batch of which costs far less to make than as many one by one). Each placeholder has
    its own: a shard's compiled requests are its own, used by one event loop, one thread."""
    values: list[bytes] = []

    def piece(user: UserState) -> bytes:
        if not values:
            values.extend(make_batch())
        return values.pop()

    return piece


_BATCH = 256  # values made at a time


def _uuid4_batch() -> list[bytes]:
    """Random (version 4) UUIDs: unique, not secret, so from ``random`` rather than
    ``os.urandom`` (a system call). Made a batch at a time in a few dozen operations on the
    whole batch (one per digit's place): a third of the cost of formatting each, the largest
    part of a templated request's cost before (bench figure o)."""
    bits = (random.getrandbits(128 * _BATCH) & _UUID_KEEP) | _UUID_SET
    digits = bits.to_bytes(16 * _BATCH, "big").hex().encode()
    text = bytearray(b"-" * (37 * _BATCH))  # 36 characters and a newline each
    for digit, place in enumerate(_UUID_DIGIT_PLACES):
        text[place::37] = digits[digit::32]
    text[36::37] = b"\n" * _BATCH
    return bytes(text).split(b"\n")[:-1]


# RFC 9562: version 4 in the high half of byte 6, the variant (binary 10) at the top of byte 8.
_UUID_KEEP = int.from_bytes(bytes.fromhex("ffffffffffff0fff3fffffffffffffff") * _BATCH, "big")
_UUID_SET = int.from_bytes(bytes.fromhex("00000000000040008000000000000000") * _BATCH, "big")
# Where each of a UUID's 32 hex digits stands among its 36 characters (8-4-4-4-12).
_UUID_DIGIT_PLACES = tuple(
    digit + (digit >= 8) + (digit >= 12) + (digit >= 16) + (digit >= 20) for digit in range(32)
)


def _seq(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    _no_arguments(name, arguments)
    return Placeholder(lambda user: _next_in_sequence(user).decode(), _next_in_sequence)


def _next_in_sequence(user: UserState) -> bytes:
    user.counter += 1
    return b"%d" % user.counter


def _now_iso(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    _no_arguments(name, arguments)
    return Placeholder(_utc_now_iso, lambda user: _utc_now_iso(user).encode(), width=24)


def _utc_now_iso(user: UserState) -> str:
    now = time.time()
    seconds = int(now)
    milliseconds = int((now - seconds) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{milliseconds:03d}Z"


def _random_string(name: _Token, arguments: list[_Token], closing: int) -> Placeholder:
    if len(arguments) != 1:
        raise TemplateError(
            f"random_string(n) takes one integer, 1 to {MAX_RANDOM_STRING_CHARS}", closing
        )
    length = _integer(name, arguments[0], 1, MAX_RANDOM_STRING_CHARS)
    choices, alphabet = random.choices, _RANDOM_STRING_ALPHABET
    return Placeholder(
        lambda user: "".join(choices(alphabet, k=length)),
        lambda user: "".join(choices(alphabet, k=length)).encode(),
        width=length,
    )


_FUNCTION_PARSERS: dict[str, Callable[[_Token, list[_Token], int], Placeholder]] = {
    "random_int": _random_int,
    "choice": _choice,
    "uuid": _uuid,
    "seq": _seq,
    "now_iso": _now_iso,
    "random_string": _random_string,
}


# --- templates ---------------------------------------------------------------------------------


class Template:
    """A parsed template: ``literals[0] + p0 + literals[1] + p1 + ... + literals[-1]``, where
    each ``p`` is a placeholder rendered per request (constants are folded into the literals).
    ``constant``: nothing to render (the text is ``literals[0]``)."""

    __slots__ = ("literals", "placeholders")

    def __init__(self, literals: tuple[str, ...], placeholders: tuple[Placeholder, ...]):
        self.literals = literals
        self.placeholders = placeholders

    @property
    def constant(self) -> bool:
        return not self.placeholders

    @property
    def variables(self) -> frozenset[str]:
        """Names a flow's earlier step must extract."""
        return frozenset(p.variable for p in self.placeholders if p.variable is not None)

    @property
    def columns(self) -> frozenset[str]:
        """Columns of the target's data feed the template reads."""
        return frozenset(p.column for p in self.placeholders if p.column is not None)

    def bind(self, columns: Sequence[str]) -> Template:
        """This template reading ``feed.<column>`` at its position in ``columns`` (the
        ``FeedPlan``'s); ValueError naming a column the feed lacks."""
        placeholders = []
        for placeholder in self.placeholders:
            if placeholder.column is not None:
                if placeholder.column not in columns:
                    raise ValueError(_missing_column(placeholder.column, columns))
                index = list(columns).index(placeholder.column)
                placeholder = Placeholder(_column_renderer(index), column=placeholder.column)
            placeholders.append(placeholder)
        return Template(self.literals, tuple(placeholders))

    def render(self, user: UserState) -> str:
        literals = self.literals
        if not self.placeholders:
            return literals[0]
        pieces = [literals[0]]
        for placeholder, literal in zip(self.placeholders, literals[1:], strict=True):
            pieces.append(placeholder.render(user))
            pieces.append(literal)
        return "".join(pieces)


def _missing_column(column: str, columns: Sequence[str]) -> str:
    if not columns:
        return f"feed.{column}: the target has no data feed"
    return f"feed.{column}: the target's data feed has no such column (it has {', '.join(columns)})"


def parse_template(text: str, *, columns: Sequence[str] | None = None) -> Template:
    """``text`` parsed; TemplateError (with the character it is at) if it is not a valid
    template. With ``columns`` (a feed's), ``feed.<column>`` is bound to its position and a
    column not among them is an error too."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"a template is at most {MAX_TEMPLATE_CHARS} characters", MAX_TEMPLATE_CHARS
        )
    literals: list[str] = []
    placeholders: list[Placeholder] = []
    pending, position = [], 0  # the literal being built, where the next one starts
    while True:
        opening = text.find("{{", position)
        if opening < 0:
            pending.append(text[position:])
            break
        pending.append(text[position:opening])
        parsed, position = _parse_placeholder(text, opening)
        if parsed.constant is not None:
            pending.append(parsed.constant)
            continue
        assert parsed.placeholder is not None
        if len(placeholders) == MAX_PLACEHOLDERS:
            raise TemplateError(f"at most {MAX_PLACEHOLDERS} placeholders in a field", opening)
        placeholder = parsed.placeholder
        if (
            placeholder.column is not None
            and columns is not None
            and placeholder.column not in columns
        ):
            raise TemplateError(_missing_column(placeholder.column, columns), opening)
        literals.append("".join(pending))
        placeholders.append(placeholder)
        pending = []
    literals.append("".join(pending))
    template = Template(tuple(literals), tuple(placeholders))
    return template if columns is None else template.bind(columns)


def origin_placeholder_position(url: str) -> int | None:
    """Where a ``{{`` stands in an absolute URL's scheme or host (or port, or credentials),
    if one does: a template there could send load off the allow-list, so it is refused
    (when saved, and again here at compile time). None for a path or a clean URL."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    authority_start = scheme_end + 3
    ends = [url.find(char, authority_start) for char in "/?#"]
    authority_end = min((end for end in ends if end >= 0), default=len(url))
    position = url.find("{{", 0, authority_end)
    return position if position >= 0 else None
