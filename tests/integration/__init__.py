"""Real Redis, real Celery worker processes, real HTTP servers on 127.0.0.1."""
