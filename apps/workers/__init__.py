"""Execution: the Celery tasks that run virtual users, and the plain engine behind them.

``tasks`` is thin; the engine lives in plain modules that tests can drive directly:
``histogram`` and ``stats`` (bounded in-memory statistics), ``selection`` (weighted endpoint
choice), ``shard`` (the asyncio loop of virtual users), ``control`` (the Redis keys shared
with the control plane) and ``monitor`` (moving statistics from Redis into the database).
"""
