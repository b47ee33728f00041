"""Prometheus metrics, one registry per app (never prometheus-client's global one).

HTTP requests are counted by an after_request hook; generations report themselves when
they end (tokens, time to first token, tokens per second, latency), each exactly once:
finished, cut at their length, or cancelled (stopped by id, or abandoned by their client);
queue depth and busy slots are read from the engines at scrape time, so they are always
current. docs/api.md lists every metric (a test checks it against /metrics).
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
