"""What to load: the catalog of targets, endpoints, multi-step flows and data feeds, and the
one path every surface takes to change it."""
