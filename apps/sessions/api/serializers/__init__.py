"""JSON shapes of the API, one module per concern (split like ``models/``). Field names are the
models' (``concurrent_users``, ``timeout_s``...) except where the API's contract says otherwise."""
