"""Benchmarks: our load path and its closest peer (Locust) side by side, in one run."""
