"""An endpoint whose path, headers or body hold placeholders, compiled once into request bytes.

``compile_request`` turns an endpoint into the ordinary ``PreparedRequest`` when nothing in
it is templated (the fast path stays exactly as fast), else into a ``TemplatedRequest``:
the request is laid out once by ``http.prepare`` with markers where the values go, its fixed
bytes are encoded once, and per request only the rendered values are encoded (each for where
it stands: path, query, header or body) and dropped into one bytes format. The language
itself (parsing, functions, ``Template``) is in ``templating``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .http import (
    _NONZERO_IDS,
    _SPAN_ID_MASK,
    TRACEPARENT,
    PreparedRequest,
    encode_path,
    encode_query,
    prepare,
)
from .plan import EndpointPlan
from .templating import Piece, Placeholder, Template, origin_placeholder_position, parse_template
from .userstate import UserState

_ORIGIN_REFUSED = (
    "A placeholder cannot be in the URL's scheme or host, only in its path and query (load "
    "goes only where the allow-list says)."
)
_LENGTH_METHODS = frozenset({"POST", "PUT", "PATCH"})  # as ``http.prepare``: always a length
# Characters HTTP does not allow in a header value (RFC 9110): every control but the tab.
_HEADER_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])


@dataclass(frozen=True, slots=True)
class _Slot:
    """A placeholder's place in a request: its value for a user (``piece``), encoded for
    where it stands, and the length of every value when they all have one (``width``)."""

    piece: Piece
    width: int | None = None


@dataclass(frozen=True, slots=True)
class TemplatedRequest:
    """An endpoint's request with placeholders: the fixed bytes encoded once, the placeholders'
    values encoded per request (``render(user)``: the whole request for that user).

    ``prepared`` is the request as ``http.prepare`` made it with the placeholders left empty:
    its pool key, ``is_head``, ``body_limit`` and ``keep_header_names`` are this request's;
    its ``raw`` is empty (never send it: send ``render(user)``)."""

    prepared: PreparedRequest
    # The head without its Content-Length and traceparent: head_literals[0] + value 0 +
    # head_literals[1] + ..., and the body the same way.
    head_literals: tuple[bytes, ...]
    head_slots: tuple[_Slot, ...]
    body_literals: tuple[bytes, ...]
    body_slots: tuple[_Slot, ...]
    always_length: bool  # a POST, PUT or PATCH says Content-Length: 0 too
    traceparent: bool
    render: Callable[[UserState], bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.traceparent or self.fixed_body_length() is None:
            render = _length_renderer(self)
        else:  # every value in its place, the body's length written in once
            pieces = tuple(slot.piece for slot in self.head_slots + self.body_slots)
            render = _renderer(self.request_format(), pieces)
        object.__setattr__(self, "render", render)

    def request_format(self) -> bytes:
        """The request as one bytes format of its values in order: the head's, the body's
        length (``%d``) unless it is fixed, the traceparent's ids, the body's."""
        length = b""
        fixed_length = self.fixed_body_length()
        if fixed_length is None:
            length = b"Content-Length: %d\r\n"
        elif fixed_length or self.always_length:
            length = b"Content-Length: %d\r\n" % fixed_length
        trace = b"%s: 00-%%032x-%%016x-01\r\n" % _TRACEPARENT_NAME if self.traceparent else b""
        head, body = _bytes_format(self.head_literals), _bytes_format(self.body_literals)
        return head + length + trace + b"\r\n" + body

    def fixed_body_length(self) -> int | None:
        """The body's length, the same for every request; None if its values change it."""
        widths = [slot.width for slot in self.body_slots]
        if None in widths:
            return None
        return sum(map(len, self.body_literals)) + sum(widths)  # type: ignore[arg-type]

    def trace_id(self, raw: bytes) -> str:
        """The trace id in the bytes ``render`` made (for a sampled error or request)."""
        assert self.traceparent, "compiled with traceparent=True"
        start = raw.index(_TRACEPARENT_LINE) + len(_TRACEPARENT_LINE)
        return raw[start : start + 32].decode()


