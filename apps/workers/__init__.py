"""The engine: the Celery task that runs a shard of virtual users, and the plain code behind it.

A library the control plane (the domain app) drives; it imports nothing from it. ``tasks`` is
thin; the engine lives in plain modules that tests can drive directly: ``shard`` (the asyncio
loop of virtual users, where requests are sent), ``http``, ``pacing``, ``breaker``,
``resources``, ``selection``, ``histogram`` and ``stats`` (bounded in-memory statistics),
``control`` (the Redis keys and scripts), ``dispatch``, ``inventory``, ``plan`` (what a
session's shards execute) and ``vocabulary`` (the states and words it reports in).
"""
