"""The demo target's login and cart, over real HTTP to the real app on waitress: a session
cookie and a CSRF-like token that a multi-step flow must extract and send back, each user's
cart its own, hostile bodies refused with a clear 400, and the session store bounded.

Plain pytest, no Django, like ``test_demo_target.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import waitress

from demo_target.app import create_app, fill_database
from demo_target.shop import MAX_CART_LINES, SessionStore

TEST_SCALE = 0.02


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("shop") / "demo.sqlite3")
    fill_database(path, scale=TEST_SCALE)
    return path


def serve(app) -> Iterator[str]:
    """Serve ``app`` on waitress on a free port of 127.0.0.1; yields its base URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(db_path: str) -> Iterator[str]:
    yield from serve(create_app(db_path, scale=TEST_SCALE))


def log_in(base_url: str, username: str = "user1") -> tuple[requests.Session, str]:
    """A browser-like client (it keeps its cookies) logged in as ``username``."""
    client = requests.Session()
    answer = client.post(f"{base_url}/login", json={"username": username, "password": "demo"})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrf_token"]


def add(client, base_url: str, token: str | None, body=None, **kwargs) -> requests.Response:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    body = {"product_id": 7, "quantity": 1} if body is None else body
    return client.post(f"{base_url}/cart/items", json=body, headers=headers, timeout=5, **kwargs)