def _renderer(request_format: bytes, pieces: tuple[Piece, ...]) -> Callable[[UserState], bytes]:
    """``request_format`` filled with the pieces' values for a user, in order. Python calls
    are what a render costs, so the usual counts of values get a function that calls each
    piece directly (a loop or a comprehension costs about as much again as cheap values)."""
    if len(pieces) == 1:
        (first,) = pieces
        return lambda user: request_format % (first(user),)
    if len(pieces) == 2:
        first, second = pieces
        return lambda user: request_format % (first(user), second(user))
    if len(pieces) == 3:
        first, second, third = pieces
        return lambda user: request_format % (first(user), second(user), third(user))
    if len(pieces) == 4:
        first, second, third, fourth = pieces
        return lambda user: request_format % (first(user), second(user), third(user), fourth(user))

    def render(user: UserState) -> bytes:
        values = []
        for piece in pieces:
            values.append(piece(user))
        return request_format % tuple(values)

    return render


def _length_renderer(request: TemplatedRequest) -> Callable[[UserState], bytes]:
    """The request for a user when its values change its body's length, or a fresh
    traceparent goes in: the head's values (in the order they appear), the body's length,
    the traceparent's ids, the body's values, in one bytes format."""
    with_length = without_length = request.request_format()
    length_varies = request.fixed_body_length() is None  # else written in the format
    if length_varies:
        without_length = with_length.replace(b"Content-Length: %d\r\n", b"", 1)
    head_pieces = tuple(slot.piece for slot in request.head_slots)
    body_pieces = tuple(slot.piece for slot in request.body_slots)
    body_fixed_bytes = sum(map(len, request.body_literals))
    always_length, traceparent = request.always_length, request.traceparent

    def render(user: UserState) -> bytes:
        # Plain loops: cheaper than comprehensions for the few pieces a request has.
        values: list[bytes | int] = []
        append = values.append
        for piece in head_pieces:
            append(piece(user))
        body_values = []
        body_bytes = body_fixed_bytes
        for piece in body_pieces:
            value = piece(user)
            body_values.append(value)
            body_bytes += len(value)
        request_format = without_length
        if length_varies and (body_bytes or always_length):
            values.append(body_bytes)
            request_format = with_length
        if traceparent:
            ids = random.getrandbits(192) | _NONZERO_IDS
            values.append(ids >> 64)
            values.append(ids & _SPAN_ID_MASK)
        values += body_values
        return request_format % tuple(values)

    return render


_TRACEPARENT_NAME = TRACEPARENT.encode()
_TRACEPARENT_LINE = b"\r\n" + _TRACEPARENT_NAME + b": 00-"


def _bytes_format(literals: tuple[bytes, ...]) -> bytes:
    """``literals`` joined by ``%s``, their own ``%`` escaped: a format for the values
    between them."""
    return b"%s".join(literal.replace(b"%", b"%%") for literal in literals)


def _header_bytes(value: str) -> bytes:
    """A rendered header value as HTTP allows it: controls (CR, LF...) dropped, so a value
    can never end the header or start another; Latin-1, or UTF-8 for wider characters."""
    value = value.translate(_HEADER_CONTROLS)
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


_ENCODERS: dict[str, Callable[[str], bytes]] = {
    "path": lambda value: encode_path(value).encode("ascii"),
    "query": lambda value: encode_query(value).encode("ascii"),
    "header": _header_bytes,
    "body": str.encode,
}


def _slot(placeholder: Placeholder, field: str) -> _Slot:
    """The placeholder's values encoded for ``field`` (path, query, header or body); a
    choice's values are encoded once, here."""
    if placeholder.options is not None:
        encode, draw = _ENCODERS[field], random.random
        options = tuple(encode(option) for option in placeholder.options)
        count = len(options)
        widths = {len(option) for option in options}
        return _Slot(
            lambda user: options[int(draw() * count)],
            widths.pop() if len(widths) == 1 else None,
        )
    if placeholder.safe_bytes is not None:  # nothing to encode, nothing to drop
        return _Slot(placeholder.safe_bytes, placeholder.width)
    render, encode = placeholder.render, _ENCODERS[field]
    return _Slot(lambda user: encode(render(user)))


