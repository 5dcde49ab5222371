"""The domain and its control plane: targets, endpoints, load-test sessions, their statistics.

Every state change of a session goes through ``services``; the API, the admin, the command
line and the monitor's Celery tasks all call those functions. ``monitor`` decides a running
session's lifecycle.
"""