def test_login_answers_a_token_and_sets_an_http_only_session_cookie(base_url):
    answer = requests.post(f"{base_url}/login", json={"username": "alice", "password": "demo"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == "alice"
    assert len(body["csrf_token"]) >= 20
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("demo_session=")
    assert "HttpOnly" in cookie and "Path=/" in cookie
    again = requests.post(f"{base_url}/login", json={"username": "alice", "password": "demo"})
    assert again.json()["csrf_token"] != body["csrf_token"]  # a new session each time
    assert again.cookies["demo_session"] != answer.cookies["demo_session"]


def test_a_wrong_password_is_refused_with_401(base_url):
    answer = requests.post(f"{base_url}/login", json={"username": "alice", "password": "x"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert "demo" in answer.json()["message"]
    assert "Set-Cookie" not in answer.headers


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ("not json", "Send a JSON object"),
        (json.dumps(["alice", "demo"]), "Send a JSON object"),
        (json.dumps({"password": "demo"}), "username must be a string"),
        (json.dumps({"username": "", "password": "demo"}), "username must be a string"),
        (json.dumps({"username": "a" * 101, "password": "demo"}), "1-100 characters"),
        (json.dumps({"username": 12, "password": "demo"}), "username must be a string"),
        (json.dumps({"username": "alice", "password": None}), "password must be a string"),
        ("[" * 5000 + "]" * 5000, "Send a JSON object"),  # too deep for json: still a 400
        (json.dumps({"username": "x" * 2_000_000}), "over 10,000 bytes"),
    ],
)
def test_bad_login_bodies_get_a_400_saying_what_is_wrong(base_url, data, says):
    answer = requests.post(f"{base_url}/login", data=data,
                           headers={"Content-Type": "application/json"}, timeout=10)  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "bad_request"
    assert says in answer.json()["message"]


def test_a_unicode_username_logs_in(base_url):
    client, _ = log_in(base_url, "Zoë 🛒")
    assert client.cookies["demo_session"]


def test_adding_to_the_cart_needs_the_cookie_and_the_sessions_token(base_url):
    client, token = log_in(base_url)
    _, other_token = log_in(base_url, "user2")

    no_cookie = add(requests, base_url, token)
    assert no_cookie.status_code == 403
    assert no_cookie.json()["error"] == "not_logged_in"
    assert "demo_session" in no_cookie.json()["message"]

    forged = add(requests, base_url, token, cookies={"demo_session": "forged"})
    assert (forged.status_code, forged.json()["error"]) == (403, "not_logged_in")

    missing = add(client, base_url, None)
    assert (missing.status_code, missing.json()["error"]) == (403, "csrf_missing")
    assert "X-CSRF-Token" in missing.json()["message"]

    for wrong in (other_token, token + "x", "é"):
        answer = add(client, base_url, wrong)
        assert (answer.status_code, answer.json()["error"]) == (403, "csrf_mismatch"), wrong

    ok = add(client, base_url, token, {"product_id": 4999, "quantity": 2})
    assert ok.status_code == 201
    assert ok.json() == {"count": 2, "product_id": 4999, "quantity": 2}
    assert add(client, base_url, token, {"product_id": 12, "quantity": 1}).json()["count"] == 3
    assert add(client, base_url, token, {"product_id": 4999, "quantity": 1}).json()["count"] == 4


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"quantity": 1}, "product_id must be an integer, got nothing"),
        ({"product_id": "7", "quantity": 1}, "product_id must be an integer, got a string"),
        ({"product_id": True, "quantity": 1}, "got a boolean"),
        ({"product_id": 7.5, "quantity": 1}, "got a decimal number"),
        ({"product_id": 0, "quantity": 1}, "between 1 and 1,000,000,000, got 0"),
        ({"product_id": -3, "quantity": 1}, "got -3"),
        ({"product_id": 10**30, "quantity": 1}, "product_id must be between"),
        ({"product_id": 7, "quantity": 0}, "quantity must be between 1 and 1,000"),
        ({"product_id": 7, "quantity": None}, "quantity must be an integer, got a null"),
        ([7, 1], "Send a JSON object"),
    ],
)
def test_bad_cart_items_get_a_400_and_change_nothing(base_url, body, says):
    client, token = log_in(base_url)
    answer = add(client, base_url, token, body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["message"]
    assert client.get(f"{base_url}/cart").json() == {"items": [], "count": 0}


def test_the_cart_needs_the_cookie_and_is_each_users_own(base_url):
    alice, alice_token = log_in(base_url, "alice")
    bob, bob_token = log_in(base_url, "bob")
    add(alice, base_url, alice_token, {"product_id": 1, "quantity": 3})
    add(bob, base_url, bob_token, {"product_id": 2, "quantity": 1})

    assert alice.get(f"{base_url}/cart").json() == {
        "items": [{"product_id": 1, "quantity": 3}],
        "count": 3,
    }
    assert bob.get(f"{base_url}/cart").json()["items"] == [{"product_id": 2, "quantity": 1}]
    anonymous = requests.get(f"{base_url}/cart")
    assert (anonymous.status_code, anonymous.json()["error"]) == (403, "not_logged_in")


def test_a_cart_holds_a_bounded_number_of_products(base_url):
    client, token = log_in(base_url)
    for product_id in range(1, MAX_CART_LINES + 1):
        assert add(client, base_url, token, {"product_id": product_id, "quantity": 1}).ok
    full = add(client, base_url, token, {"product_id": MAX_CART_LINES + 1, "quantity": 1})
    assert (full.status_code, full.json()["error"]) == (409, "cart_full")
    more_of_one = add(client, base_url, token, {"product_id": 1, "quantity": 1})
    assert more_of_one.json()["count"] == MAX_CART_LINES + 1  # more of a product it holds


def test_the_oldest_sessions_are_dropped_beyond_the_limit(db_path):
    for url in serve(create_app(db_path, scale=TEST_SCALE, max_sessions=3)):
        oldest, oldest_token = log_in(url, "first")
        kept = [log_in(url, f"user{n}") for n in range(3)]
        forgotten = add(oldest, url, oldest_token)
        assert (forgotten.status_code, forgotten.json()["error"]) == (403, "not_logged_in")
        for client, token in kept:
            assert add(client, url, token).status_code == 201


def test_concurrent_users_count_exactly(base_url):
    users = [log_in(base_url, f"load{n}") for n in range(8)]

    def shop(user) -> int:
        client, token = user
        for product_id in range(1, 26):
            assert add(client, base_url, token, {"product_id": product_id, "quantity": 2}).ok
        return client.get(f"{base_url}/cart").json()["count"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(shop, users))
    assert counts == [50] * 8


def test_the_store_refuses_a_nonsense_limit():
    with pytest.raises(ValueError, match="at least 1"):
        SessionStore(0)


def test_the_index_lists_the_shop_routes(base_url):
    endpoints = requests.get(f"{base_url}/").json()["endpoints"]
    assert {"/login", "/cart/items", "/cart"} <= set(endpoints)
    assert "X-CSRF-Token" in endpoints["/cart/items"]


def test_the_counts_per_path_include_the_shop(tmp_path: Path, db_path):
    for url in serve(create_app(db_path, scale=TEST_SCALE)):
        client, token = log_in(url)
        add(client, url, token)
        client.get(f"{url}/cart")
        paths = requests.get(f"{url}/received").json()["paths"]
        assert paths == {"/login": 1, "/cart/items": 1, "/cart": 1}


def test_a_chunked_body_over_the_limit_is_refused(base_url):
    """No Content-Length from the client: waitress counts the chunks, the app reads at most
    its limit either way."""

    def chunks():
        yield b'{"username": "'
        for _ in range(200):
            yield b"x" * 10_000
        yield b'", "password": "demo"}'

    answer = requests.post(f"{base_url}/login", data=chunks(), timeout=10,
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert (answer.status_code, answer.json()["error"]) == (400, "bad_request")
    message = answer.json()["message"]
    assert "over 10,000 bytes" in message or "Send a JSON object" in message
