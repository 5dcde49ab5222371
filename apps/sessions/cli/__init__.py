"""The headless command line (``manage.py loadtest``): config files, runs, reports, catalogs."""
