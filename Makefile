# One verb per workflow. Each is a thin alias: only Python is needed without make.
PYTHON ?= python3

.PHONY: run test bench bench-quick lint format

run:  ## install and run the whole service (web, workers, beat, Flower, demo target, Redis)
	$(PYTHON) scripts/dev.py run

test:  ## install the test tools and run the whole suite against real Redis and workers
	$(PYTHON) scripts/dev.py test

bench:  ## our load path vs Locust on local nginx and a counting target, and the chaos soak (about 22 minutes)
	$(PYTHON) scripts/dev.py bench --output bench/results/latest.md

bench-quick:  ## every figure once, about 8 minutes (the chaos soak 4)
	$(PYTHON) scripts/dev.py bench --quick

lint:  ## the test command's static checks alone: ruff (lint, format check) and mypy
	$(PYTHON) scripts/dev.py check

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
