"""What other systems hear of the load: webhooks, New Relic markers and events, and
Prometheus' /metrics. They read results and models; they never drive a session."""
