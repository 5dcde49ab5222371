"""Locust's side of the comparison: FastHttpUser, no wait time, one request."""

from locust import FastHttpUser, task


class Visitor(FastHttpUser):
    @task
    def root(self) -> None:
        self.client.get("/")
