"""Pages driven in Debian's chromium through Playwright, against a real web server."""
