"""A session from its creation to its end: editing, planning, starting, live changes,
stopping, the monitor that decides its course, recovery after Redis loss, and schedules.
Only the surfaces (API, admin, dashboard, CLI) and the tasks call its state changes."""
