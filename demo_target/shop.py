"""The demo target's login and cart: something for a multi-step flow to do.

A user logs in (``POST /login``), gets a session cookie and a CSRF-like token in the answer,
and must send both back to add to its cart (``POST /cart/items``): a load test can only pass
by extracting the token from one answer and using it in the next request, and by keeping
each virtual user's cookie apart, which is what real sites ask of their users.

Sessions live in this process's memory, bounded (the oldest are dropped first) so that a
long load test cannot exhaust it, and guarded by one lock (waitress answers from many
threads). Each cart is bounded too.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from flask import Blueprint, Flask, jsonify, request

SESSION_COOKIE = "demo_session"
CSRF_HEADER = "X-CSRF-Token"
DEMO_PASSWORD = "demo"
MAX_SESSIONS = 100_000  # about 200 bytes each with an empty cart: ~20 MB at most
MAX_CART_LINES = 100  # distinct products in one cart
USERNAME_CHARS_MAX = 100
PRODUCT_ID_MAX = 1_000_000_000
QUANTITY_MAX = 1000


@dataclass
class ShopSession:
    """One logged-in user: its token and its cart (product id -> quantity)."""

    username: str
    csrf_token: str
    cart: dict[int, int] = field(default_factory=dict)


class CartFull(Exception):
    """The cart already holds MAX_CART_LINES distinct products."""


class SessionStore:
    """Logged-in sessions by cookie value, the oldest dropped beyond ``max_sessions``."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, ShopSession] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def create(self, username: str) -> tuple[str, ShopSession]:
        """A new session for ``username``: its cookie value and the session."""
        session_id = secrets.token_urlsafe(24)
        session = ShopSession(username=username, csrf_token=secrets.token_urlsafe(24))
        with self._lock:
            self._sessions[session_id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> ShopSession | None:
        if not session_id:
            return None
        with self._lock:
            return self._sessions.get(session_id)

    def add_to_cart(self, session: ShopSession, product_id: int, quantity: int) -> int:
        """Add ``quantity`` of ``product_id``; returns how many items the cart holds."""
        with self._lock:
            if product_id not in session.cart and len(session.cart) >= MAX_CART_LINES:
                raise CartFull
            session.cart[product_id] = session.cart.get(product_id, 0) + quantity
            return sum(session.cart.values())

    def cart_of(self, session: ShopSession) -> list[dict[str, int]]:
        with self._lock:
            return [{"product_id": p, "quantity": q} for p, q in session.cart.items()]


BODY_BYTES_MAX = 10_000  # a login or a cart line is a few dozen bytes


class NotLoggedIn(Exception):
    """The request has no session cookie, or one this process does not know (any more)."""


class BadBody(ValueError):
    """A request body the client got wrong: answered with a 400 saying what is wrong."""


def _error(status: int, error: str, message: str):
    return jsonify(error=error, message=message), status


def _json_object(example: str) -> dict:
    """The request's JSON object body. Parsed here rather than by Flask so that a huge or
    deeply nested body is a 400, never a 500 (``json`` raises RecursionError on depth)."""
    if (request.content_length or 0) > BODY_BYTES_MAX:
        raise BadBody(f"The body is over {BODY_BYTES_MAX:,} bytes; send {example}.")
    raw = request.stream.read(BODY_BYTES_MAX + 1)  # a chunked body has no length to check
    try:
        body = json.loads(raw) if len(raw) <= BODY_BYTES_MAX else None
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise BadBody(f"Send a JSON object: {example}.")
    return body


def _bounded_int(body: dict, name: str, highest: int) -> int:
    """The body's ``name``, an integer in 1..highest."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        given = f"a {_JSON_TYPES.get(type(value), 'value')}" if name in body else "nothing"
        raise BadBody(f"{name} must be an integer, got {given}.")
    if not 1 <= value <= highest:
        raise BadBody(f"{name} must be between 1 and {highest:,}, got {value}.")
    return value


_JSON_TYPES = {str: "string", float: "decimal number", bool: "boolean", list: "list",
               dict: "object", type(None): "null"}  # fmt: skip
LOGIN_EXAMPLE = '{"username": "alice", "password": "demo"}'
CART_ITEM_EXAMPLE = '{"product_id": 12, "quantity": 1}'


def shop_blueprint(store: SessionStore) -> Blueprint:
    """The login and cart routes, on ``store``."""
    shop = Blueprint("shop", __name__)

    @shop.errorhandler(BadBody)
    def bad_body(exc: BadBody):
        return _error(400, "bad_request", str(exc))

    @shop.errorhandler(NotLoggedIn)
    def not_logged_in(_exc: NotLoggedIn):
        return _error(
            403,
            "not_logged_in",
            f"No valid {SESSION_COOKIE} cookie: log in first "
            "with POST /login (sessions are kept in memory, the oldest dropped).",
        )

    def logged_in() -> ShopSession:
        """The request's session (a 403 without one)."""
        session = store.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise NotLoggedIn
        return session

    @shop.post("/login")
    def login():
        """Log in (JSON username, password "demo"): a session cookie and a csrf_token."""
        body = _json_object(LOGIN_EXAMPLE)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not 1 <= len(username) <= USERNAME_CHARS_MAX:
            raise BadBody(f"username must be a string of 1-{USERNAME_CHARS_MAX} characters.")
        if not isinstance(password, str):
            raise BadBody("password must be a string.")
        if not hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode()):
            return _error(
                401, "unauthorized", f"Wrong password: every demo user's is {DEMO_PASSWORD!r}."
            )
        session_id, session = store.create(username)
        response = jsonify(csrf_token=session.csrf_token, user=username)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, path="/")
        return response

    @shop.post("/cart/items")
    def add_cart_item():
        """Add to the cart (JSON product_id, quantity): needs the cookie and X-CSRF-Token."""
        session = logged_in()
        token = request.headers.get(CSRF_HEADER, "")
        if not token:
            return _error(
                403,
                "csrf_missing",
                f"No {CSRF_HEADER} header: send the csrf_token that POST /login answered.",
            )
        if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            return _error(
                403,
                "csrf_mismatch",
                f"The {CSRF_HEADER} header does not match this session's csrf_token.",
            )
        body = _json_object(CART_ITEM_EXAMPLE)
        product_id = _bounded_int(body, "product_id", PRODUCT_ID_MAX)
        quantity = _bounded_int(body, "quantity", QUANTITY_MAX)
        try:
            count = store.add_to_cart(session, product_id, quantity)
        except CartFull:
            return _error(
                409, "cart_full", f"The cart already holds {MAX_CART_LINES} different products."
            )
        return jsonify(count=count, product_id=product_id, quantity=quantity), 201

    @shop.get("/cart")
    def cart():
        """The session's cart (needs the session cookie): its items and their count."""
        items = store.cart_of(logged_in())
        return jsonify(items=items, count=sum(item["quantity"] for item in items))

    return shop


def install_shop(app: Flask, max_sessions: int = MAX_SESSIONS) -> SessionStore:
    """Add the login and cart routes to ``app``; returns their session store."""
    store = SessionStore(max_sessions)
    app.register_blueprint(shop_blueprint(store))
    return store
