"""Prometheus metrics at ``GET /metrics``, summed over every gunicorn worker.

Under gunicorn with ``serving/gunicorn.conf.py`` (``make serve``) the workers share
``PROMETHEUS_MULTIPROC_DIR``: each writes its counters, histograms and gauges to its own files there,
a scrape (answered by whichever worker) reads all of them, and the config's ``child_exit`` hook marks a
dead worker's live gauges gone. The variable must be set before ``prometheus_client`` is first
imported (the client picks its storage then), which the gunicorn config does in the master, before
any worker starts. Without it the metrics live in the process. (Importing Feast sets the variable to a
private directory of its own when it is unset: a single process then keeps its metrics there, and
only this app's ``lingxi_*`` families are served, not Feast's.)

What is measured:

- ``lingxi_http_requests_total{method,route,status}`` and ``lingxi_http_request_duration_seconds``
  (histogram, per method and route): the route is the URL *template* (``/api/v1/customers/<customer_id>``),
  never the raw path, so no id reaches the metrics. ``/metrics`` itself is not counted.
- ``lingxi_feedback_answers_total{stage,response}``: answers stored (replays of an idempotency key not counted).
- ``lingxi_stage_one_total{source}``: stage-one lists by where the scores came from, ``nightly`` (the
  nightly table) or ``live`` (scored per request); ``unknown`` while the engine does not say.
- ``lingxi_model_info{model,features,stage_two,stage_one_table}`` and ``lingxi_snapshot_info{version}``:
  1 for what some live worker serves (0 for a version no longer served).
- ``lingxi_snapshot_age_seconds`` and ``lingxi_snapshot_published_timestamp_seconds``: how old the
  customer snapshot served is, from its file's time (when the nightly job wrote it), at scrape time.

Access: open like ``/healthz`` (Prometheus scrapes without credentials; the numbers hold no customer
data). Set ``LINGXI_METRICS_TOKEN`` to require ``Authorization: Bearer <that token>`` instead (a token
of its own, not an API token: Prometheus' ``authorization`` scrape setting sends it).
"""
from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request

EXTENSION = "lingxi_metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_ROUTE = "/metrics"
# around the bank's 100 ms target: p95 above it shows as a shift out of the 0.1 bucket
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
STAGE_ONE_SOURCES = ("nightly", "live", "unknown")


def multiprocess_mode() -> bool:
    """Whether this process's metric values live in ``PROMETHEUS_MULTIPROC_DIR`` files: decided by the
    client when first imported, so the variable alone does not tell (it may have been set later)."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue and bool(os.environ.get(MULTIPROC_ENV))


class AppFamilies:
    """Every process's ``lingxi_*`` families from the multiprocess files (other libraries' left out)."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        for family in MultiProcessCollector(None).collect():
            if family.name.startswith("lingxi_"):
                yield family


