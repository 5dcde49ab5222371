# One verb per workflow. Each is a thin alias: only Python is needed without make.
PYTHON ?= python3

.PHONY: run test lint format

run:  ## install and run the whole service (web, workers, beat, Flower, demo target, Redis)
	$(PYTHON) scripts/dev.py run

test:  ## install the test tools and run the whole suite against real Redis and workers
	$(PYTHON) scripts/dev.py test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
