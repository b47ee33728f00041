"""Prometheus metrics, one registry per app (never prometheus-client's global one).

HTTP requests are counted by an after_request hook; generations report themselves when
they end (tokens, time to first token, tokens per second, latency), each exactly once:
finished, cut at their length, or cancelled (stopped by id, or abandoned by their client);
queue depth and busy slots are read from the engines at scrape time, so they are always
current. Requests routed to upstream servers are counted per upstream as well (the fleet's
events), and the upstreams' state is read at scrape time. docs/api.md lists every metric
(a test checks it against /metrics).
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .engines.base import Usage
from .engines.manager import ModelManager

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 5000)


class _EngineCollector:
    """Gauges read from the loaded engines whenever /metrics is scraped."""

    def __init__(self, models: ModelManager) -> None:
        self._models = models

    def collect(self):
        slots = GaugeMetricFamily("hearth_slots", "Sequence slots of each loaded model", labels=["model"])
        busy = GaugeMetricFamily("hearth_busy_slots", "Slots generating right now", labels=["model"])
        queued = GaugeMetricFamily("hearth_queue_depth", "Requests waiting for a free slot", labels=["model"])
        cached = GaugeMetricFamily("hearth_cached_prompts", "Saved prompt states in memory", labels=["model"])
        for name, engine in self._models.loaded_engines():
            stats = engine.stats()
            slots.add_metric([name], stats.slots)
            busy.add_metric([name], stats.busy_slots)
            queued.add_metric([name], stats.queued)
            cached.add_metric([name], stats.cached_prompts)
        yield from (slots, busy, queued, cached)


class _FleetCollector:
    """Each upstream's state, read from the fleet whenever /metrics is scraped."""

    def __init__(self, fleet) -> None:
        self._fleet = fleet

    def collect(self):
        in_flight = GaugeMetricFamily(
            "hearth_upstream_in_flight", "Requests an upstream is serving for Hearth now", labels=["upstream"]
        )
        capacity = GaugeMetricFamily(
            "hearth_upstream_capacity", "Requests an upstream generates at once", labels=["upstream"]
        )
        ejected = GaugeMetricFamily(
            "hearth_upstream_ejected", "1 while an upstream is out of its pools", labels=["upstream"]
        )
        for upstream in self._fleet.upstreams:
            members = list(upstream.members.values())
            in_flight.add_metric([upstream.name], sum(m.in_flight for m in members))
            capacity.add_metric([upstream.name], sum(m.capacity for m in members))
            ejected.add_metric([upstream.name], 0 if upstream.up else 1)
        yield from (in_flight, capacity, ejected)


class _UpstreamEvents:
    """The fleet's events (modules/engines/remote/fleet.py `FleetEvents`) as counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "hearth_upstream_requests",
            "Requests routed to each upstream that ended, by outcome",
            ["upstream", "model", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "hearth_upstream_failures", "Failures of each upstream, by kind", ["upstream", "kind"], registry=r
        )
        self.retries = Counter(
            "hearth_upstream_retries",
            "Requests that failed on an upstream before their first byte and went to another",
            ["upstream"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "hearth_upstream_prompt_tokens", "Prompt tokens sent to each upstream", ["upstream"], registry=r
        )
        self.generated_tokens = Counter(
            "hearth_upstream_generated_tokens", "Tokens each upstream generated", ["upstream"], registry=r
        )
        self.first_token = Histogram(
            "hearth_upstream_time_to_first_token_seconds",
            "From sending a request to an upstream until its first token",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "hearth_upstream_request_duration_seconds",
            "From sending a request to an upstream until its end",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def request_finished(
        self,
        upstream: str,
        model: str,
        outcome: str,
        prompt_tokens: int,
        completion_tokens: int,
        first_token: float | None,
        seconds: float,
    ) -> None:
        self.requests.labels(upstream, model, outcome).inc()
        self.prompt_tokens.labels(upstream).inc(prompt_tokens)
        self.generated_tokens.labels(upstream).inc(completion_tokens)
        if first_token is not None:
            self.first_token.labels(upstream).observe(first_token)
        self.duration.labels(upstream).observe(seconds)

    def request_failed(self, upstream: str, kind: str) -> None:
        self.failures.labels(upstream, kind).inc()

    def retried(self, upstream: str) -> None:
        self.retries.labels(upstream).inc()


class Metrics:
    def __init__(self, models: ModelManager | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "hearth_http_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "hearth_http_request_duration_seconds",
            "Time until the response headers, by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.generations = Counter(
            "hearth_generations",
            "Generations that ended, by model and finish reason (stop, length, cancelled)",
            ["model", "finish_reason"],
            registry=r,
        )
        self.prompt_tokens = Counter("hearth_prompt_tokens", "Prompt tokens", ["model"], registry=r)
        self.cached_tokens = Counter(
            "hearth_cached_prompt_tokens",
            "Prompt tokens reused from the cache instead of evaluated",
            ["model"],
            registry=r,
        )
        self.generated_tokens = Counter("hearth_generated_tokens", "Generated tokens", ["model"], registry=r)
        self.first_token = Histogram(
            "hearth_time_to_first_token_seconds",
            "From arrival at the engine until the first token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "hearth_generation_latency_seconds",
            "From arrival at the engine until the last token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "hearth_generation_tokens_per_second",
            "Decoding speed of each generation",
            ["model"],
            buckets=_RATE_BUCKETS,
            registry=r,
        )
        if models is not None:
            self.watch(models)

    def watch(self, models: ModelManager) -> None:
        self.registry.register(_EngineCollector(models))

    def upstream_events(self) -> _UpstreamEvents:
        """Counters for the fleet of upstream servers (created when there is one)."""
        if getattr(self, "_upstream_events", None) is None:
            self._upstream_events = _UpstreamEvents(self.registry)
        return self._upstream_events

    def watch_fleet(self, fleet) -> None:
        self.registry.register(_FleetCollector(fleet))

    def generation_finished(self, model: str, finish_reason: str, usage: Usage) -> None:
        self.generations.labels(model, finish_reason).inc()
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.cached_tokens.labels(model).inc(usage.cached_tokens)
        self.generated_tokens.labels(model).inc(usage.completion_tokens)
        if usage.first_token_seconds is not None:
            self.first_token.labels(model).observe(usage.first_token_seconds)
            self.latency.labels(model).observe(usage.first_token_seconds + usage.generation_seconds)
        if usage.completion_tokens > 1 and usage.generation_seconds > 0:
            rate = (usage.completion_tokens - 1) / usage.generation_seconds
            self.tokens_per_second.labels(model).observe(rate)

    def install(self, app: Flask) -> None:
        """Count every HTTP request of `app`."""

        @app.before_request
        def start_clock() -> None:
            g.hearth_started = time.perf_counter()

        @app.after_request
        def count(response: Response) -> Response:
            endpoint = request.url_rule.rule if request.url_rule else "(unknown)"
            self.http_requests.labels(endpoint, request.method, str(response.status_code)).inc()
            started = g.get("hearth_started")
            if started is not None:
                self.http_duration.labels(endpoint).observe(time.perf_counter() - started)
            return response

    def render(self) -> Response:
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE)
