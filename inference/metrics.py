"""Prometheus metrics, on a registry per app so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from inference import contract
from inference.runtime import DeviceStatus

# Request latency on CPU reaches seconds; on a GPU slice tens of milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


def _base(name: str, suffix: str) -> str:
    """prometheus_client appends `_total` to counters itself; it must not be in the name given."""
    return name.removesuffix(suffix)


class ServiceMetrics:
    def __init__(self, gpu_memory_limit_bytes: int) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            _base(contract.METRIC_REQUESTS_TOTAL, "_total"),
            "Detect requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            contract.METRIC_REQUEST_DURATION,
            "Detect request duration",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_duration = Histogram(
            contract.METRIC_INFERENCE_DURATION,
            "Model stage duration incl. its post-processing",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.device_info = Gauge(
            contract.METRIC_DEVICE_INFO, "1 for the device models run on", ["device"], registry=self.registry
        )
        self.degraded = Gauge(
            contract.METRIC_DEGRADED, "1 when serving on CPU because CUDA failed", registry=self.registry
        )
        self.gpu_memory_limit = Gauge(
            contract.METRIC_GPU_MEMORY_LIMIT,
            "The pod's GPU memory budget in bytes: arenas + overhead (0: unlimited)",
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(contract.METRIC_RUNS_IN_FLIGHT, "Model runs executing now", registry=self.registry)
        self.refused = Counter(
            _base(contract.METRIC_REFUSED_TOTAL, "_total"),
            "Requests and connections refused or dropped by the server, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.pending_requests = Gauge(
            contract.METRIC_PENDING_REQUESTS,
            "Detect requests in progress (reading, queued or running)",
            registry=self.registry,
        )
        self.gpu_memory_limit.set(gpu_memory_limit_bytes)
        for reason in contract.REFUSAL_REASONS:
            self.refused.labels(reason)
        # Every label value exists from the start, so alerts and rate() see zeros, not gaps.
        for outcome in contract.OUTCOMES:
            self.requests.labels(outcome)
            self.request_duration.labels(outcome)
        for stage in contract.STAGES:
            self.inference_duration.labels(stage)
        for device in contract.DEVICES:
            self.device_info.labels(device).set(0)

    def set_status(self, status: DeviceStatus) -> None:
        for device in contract.DEVICES:
            self.device_info.labels(device).set(1 if device == status.device else 0)
        self.degraded.set(1 if status.degraded else 0)

    def observe_request(self, outcome: str, seconds: float) -> None:
        self.requests.labels(outcome).inc()
        self.request_duration.labels(outcome).observe(seconds)
