"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    """Request counts and latencies, screening latency, X-ray decisions and detections, photo answers, and the
    loaded models. ``armscan_decisions_total`` counts X-ray scans only; photos count in ``armscan_photo_answers_total``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("armscan_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("armscan_http_request_seconds", "HTTP request latency", ["route"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.inference_seconds = Histogram("armscan_inference_seconds", "screening latency (decode + model)",
                                           ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.decisions = Counter("armscan_decisions_total", "screening decisions", ["decision", "model"], registry=r)
        self.detections = Counter("armscan_detections_total", "listed detections by class and level",
                                  ["cls", "level"], registry=r)
        self.photo_answers = Counter("armscan_photo_answers_total", "seizure photos classified, by answer (a family, "
                                     "part_only, no_firearm or uncertain) and confidence band", ["answer", "band", "model"],
                                     registry=r)
        self.rejected = Counter("armscan_rejected_uploads_total", "uploads refused", ["reason"], registry=r)
        self.in_flight = Gauge("armscan_inference_in_flight", "scans being screened or waiting", registry=r)
        self.model_info = Gauge("armscan_model_info", "loaded models (1 = default)", ["name", "version", "sha256"],
                                registry=r)
