"""Tests for the demo target app, the slow/failing Flask app that new users point load at.

Plain pytest, no Django. Endpoints are checked with Flask's test client against a small
(scale 0.05) database; one test starts the real waitress server as a subprocess.
"""

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from demo_target import app as demo_app
from demo_target.app import create_app, fill_database, row_counts

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = REPO_ROOT / "apps" / "sessions" / "data" / "default_endpoints.json"
TEST_SCALE = 0.05


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One small database filled once for the whole module; the app only reads it."""
    path = str(tmp_path_factory.mktemp("demo") / "demo.sqlite3")
    fill_database(path, scale=TEST_SCALE)
    return path


@pytest.fixture
def db(db_path: str):
    conn = sqlite3.connect(db_path)
    yield conn
    conn.close()


@pytest.fixture
def client(db_path: str):
    return create_app(db_path, scale=TEST_SCALE, seed=1234).test_client()


def _count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# --- Filling the database ---------------------------------------------------------------------


def test_fill_creates_the_scaled_row_counts(db) -> None:
    expected = row_counts(TEST_SCALE)
    assert {table: _count(db, table) for table in expected} == expected
    orders = expected["orders"]
    assert orders <= _count(db, "order_items") <= 5 * orders  # 1-5 items per order.


def test_fill_twice_does_not_add_rows(db_path: str, db) -> None:
    before = _count(db, "order_items")
    fill_database(db_path, scale=TEST_SCALE)
    assert _count(db, "order_items") == before


def test_concurrent_fills_fill_exactly_once(tmp_path: Path, monkeypatch) -> None:
    # Drop the in-process lock so the threads race like separate processes would, leaving
    # SQLite's IMMEDIATE transaction as the only guard.
    monkeypatch.setattr(demo_app, "_FILL_LOCK", contextlib.nullcontext())
    path = str(tmp_path / "nested" / "race.sqlite3")  # Parent folder does not exist yet.
    errors: list[BaseException] = []

    def fill() -> None:
        try:
            fill_database(path, scale=TEST_SCALE)
        except BaseException as exc:  # Reported by the assertion below.
            errors.append(exc)

    threads = [threading.Thread(target=fill) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert _count(conn, "users") == row_counts(TEST_SCALE)["users"]
    assert _count(conn, "demo_meta") == 1
    conn.close()


def test_db_path_defaults_to_env_var(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "from_env.sqlite3"
    monkeypatch.setenv("DEMO_DB_PATH", str(path))
    app = create_app(scale=TEST_SCALE)
    assert app.config["DEMO_DB_PATH"] == str(path)
    assert path.exists()


def test_create_app_rejects_nonsense_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale"):
        create_app(str(tmp_path / "x.sqlite3"), scale=0)


# --- Simple endpoints -------------------------------------------------------------------------


def test_index_describes_every_route(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    endpoints = response.get_json()["endpoints"]
    routes = {r.rule for r in client.application.url_map.iter_rules() if r.endpoint != "static"}
    assert set(endpoints) == routes
    assert "/performance/slow-query/full-scan" in endpoints
    assert all(isinstance(text, str) and text for text in endpoints.values())


def test_health_is_ok(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_received_counts_every_request_per_path_but_its_own(client) -> None:
    before = client.get("/received").get_json()
    client.get("/health")
    client.get("/health")
    client.get("/performance/slow?delay_ms=0")
    client.get("/no/such/page")
    after = client.get("/received").get_json()
    assert after["paths"]["/health"] == before["paths"].get("/health", 0) + 2
    assert after["paths"]["/performance/slow"] == before["paths"].get("/performance/slow", 0) + 1
    assert after["paths"]["/no/such/page"] == before["paths"].get("/no/such/page", 0) + 1
    assert after["total"] == before["total"] + 4
    assert "/received" not in after["paths"]


def test_unknown_route_is_a_json_404(client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


# --- /performance/slow ------------------------------------------------------------------------


def test_slow_sleeps_delay_ms(client) -> None:
    started = time.perf_counter()
    response = client.get("/performance/slow?delay_ms=50")
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    assert response.get_json()["delay_ms"] == 50
    assert elapsed_ms >= 50


def test_slow_default_delay_is_random_between_half_and_two_seconds(client, monkeypatch) -> None:
    slept_s: list[float] = []
    monkeypatch.setattr(demo_app.time, "sleep", slept_s.append)
    delays_ms = [client.get("/performance/slow").get_json()["delay_ms"] for _ in range(30)]
    assert all(500 <= d <= 2000 for d in delays_ms)
    assert len(set(delays_ms)) > 1
    assert slept_s == [d / 1000 for d in delays_ms]


def test_slow_caps_delay_at_30_seconds(client, monkeypatch) -> None:
    slept_s: list[float] = []
    monkeypatch.setattr(demo_app.time, "sleep", slept_s.append)
    response = client.get("/performance/slow?delay_ms=99999")
    assert response.status_code == 200
    assert response.get_json()["delay_ms"] == 30_000
    assert slept_s == [30.0]


@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", ""])
def test_slow_rejects_bad_delay_ms(client, raw: str) -> None:
    response = client.get(f"/performance/slow?delay_ms={raw}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_request"
    assert "delay_ms" in body["message"]


# --- Database endpoints -----------------------------------------------------------------------


def test_n_plus_one_runs_one_query_per_order(client, db, monkeypatch) -> None:
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(demo_app.sqlite3, "connect", traced_connect)
    response = client.get("/performance/n-plus-one")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query_count"] == 51
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 51
    latest_ids = [row[0] for row in db.execute("SELECT id FROM orders ORDER BY id DESC LIMIT 50")]
    assert [order["id"] for order in body["orders"]] == latest_ids
    first = body["orders"][0]
    expected_items = db.execute(
        "SELECT product_id, quantity FROM order_items WHERE order_id = ?", (first["id"],)
    ).fetchall()
    assert [tuple(item) for item in first["items"]] == expected_items


def test_slow_query_returns_the_middle_page_by_line_total(client, db) -> None:
    response = client.get("/performance/slow-query")
    assert response.status_code == 200
    rows = response.get_json()["rows"]
    all_lines = db.execute(
        "SELECT oi.id, p.name, oi.quantity * oi.unit_price_cents"
        " FROM order_items oi JOIN products p ON p.id = oi.product_id"
    ).fetchall()
    all_lines.sort(key=lambda line: (-line[2], line[1], line[0]))
    middle = len(all_lines) // 2
    expected = [list(line) for line in all_lines[middle : middle + 20]]
    assert [[r["id"], r["product"], r["line_cents"]] for r in rows] == expected


def test_full_scan_counts_every_user_and_the_matches(client, db) -> None:
    response = client.get("/performance/slow-query/full-scan?q=SMITH")
    assert response.status_code == 200
    body = response.get_json()
    users = db.execute("SELECT email, name FROM users").fetchall()
    expected_matches = sum(
        "smith" in email.lower() or "smith" in name.lower() for email, name in users
    )
    assert body["scanned_rows"] == len(users) == row_counts(TEST_SCALE)["users"]
    assert body["matched_rows"] == expected_matches > 0
    assert body["q"] == "smith"


def test_full_scan_with_no_match_counts_zero(client) -> None:
    body = client.get("/performance/slow-query/full-scan?q=no-such-user").get_json()
    assert body["matched_rows"] == 0
    assert body["scanned_rows"] == row_counts(TEST_SCALE)["users"]


def test_full_scan_rejects_empty_search(client) -> None:
    response = client.get("/performance/slow-query/full-scan?q=")
    assert response.status_code == 400
    assert "q must be" in response.get_json()["message"]


def test_complex_join_aggregates_every_line_item(client, db) -> None:
    response = client.get("/performance/slow-query/complex-join")
    assert response.status_code == 200
    body = response.get_json()
    groups = body["groups"]
    total_items, total_revenue_cents = db.execute(
        "SELECT COUNT(*), SUM(quantity * unit_price_cents) FROM order_items"
    ).fetchone()
    assert body["item_count"] == sum(g["items"] for g in groups) == total_items
    assert sum(g["revenue_cents"] for g in groups) == total_revenue_cents
    assert (
        body["group_count"] == len(groups) == len({(g["category"], g["country"]) for g in groups})
    )
    revenues = [g["revenue_cents"] for g in groups]
    assert revenues == sorted(revenues, reverse=True)


# --- /performance/error and /performance/cpu --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"),
    [("exception", 500), ("500", 500), ("400", 400), ("404", 404), ("503", 503), ("ok", 200)],
)
def test_error_kind_forces_the_outcome(client, kind: str, status: int) -> None:
    response = client.get(f"/performance/error?kind={kind}")
    assert response.status_code == status
    body = response.get_json()
    assert body is not None  # JSON even for the unhandled exception.
    if status == 200:
        assert body == {"status": "ok"}
    else:
        assert body["error"] and body["message"]
    if kind == "exception":
        assert body["message"].startswith("unhandled RuntimeError")


def test_error_rejects_unknown_kind(client) -> None:
    response = client.get("/performance/error?kind=teapot")
    assert response.status_code == 400
    assert "kind must be one of" in response.get_json()["message"]


def test_error_fails_about_70_percent_mostly_unhandled(client) -> None:
    outcomes = Counter()
    for _ in range(400):
        response = client.get("/performance/error")
        unhandled = response.get_json().get("message", "").startswith("unhandled")
        outcomes["exception" if unhandled else str(response.status_code)] += 1
    error_rate = 1 - outcomes["200"] / 400
    assert 0.6 <= error_rate <= 0.8
    assert set(outcomes) == {"exception", "500", "400", "404", "503", "200"}
    assert outcomes.most_common(1)[0][0] == "exception"


def test_cpu_burns_for_duration_ms(client) -> None:
    started = time.perf_counter()
    response = client.get("/performance/cpu?duration_ms=30")
    assert (time.perf_counter() - started) * 1000 >= 30
    assert response.status_code == 200
    assert response.get_json()["hash_rounds"] > 0


@pytest.mark.parametrize("raw", ["0", "5001", "fast"])
def test_cpu_rejects_bad_duration_ms(client, raw: str) -> None:
    response = client.get(f"/performance/cpu?duration_ms={raw}")
    assert response.status_code == 400
    assert "duration_ms" in response.get_json()["message"]


# --- Default endpoint catalog -----------------------------------------------------------------


# The login + cart routes (demo_target/shop.py): sent only as steps of a flow, so weight 0.
FLOW_STEP_ROUTES = {("POST", "/login"), ("POST", "/cart/items"), ("GET", "/cart")}


def test_catalog_is_valid_and_every_url_is_routed(client) -> None:
    catalog = json.loads(CATALOG_PATH.read_text())
    keys = {"name", "url", "method", "weight", "timeout", "description"}
    optional = {"expected_statuses", "checks", "headers", "body"}
    assert isinstance(catalog, list) and catalog
    assert all(keys <= set(entry) <= keys | optional for entry in catalog)
    names = [entry["name"] for entry in catalog]
    assert len(names) == len(set(names))
    adapter = client.application.url_map.bind("localhost")
    for entry in catalog:
        step = (entry["method"], entry["url"]) in FLOW_STEP_ROUTES
        assert entry["method"] == "GET" or step
        assert isinstance(entry["weight"], float)
        assert entry["weight"] == 0.0 if step else entry["weight"] > 0
        assert isinstance(entry["timeout"], int | float) and entry["timeout"] > 0
        assert entry["description"].strip()
        # Raises NotFound (or MethodNotAllowed) if the app has no such route.
        adapter.match(entry["url"], method=entry["method"])
    urls = {entry["url"] for entry in catalog}
    performance_routes = {
        rule.rule
        for rule in client.application.url_map.iter_rules()
        if rule.rule.startswith("/performance/")
    }
    assert urls == performance_routes | {path for _, path in FLOW_STEP_ROUTES}
    weights = {entry["url"]: entry["weight"] for entry in catalog}
    key_urls = ["/performance/error", "/performance/slow-query/full-scan"]
    key_urls.append("/performance/slow-query/complex-join")
    assert all(weights[url] == 1.0 for url in key_urls)


def test_catalogs_flow_steps_log_in_and_use_the_token(client) -> None:
    """The login + cart endpoints as the catalog ships them, rendered by hand as a flow
    would (user 7, product 12): the token is extracted from the login's answer."""
    steps = {entry["name"]: entry for entry in json.loads(CATALOG_PATH.read_text())}
    login = steps["login"]
    body = login["body"].replace("{{ user_id }}", "7")
    answer = client.post(login["url"], data=body, headers=login["headers"])
    assert answer.status_code == 200 and answer.get_json()["user"] == "user7"
    token = answer.get_json()["csrf_token"]
    add = steps["cart-add"]
    headers = {**add["headers"], "X-CSRF-Token": token}
    assert add["headers"]["X-CSRF-Token"] == "{{ csrf_token }}"
    body = add["body"].replace("{{ random_int(1, 5000) }}", "12")
    answer = client.post(add["url"], data=body, headers=headers)
    assert str(answer.status_code) == add["expected_statuses"]
    view = steps["cart-view"]
    assert view["checks"] == [{"type": "json_path_exists", "path": "$.items"}]
    assert client.get(view["url"]).get_json()["items"] == [{"product_id": 12, "quantity": 1}]


# --- The real server --------------------------------------------------------------------------


@pytest.mark.integration
def test_server_subprocess_answers_health(tmp_path: Path) -> None:
    # --port 0 lets the OS pick a free port (no race); the server prints the one it got.
    log_path = tmp_path / "server.log"
    args = ["--port", "0", "--threads", "2", "--scale", "0.02"]
    command = [sys.executable, "-m", "demo_target", *args, "--db", str(tmp_path / "server.sqlite3")]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        match = None
        while match is None and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())
        assert match is not None, f"server did not start: {log_path.read_text()}"
        response = requests.get(f"http://127.0.0.1:{match.group(1)}/health", timeout=5)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_db_path_follows_data_dir_without_the_env_var(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DEMO_DB_PATH", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "own-data"))
    (tmp_path / "own-data").mkdir()
    app = create_app(scale=TEST_SCALE)
    path = tmp_path / "own-data" / "demo_target.sqlite3"
    assert app.config["DEMO_DB_PATH"] == str(path)
    assert path.exists()
