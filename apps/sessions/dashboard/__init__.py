"""The dashboard: server-rendered pages (login, overview, sessions, workers) for every role.

Pages read through the ORM and the API's snapshot code; every action goes through
``services`` (forms here) or the API (the page scripts), so each is refused by the server,
with the same message, to a role that may not do it, whatever the page shows.
"""
