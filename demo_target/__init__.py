"""A small, deliberately badly-behaved web app to point load at.

A new user of the load tester needs a target that exists before their own app is wired up, and
whose slowness and failures are known in advance, so that the charts and reports have something
real to show. This Flask app imitates the "performance" corner of an e-commerce site: sleeping
endpoints, an N+1 query, unindexed scans, a heavy join, random errors, CPU and memory spikes.

It runs as its own process (``python -m demo_target``) and is never imported by the Django
project.
"""
