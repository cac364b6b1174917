"""Prometheus metrics of the service (``GET /metrics``).

Request counts and latencies per route template (``/listeners/{listener}``, never the
id), enrollments, and each served model's re-enrollment progress (read from the
database when scraped). With ``--workers N`` the command sets ``PROMETHEUS_MULTIPROC_DIR``
and every worker's counters are summed (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("perser_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("perser_request_seconds", "Time to answer a request", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ENROLLMENTS = Counter("perser_enrollments", "Ratings requests that recomputed a listener's profiles")
REENROLLMENTS = Counter("perser_reenrollments", "Profiles recomputed in the background (model updates)", ["model"])


class _Progress:
    """Listeners per served model and profile state, read from the database at scrape time."""

    def __init__(self, service):
        self.service = service

    def collect(self):
        g = GaugeMetricFamily("perser_model_listeners", "Listeners by the state of their profile for a served model",
                              labels=["model", "state"])
        for sm in self.service.models.values():
            p = self.service.db.progress(sm.id)
            for state in ("ready", "pending", "failed"):
                g.add_metric([sm.name, state], p[state])
        yield g


def render(service) -> bytes:
    """The metrics page: this process's (or every worker's) counters and the progress gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry  # noqa: N811
    body = generate_latest(registry)
    progress = CollectorRegistry()
    progress.register(_Progress(service))
    return body + generate_latest(progress)
