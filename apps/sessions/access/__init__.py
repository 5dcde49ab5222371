"""Who may do what (roles, permissions, sign-in lockout) and the record of it (the audit log,
the configuration history)."""
