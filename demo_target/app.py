"""The demo target: a Flask app whose endpoints are slow or failing on purpose.

The data lives in a private SQLite file that the app creates and fills on first start, so the
slow queries are slow for honest reasons (no index, a big join) rather than by ``sleep``.
"""

import hashlib
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

from .shop import MAX_SESSIONS, install_shop

DEFAULT_DB_PATH = Path(__file__).resolve().parent.parent / "data" / "demo_target.sqlite3"
DB_FILE_NAME = "demo_target.sqlite3"
MAX_DELAY_MS = 30_000
N_PLUS_ONE_ORDERS = 50

# Rows at scale 1.0: enough that a scan or the 4-table join costs tens to hundreds of
# milliseconds, few enough that filling takes about a second.
BASE_ROWS = {"users": 100_000, "products": 5_000, "orders": 50_000}  # ~3 items per order
COUNTRIES = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "ES", "NL"]
CATEGORIES = ["books", "garden", "toys", "kitchen", "audio", "sports", "beauty", "tools"]
STATUSES = ["new", "paid", "shipped", "delivered", "cancelled"]
NAMES = ["alex", "sam", "kim", "lee", "maria", "noah", "olga", "priya", "omar", "zoe", "smith"]

# Weights of /performance/error outcomes: 70% errors, most of them unhandled exceptions.
ERROR_WEIGHTS = {"exception": 40, "500": 10, "400": 7, "404": 7, "503": 6, "ok": 30}
OUTCOMES, WEIGHTS = list(ERROR_WEIGHTS), list(ERROR_WEIGHTS.values())

# Only primary keys are indexed, on purpose: foreign keys and searched columns are not.
SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT, country TEXT);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price_cents INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, status TEXT, total_cents INTEGER);
CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER,
                          quantity INTEGER, unit_price_cents INTEGER);
CREATE TABLE demo_meta (key TEXT PRIMARY KEY, value TEXT);
"""
LATEST_ORDERS_SQL = "SELECT id, user_id, total_cents FROM orders ORDER BY id DESC LIMIT ?"
ORDER_ITEMS_SQL = "SELECT product_id, quantity FROM order_items WHERE order_id = ?"
# The middle page of all line items sorted by an expression no index covers: every row must
# be computed and sorted before the OFFSET can be skipped.
SLOW_QUERY_SQL = """
SELECT oi.id, p.name, oi.quantity * oi.unit_price_cents AS line_cents
FROM order_items oi JOIN products p ON p.id = oi.product_id
ORDER BY line_cents DESC, p.name, oi.id LIMIT 20 OFFSET (SELECT COUNT(*) / 2 FROM order_items)
"""
# A leading wildcard under lower() rules out any index: every user row is read.
FULL_SCAN_SQL = """
SELECT COUNT(*), TOTAL(lower(email) LIKE '%' || ?1 || '%' OR lower(name) LIKE '%' || ?1 || '%')
FROM users
"""
COMPLEX_JOIN_SQL = """
SELECT p.category, u.country, COUNT(DISTINCT o.id), COUNT(*),
       SUM(oi.quantity * oi.unit_price_cents)
