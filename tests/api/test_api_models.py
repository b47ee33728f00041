"""GET /v1/models, /v1/models/{id} and the legacy /v1/engines, with the official client."""

from __future__ import annotations

import openai
import pytest
import requests
from openai_schemas import validator


def test_list_has_every_model_loaded_first_in_openai_shape(api, client):
    page = client.models.list()
    text = [m.id for m in page.data if m.kind == "text"]  # media models (docs/media.md) follow
    assert sorted(text) == ["SmolLM2-135M-Instruct", "Tiny Two Instruct", "tiny"]
    assert all(m.object == "model" and m.owned_by == "hearth" and m.created > 0 for m in page.data)
    raw = requests.get(api.api_url + "/models", timeout=10).json()
    validator("ListModelsResponse").validate(raw)
    loaded = [m["loaded"] for m in raw["data"]]
    assert "tiny" in [m["id"] for m in raw["data"] if m["loaded"]]  # --model tiny loads at start
    assert loaded == sorted(loaded, reverse=True), "loaded models come first"


def test_retrieve_by_id_with_spaces(api, client):
    model = client.models.retrieve("Tiny Two Instruct")
    assert model.id == "Tiny Two Instruct" and model.object == "model"
    raw = requests.get(api.api_url + "/models/Tiny%20Two%20Instruct", timeout=10)
    assert raw.status_code == 200
    validator("Model").validate(raw.json())


def test_retrieve_unknown_is_not_found_naming_the_models(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    error = caught.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "tiny" in error["message"] and "Tiny Two Instruct" in error["message"]


def test_using_a_model_loads_it_and_lists_it_first(api, client):
    client.completions.create(model="Tiny Two Instruct", prompt="Hi", max_tokens=1)
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "Tiny Two Instruct"
    loaded = requests.get(api.api_url + "/models", timeout=10).json()["data"]
    assert [m["loaded"] for m in loaded[:2]] == [True, True]


def test_legacy_engines(api):
    listing = requests.get(api.api_url + "/engines", timeout=10).json()
    assert listing["object"] == "list"
    assert {e["id"] for e in listing["data"]} >= {"tiny", "Tiny Two Instruct", "SmolLM2-135M-Instruct"}
    assert all(e["object"] == "engine" and e["ready"] for e in listing["data"])
    one = requests.get(api.api_url + "/engines/tiny", timeout=10)
    assert one.status_code == 200 and one.json()["id"] == "tiny"
    assert requests.get(api.api_url + "/engines/nope", timeout=10).status_code == 404