class LiveCollector:
    """Values computed when scraped by the answering worker: the snapshot's age."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._published: dict[str, float] = {}  # snapshot version -> its file's mtime

    def published_at(self, services: Any) -> float | None:
        from .snapshot import SnapshotError, resolve_source

        release = services.releases.peek()
        snapshot = release.snapshot if release is not None else None
        if snapshot is None:
            return None
        if snapshot.version not in self._published:
            try:
                source = resolve_source(release.root / "marts")
                if source is not None and source.version == snapshot.version:
                    self._published[snapshot.version] = source.customer_360.stat().st_mtime
            except (OSError, SnapshotError):
                pass
        # a newer snapshot is already on disk: this one's file time is unknown, its load time bounds it
        return self._published.get(snapshot.version, snapshot.loaded_at.timestamp())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        services = self.app.extensions.get("lingxi")
        published = self.published_at(services) if services is not None else None
        if published is None:
            return
        yield GaugeMetricFamily("lingxi_snapshot_published_timestamp_seconds",
                                "When the served customer snapshot was written (Unix time)", value=published)
        yield GaugeMetricFamily("lingxi_snapshot_age_seconds", "Age of the served customer snapshot",
                                value=max(0.0, time.time() - published))


class ServingMetrics:
    """The app's metric objects (one set per process; created by ``init_app``)."""

    def __init__(self, app: Flask) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.live = LiveCollector(app)
        self.registry.register(self.live)
        self.requests = Counter("lingxi_http_requests", "HTTP requests by route template and status",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("lingxi_http_request_duration_seconds", "Request latency by route template",
                                 ("method", "route"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.feedback = Counter("lingxi_feedback_answers", "Feedback answers stored, by stage and response",
                                ("stage", "response"), registry=self.registry)
        self.stage_one_sources = Counter("lingxi_stage_one", "Stage-one lists by the source of their scores",
                                         ("source",), registry=self.registry)
        self.model_info = Gauge("lingxi_model_info", "The engine versions a live worker serves (1)",
                                ("model", "features", "stage_two", "stage_one_table"), registry=self.registry,
                                multiprocess_mode="livemax")
        self.snapshot_info = Gauge("lingxi_snapshot_info", "The customer snapshot a live worker serves (1; 0: no longer)",
                                   ("version",), registry=self.registry, multiprocess_mode="livemax")
        self._snapshot_version: str | None = None
        self._table_loaded: bool | None = None

    # -- recorded by the workflow ----------------------------------------------------------------
    def engine_loaded(self, versions: dict[str, str]) -> None:
        table = versions.get("stage_one_table")
        self._table_loaded = None if table is None else not table.startswith("none")
        self.model_info.labels(versions.get("model", ""), versions.get("features", ""),
                               versions.get("stage_two", ""), table or "").set(1)

    def stage_one_served(self, ranking: Any) -> None:
        """Count where a stage-one list's scores came from. The ranking says so when the engine sets
        ``source``; otherwise an engine without a nightly table scores live, and one with a table is
        ``unknown`` (it falls back to live scoring per customer without saying)."""
        source = getattr(ranking, "source", None)
        if source not in STAGE_ONE_SOURCES:
            source = "live" if self._table_loaded is False else "unknown"
        self.stage_one_sources.labels(source).inc()

    def feedback_stored(self, stage: int, responses: list[str]) -> None:
        for response in responses:
            self.feedback.labels(str(stage), response).inc()

    def snapshot_served(self, version: str | None) -> None:
        if version == self._snapshot_version:
            return
        if self._snapshot_version is not None:
            self.snapshot_info.labels(self._snapshot_version).set(0)
        if version is not None:
            self.snapshot_info.labels(version).set(1)
        self._snapshot_version = version

    # -- exposition -------------------------------------------------------------------------------
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        if not multiprocess_mode():
            return encoder(self.registry), content_type
        registry = CollectorRegistry()  # every worker's files, plus this worker's live values
        registry.register(AppFamilies())
        registry.register(self.live)
        return encoder(registry), content_type


def metrics(app: Flask | None = None) -> ServingMetrics:
    return (app or current_app).extensions[EXTENSION]


def _start() -> None:
    g.metrics_started = time.perf_counter()


def _finish(response):
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    if rule == METRICS_ROUTE:
        return response
    started = g.get("metrics_started")
    method = request.method if request.method in _METHODS else "OTHER"
    m = metrics()
    m.requests.labels(method, rule, str(response.status_code)).inc()
    if started is not None:
        m.latency.labels(method, rule).observe(time.perf_counter() - started)
    services = current_app.extensions.get("lingxi")
    if services is not None:
        m.snapshot_served(_served_snapshot(services))
    return response


def _scrape():
    from .errors import ApiError

    token = current_app.config.get("LINGXI_METRICS_TOKEN")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "unauthorized", "the metrics token is required",
                           headers={"WWW-Authenticate": 'Bearer realm="lingxi-metrics"'})
    m = metrics()
    services = current_app.extensions.get("lingxi")
    if services is not None:
        m.snapshot_served(_served_snapshot(services))
    body, content_type = m.exposition(request.headers.get("Accept"))
    return Response(body, status=200, content_type=content_type)


def _served_snapshot(services: Any) -> str | None:
    """The snapshot version of the release this worker answers from (None while loading)."""
    release = services.releases.peek()
    return release.snapshot.version if release is not None and release.snapshot is not None else None


def init_app(app: Flask) -> ServingMetrics:
    """Create the metrics, time every request, serve ``/metrics``. Call once the services exist."""
    m = ServingMetrics(app)
    app.extensions[EXTENSION] = m
    services = app.extensions.get("lingxi")
    if services is not None:
        services.metrics = m
        release = services.releases.peek()
        if release is not None and release.engine_slot.engine is not None:
            try:
                m.engine_loaded(dict(release.engine_slot.engine.versions()))
            except Exception:  # noqa: BLE001 - versions are informative; readiness reports the engine
                pass
        m.snapshot_served(_served_snapshot(services))
    app.before_request(_start)
    app.after_request(_finish)
    app.add_url_rule(METRICS_ROUTE, "metrics", _scrape, methods=["GET"])
    return m