FROM order_items oi JOIN orders o ON o.id = oi.order_id
JOIN users u ON u.id = o.user_id JOIN products p ON p.id = oi.product_id
GROUP BY p.category, u.country ORDER BY 5 DESC
"""

# Serialises filling between threads of one process; BEGIN IMMEDIATE does it between processes.
_FILL_LOCK = threading.Lock()


class BadParam(ValueError):
    """A query parameter the client got wrong: answered with a 400, never a 500."""


def row_counts(scale: float) -> dict[str, int]:
    """Rows per table at ``scale``, floored so the N+1 endpoint always finds its 50 orders."""
    return {table: max(N_PLUS_ONE_ORDERS, int(n * scale)) for table, n in BASE_ROWS.items()}


def _is_filled(conn: sqlite3.Connection) -> bool:
    # demo_meta and its "filled" row are written in the fill transaction: both exist or neither.
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'demo_meta'").fetchone())


def fill_database(db_path: str, scale: float = 1.0) -> None:
    """Create and fill the database once; safe when several workers start together.

    Everything, the "filled" marker included, is written in one IMMEDIATE transaction, so a
    second starter waits on the write lock and then sees the marker instead of filling again,
    and a crash mid-fill leaves no half-filled tables behind.
    """
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    with _FILL_LOCK:
        conn = sqlite3.connect(db_path, timeout=120, isolation_level=None)
        try:
            if not _is_filled(conn):
                with conn:  # Commits on success, rolls back on any exception.
                    conn.execute("BEGIN IMMEDIATE")
                    if not _is_filled(conn):  # Another process may have filled it meanwhile.
                        _insert_rows(conn, scale)
        finally:
            conn.close()


def _insert_rows(conn: sqlite3.Connection, scale: float) -> None:
    rng = random.Random(42)  # The same data everywhere, so timings are comparable.
    counts = row_counts(scale)
    # One execute per statement: executescript() would COMMIT the open transaction first.
    for statement in SCHEMA.split(";")[:-1]:
        conn.execute(statement)
    users = []
    for user_id in range(1, counts["users"] + 1):
        first, last = rng.choice(NAMES), rng.choice(NAMES)
        email = f"{first}.{last}{user_id}@example{user_id % 7}.com"
        users.append((user_id, email, f"{first} {last}".title(), rng.choice(COUNTRIES)))
    prices = {i: rng.randint(199, 19_999) for i in range(1, counts["products"] + 1)}
    products = [(i, f"Product {i}", rng.choice(CATEGORIES), p) for i, p in prices.items()]
    orders, items = [], []
    for order_id in range(1, counts["orders"] + 1):
        total_cents = 0
        for _ in range(rng.randint(1, 5)):
            product_id, quantity = rng.randint(1, counts["products"]), rng.randint(1, 4)
            items.append((order_id, product_id, quantity, prices[product_id]))
            total_cents += quantity * prices[product_id]
        user_id = rng.randint(1, counts["users"])
        orders.append((order_id, user_id, rng.choice(STATUSES), total_cents))
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", users)
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", products)
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (NULL, ?, ?, ?, ?)", items)
    conn.execute("INSERT INTO demo_meta VALUES ('filled', ?)", (str(scale),))


def _query(sql: str, params: tuple = ()) -> list[tuple]:
    """Run a query on this request's own read-only connection (threads never share one)."""
    if "db" not in g:
        uri = Path(current_app.config["DEMO_DB_PATH"]).resolve().as_uri() + "?mode=ro"
        g.db = sqlite3.connect(uri, uri=True, timeout=30)
    return g.db.execute(sql, params).fetchall()


def _int_param(name: str, default: int, lowest: int, highest: int, clamp: bool = False) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer, got {raw!r}") from None
    if value < lowest or (value > highest and not clamp):
        raise BadParam(f"{name} must be between {lowest} and {highest}, got {value}")
    return min(value, highest)


def _error(status: int, message: str) -> tuple:
    error = HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_")
    return jsonify(error=error, message=message), status


def default_db_path() -> Path:
    """``$DATA_DIR/demo_target.sqlite3`` as the configuration reference says, so a
    service run with its own DATA_DIR keeps the demo's database there too; ``data/`` of the
    checkout when DATA_DIR is unset (the service's own default)."""
    data_dir = os.environ.get("DATA_DIR")
    return Path(data_dir).resolve() / DB_FILE_NAME if data_dir else DEFAULT_DB_PATH


