"""The server's Prometheus metrics (``GET /metrics``, the text format Prometheus scrapes), in a registry of its own:
requests by outcome, latency, batch sizes, time in the model, queue depth, and errors by cause."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Why a request got no result: what the client sent, what the server could take, or a fault of ours.
CAUSES = ("not_found", "bad_request", "bad_image", "too_large", "overloaded", "disconnected", "internal")
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """One server's metrics; labelled by model (and status code or cause)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mobilenet_requests", "Prediction requests answered, by model and HTTP status",
            ["model", "code"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "mobilenet_request_seconds", "Time from a prediction request's arrival to its answer, by HTTP status",
            ["model", "code"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "mobilenet_batch_size", "Images per batch run", ["model"], buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "mobilenet_batch_seconds", "Time one batch took in the model (preprocessing included)",
            ["model"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "mobilenet_queue_depth", "Requests in hand: uploads being read and decoded, images waiting for a batch",
            ["model"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "mobilenet_errors", "Requests that got no result, by cause", ["model", "cause"], registry=self.registry
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
