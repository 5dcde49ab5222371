"""Pure logic: no worker process, no HTTP server, no browser; the test database when quick."""