def create_app(
    db_path: str | None = None,
    scale: float = 1.0,
    seed: int | None = None,
    max_sessions: int = MAX_SESSIONS,
) -> Flask:
    """Build the app, filling its database first so no request ever sees an empty one.

    ``scale`` shrinks the data (tests use ~0.05); ``seed`` makes the random endpoints
    reproducible; ``max_sessions`` bounds the logged-in sessions kept (see ``shop``).
    """
    if not 0 < scale <= 10:
        raise ValueError(f"scale must be in (0, 10], got {scale}")
    db_path = str(db_path or os.environ.get("DEMO_DB_PATH") or default_db_path())
    fill_database(db_path, scale)
    app = Flask(__name__)
    app.config["DEMO_DB_PATH"] = db_path
    app.json.sort_keys = False
    rng = random.Random(seed)
    # What this process has received, per path: a load test's own count can be checked
    # against the target's (the container test does). Waitress answers from many threads.
    received: dict[str, int] = {}
    received_lock = threading.Lock()

    @app.before_request
    def count_received() -> None:
        if request.path != "/received":
            with received_lock:
                received[request.path] = received.get(request.path, 0) + 1

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        if (db := g.pop("db", None)) is not None:
            db.close()

    @app.errorhandler(BadParam)
    def bad_param(exc: BadParam):
        return _error(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Unknown routes, 405s and unhandled exceptions (500) answer in JSON like the rest.
        if isinstance(exc, InternalServerError) and exc.original_exception is not None:
            return _error(500, f"unhandled {exc.original_exception!r}")
        return _error(exc.code or 500, exc.description or "")

    @app.get("/")
    def index():
        """List the endpoints with a one-line description each."""
        endpoints = {
            rule.rule: (app.view_functions[rule.endpoint].__doc__ or "").strip().splitlines()[0]
            for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
            if rule.endpoint != "static"
        }
        return jsonify(app="demo_target", endpoints=endpoints)

    @app.get("/health")
    def health():
        """Liveness check; fast, never touches the big tables."""
        return jsonify(status="ok")

    @app.get("/received")
    def received_counts():
        """Requests received per path since this process started (this one not counted)."""
        with received_lock:
            paths = dict(sorted(received.items()))
        return jsonify(total=sum(paths.values()), paths=paths)

    @app.get("/performance/slow")
    def slow():
        """Sleep 0.5-2.0 s at random (delay_ms=N sleeps exactly N ms, capped at 30000)."""
        delay_ms = _int_param("delay_ms", rng.randint(500, 2000), 0, MAX_DELAY_MS, clamp=True)
        started = time.perf_counter()
        time.sleep(delay_ms / 1000)
        return jsonify(delay_ms=delay_ms, slept_ms=round((time.perf_counter() - started) * 1000))

    @app.get("/performance/n-plus-one")
    def n_plus_one():
        """Fetch 50 orders, then their items with one query per order (the N+1 pattern)."""
        orders = _query(LATEST_ORDERS_SQL, (N_PLUS_ONE_ORDERS,))
        result = []
        for order_id, user_id, total_cents in orders:
            # order_id has no index, so each of these queries scans all of order_items.
            items = _query(ORDER_ITEMS_SQL, (order_id,))
            result.append(
                {"id": order_id, "user_id": user_id, "total_cents": total_cents, "items": items}
            )
        return jsonify(query_count=1 + len(orders), orders=result)

    @app.get("/performance/slow-query")
    def slow_query():
        """Deep OFFSET page of line items sorted by an unindexed expression."""
        rows = _query(SLOW_QUERY_SQL)
        return jsonify(rows=[{"id": i, "product": n, "line_cents": c} for i, n, c in rows])

    @app.get("/performance/slow-query/full-scan")
    def full_scan():
        """Search users by email or name fragment (q=...): an unindexed scan of every row."""
        term = request.args.get("q", "smith").strip().lower()
        if not 1 <= len(term) <= 100:
            raise BadParam("q must be 1-100 characters")
        [(scanned_rows, matched_rows)] = _query(FULL_SCAN_SQL, (term,))
        return jsonify(q=term, scanned_rows=scanned_rows, matched_rows=int(matched_rows))

    @app.get("/performance/slow-query/complex-join")
    def complex_join():
        """Revenue per product category and country: a 4-table join with GROUP BY."""
        groups = [
            {"category": cat, "country": c, "orders": o, "items": i, "revenue_cents": r}
            for cat, c, o, i, r in _query(COMPLEX_JOIN_SQL)
        ]
        item_count = sum(group["items"] for group in groups)
        return jsonify(group_count=len(groups), item_count=item_count, groups=groups)

    @app.get("/performance/error")
    def error():
        """Fail ~70% of the time: mostly unhandled exceptions, some 400/404/503 (kind= forces)."""
        kind = request.args.get("kind") or rng.choices(OUTCOMES, weights=WEIGHTS)[0]
        if kind == "exception":
            raise RuntimeError("simulated unhandled failure in the checkout pipeline")
        if kind == "ok":
            return jsonify(status="ok")
        if kind not in ERROR_WEIGHTS:
            raise BadParam(f"kind must be one of {', '.join(ERROR_WEIGHTS)}, got {kind!r}")
        return _error(int(kind), f"simulated {kind} from a flaky dependency")

    @app.get("/performance/cpu")
    def cpu():
        """Burn one CPU core hashing for duration_ms (default 100, at most 5000)."""
        duration_ms = _int_param("duration_ms", 100, 1, 5000)
        deadline = time.perf_counter() + duration_ms / 1000
        digest, rounds = b"demo", 0
        while time.perf_counter() < deadline:
            digest, rounds = hashlib.sha256(digest).digest(), rounds + 1
        return jsonify(duration_ms=duration_ms, hash_rounds=rounds)

    install_shop(app, max_sessions)
    return app