def compile_request(
    endpoint: EndpointPlan,
    *,
    default_headers: Mapping[str, str] | None = None,
    traceparent: bool = False,
    columns: Sequence[str] = (),
) -> PreparedRequest | TemplatedRequest:
    """The endpoint's request, compiled once per shard: the ordinary ``PreparedRequest`` when
    nothing in it is templated, else a ``TemplatedRequest``. ValueError (a TemplateError for a
    bad template) if it cannot be sent, as from ``http.prepare``; ``columns`` are the data
    feed's (``FeedPlan.columns``), empty without one.

    The session's ``default_headers`` are not templates. A placeholder may be in the URL's
    path and query, never in its scheme or host (the allow-list checked those)."""
    if origin_placeholder_position(endpoint.url) is not None:
        raise ValueError(_ORIGIN_REFUSED)
    url = parse_template(endpoint.url, columns=columns)
    headers = {
        name: parse_template(value, columns=columns) for name, value in endpoint.headers.items()
    }
    body = parse_template(endpoint.body, columns=columns)
    if url.constant and body.constant and all(t.constant for t in headers.values()):
        return prepare(
            endpoint.method,
            url.literals[0],
            {name: template.literals[0] for name, template in headers.items()},
            body.literals[0],
            default_headers=default_headers,
            traceparent=traceparent,
        )
    texts = [endpoint.url, endpoint.body, *endpoint.headers.values(),
             *(default_headers or {}).values()]  # fmt: skip
    marker = _marker(texts)
    placeholders: list[Placeholder] = []

    def skeleton(template: Template) -> str:
        """The template's text with each placeholder replaced by a numbered marker."""
        pieces = [template.literals[0]]
        for placeholder, literal in zip(template.placeholders, template.literals[1:], strict=True):
            pieces.append(f"{marker}{len(placeholders)}{marker}")
            placeholders.append(placeholder)
            pieces.append(literal)
        return "".join(pieces)

    skeleton_url = skeleton(url)
    origin = urlsplit(skeleton_url)
    if marker in origin.scheme or marker in origin.netloc:
        raise ValueError(_ORIGIN_REFUSED)
    request = prepare(
        endpoint.method,
        skeleton_url,
        {name: skeleton(template) for name, template in headers.items()},
        "",
        default_headers=default_headers,
        traceparent=traceparent,  # drops an endpoint's own traceparent: ours is fresh
    )
    head = request.raw[:-2]  # without the blank line that ends the head (the body is empty)
    always_length = request.raw.startswith(tuple(m.encode() + b" " for m in _LENGTH_METHODS))
    if always_length:
        head = head.removesuffix(b"Content-Length: 0\r\n")
    head_literals, head_slots = _split_head(head, marker, placeholders)
    return TemplatedRequest(
        replace(request, raw=b""),
        head_literals,
        head_slots,
        tuple(literal.encode() for literal in body.literals),
        tuple(_slot(placeholder, "body") for placeholder in body.placeholders),
        always_length,
        traceparent,
    )


def _marker(texts: Sequence[str]) -> str:
    """A word none of ``texts`` contains: it stands for the placeholders while ``http.prepare``
    lays the request out (letters only, so no encoding changes it)."""
    while True:
        marker = f"qz{random.getrandbits(48):012x}zq"
        marker = marker.translate(str.maketrans("0123456789", "ghijklmnop"))
        if not any(marker in text for text in texts):
            return marker


def _split_head(
    head: bytes, marker: str, placeholders: Sequence[Placeholder]
) -> tuple[tuple[bytes, ...], tuple[_Slot, ...]]:
    """The head's fixed bytes between the markers, and each marker's values, encoded for
    where it stands: the request line's path or query, or a header."""
    target_end = head.index(b"\r\n")
    query_start = head.find(b"?", 0, target_end)
    pattern = re.compile(re.escape(marker.encode()) + rb"(\d+)" + re.escape(marker.encode()))
    literals, slots, position = [], [], 0
    for match in pattern.finditer(head):
        literals.append(head[position : match.start()])
        if match.start() > target_end:
            field = "header"
        elif 0 <= query_start < match.start():
            field = "query"
        else:
            field = "path"
        slots.append(_slot(placeholders[int(match.group(1))], field))
        position = match.end()
    literals.append(head[position:])
    return tuple(literals), tuple(slots)
