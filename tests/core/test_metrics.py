"""/metrics: Prometheus text that parses, and counts what happened."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from modules.engines.base import GenerationRequest, SamplingParams


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_generations_tokens_and_requests(app, client):
    engine = app.extensions["hearth"].models.engine("tiny")
    results = [
        engine.generate(GenerationRequest("Hello there", SamplingParams(max_tokens=n))).collect()
        for n in (3, 5, 7)
    ]
    generation = engine.generate(GenerationRequest("Hello", SamplingParams(max_tokens=400)))
    next(generation)
    busy = scrape(client)
    assert busy[("hearth_busy_slots", (("model", "tiny"),))] == 1
    generation.close()
    client.get("/health")
    samples = scrape(client)
    model = (("model", "tiny"),)
    assert samples[("hearth_generated_tokens_total", model)] >= 15
    assert samples[("hearth_prompt_tokens_total", model)] >= sum(r.usage.prompt_tokens for r in results)
    assert samples[("hearth_generations_total", (("finish_reason", "length"), ("model", "tiny")))] == 3
    assert samples[("hearth_time_to_first_token_seconds_count", model)] >= 3
    assert samples[("hearth_generation_tokens_per_second_count", model)] >= 3
    assert samples[("hearth_slots", model)] == app.extensions["hearth"].settings.parallel
    assert samples[("hearth_queue_depth", model)] == 0
    health = (("endpoint", "/health"), ("method", "GET"), ("status", "200"))
    assert samples[("hearth_http_requests_total", health)] == 1


def test_a_cancelled_generation_frees_its_slot_at_once(app, client):
    engine = app.extensions["hearth"].models.engine("tiny")
    generation = engine.generate(GenerationRequest("Hello", SamplingParams(max_tokens=400)))
    next(generation)
    generation.close()
    import time

    deadline = time.monotonic() + 0.1
    while scrape(client)[("hearth_busy_slots", (("model", "tiny"),))] != 0:
        assert time.monotonic() < deadline, "the slot must be free within 100 ms"
