"""Helpers the test tiers share: servers, processes, sessions, waits. No test lives here."""
