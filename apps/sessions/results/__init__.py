"""A run's results: copied from Redis into the database, and its figures computed once, in
``figures.py``, for every surface (pages, API, report, comparison, thresholds, /metrics, CLI).
Nothing here changes a session's lifecycle."""
