"""Prometheus metrics of the decision service.

With one process the metrics live in a registry owned by the app. With several
uvicorn workers, ``nba serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start; every worker then writes its samples there and ``/metrics``
aggregates all of them (prometheus_client's multiprocess mode).

Metrics: ``nba_request_seconds{route,method,status}`` (histogram per route
template, never the raw path, which may hold an HCP id),
``nba_decisions_total{channel}``, ``nba_suppressions_total{rule}``,
``nba_outcomes_total{type,late}``, ``nba_model_info{version}`` (1 for the version
serving now) and ``nba_model_swaps_total{result}``.

Engagement per channel is read from the event store at each scrape (so every
worker reports the same numbers): ``nba_engagement_rate{channel}`` is the share
of the decisions executed in the last :data:`ENGAGEMENT_DAYS` days with an
engagement outcome credited to the chosen action inside the reward window, and
``nba_executed_decisions{channel}`` their number (serving/store_kpis.py). The
latest decisions' windows are still open, so the rate runs low at first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: the rolling window of decisions behind the per-channel engagement gauges
ENGAGEMENT_DAYS = 7

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServiceMetrics:
    """The service's metric families, registered in their own registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # in multiprocess mode samples go to files; the registry is built per scrape
        self.registry: CollectorRegistry | None = None if self.multiprocess else CollectorRegistry()
        reg = self.registry
        self.latency = Histogram(
            "nba_request_seconds",
            "Request latency per route template",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.decisions = Counter(
            "nba_decisions", "Decisions served, by chosen channel", ["channel"], registry=reg
        )
        self.suppressions = Counter(
            "nba_suppressions",
            "Actions removed by the contact policy, by rule",
            ["rule"],
            registry=reg,
        )
        self.outcomes = Counter(
            "nba_outcomes", "Outcomes stored, by type and lateness", ["type", "late"], registry=reg
        )
        self.model_swaps = Counter(
            "nba_model_swaps", "Model load attempts by result", ["result"], registry=reg
        )
        gauge_kw = {"multiprocess_mode": "liveall"} if self.multiprocess else {}
        self.model_info = Gauge(
            "nba_model_info",
            "1 for the model version serving now",
            ["version"],
            registry=reg,
            **gauge_kw,  # type: ignore[arg-type]
        )
        self.gc_frozen = Gauge(
            "nba_gc_frozen_objects",
            "Objects frozen out of the garbage collector's walks once the worker started",
            registry=reg,
            **gauge_kw,  # type: ignore[arg-type]
        )
        self.gc_young_threshold = Gauge(
            "nba_gc_young_threshold",
            "The garbage collector's threshold for its young generation in the worker",
            registry=reg,
            **gauge_kw,  # type: ignore[arg-type]
        )
        self._version: str | None = None
        #: the latency histogram's child per (route, method, status): ``labels()``
        #: checks and joins its label values on every call
        self._latency_children: dict[tuple[str, str, int], Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request's latency in ``nba_request_seconds{route,method,status}``.

        >>> m = ServiceMetrics()
        >>> m.observe_request("/v1/decisions", "POST", 201, 0.004)
        >>> b'nba_request_seconds_count{method="POST",route="/v1/decisions",status="201"} 1.0' in (
        ...     m.render())
        True
        """
        key = (route, method, status)
        child = self._latency_children.get(key)
        if child is None:
            child = self.latency.labels(route=route, method=method, status=str(status))
            self._latency_children[key] = child
        child.observe(seconds)

    def set_model(self, version: str) -> None:
        if self._version is not None and self._version != version:
            self.model_info.labels(version=self._version).set(0)
        self.model_info.labels(version=version).set(1)
        self._version = version

    def set_heap(self, frozen: int, young_threshold: int) -> None:
        """What :func:`serving.heap.settle` left: frozen objects, young threshold."""
        self.gc_frozen.set(frozen)
        self.gc_young_threshold.set(young_threshold)

    def render(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        return generate_latest(reg)


class _EngagementCollector(Collector):
    def __init__(self, by_channel: Mapping[str, tuple[int, float | None]]) -> None:
        self.by_channel = by_channel

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rate = GaugeMetricFamily(
            "nba_engagement_rate",
            f"Share of decisions executed in the last {ENGAGEMENT_DAYS} days with an "
            "engagement outcome in the reward window, by chosen channel",
            labels=["channel"],
        )
        executed = GaugeMetricFamily(
            "nba_executed_decisions",
            f"Decisions executed in the last {ENGAGEMENT_DAYS} days, by chosen channel",
            labels=["channel"],
        )
        for channel, (n, r) in sorted(self.by_channel.items()):
            executed.add_metric([channel], float(n))
            if r is not None:
                rate.add_metric([channel], r)
        yield rate
        yield executed


def engagement_exposition(by_channel: Mapping[str, tuple[int, float | None]]) -> bytes:
    """Prometheus text of the per-channel engagement gauges.

    Parameters
    ----------
    by_channel : mapping channel -> (executed decisions, engagement rate or None)
    """
    reg = CollectorRegistry()
    reg.register(_EngagementCollector(by_channel))
    return generate_latest(reg)
