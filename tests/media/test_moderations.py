"""/v1/moderations: the embedding-similarity heuristic, in OpenAI's shape."""

from __future__ import annotations

import pytest
import requests

from modules.engines.media.moderation import CATEGORIES

pytestmark = pytest.mark.media


def test_plain_threats_are_flagged_and_small_talk_is_not(openai_client):
    response = openai_client.moderations.create(
        model="omni-moderation-latest",
        input=["I am going to stab you to death tonight.", "What a lovely day for a picnic."],
    )
    assert response.model == "all-MiniLM-L6-v2"
    threat, small_talk = response.results
    assert threat.flagged
    assert threat.categories.violence or threat.categories.harassment_threatening
    assert threat.category_scores.violence > small_talk.category_scores.violence
    assert not small_talk.flagged
    assert not any(small_talk.categories.model_dump().values())


def test_every_openai_category_is_scored(media_server, auth):
    body = requests.post(
        f"{media_server.api_url}/moderations",
        headers=auth,
        timeout=60,
        json={"input": [{"type": "text", "text": "I want to end my life."}]},
    ).json()
    assert body["id"].startswith("modr-")
    (result,) = body["results"]
    assert set(result["categories"]) == set(result["category_scores"]) == set(CATEGORIES)
    assert all(0.0 <= score <= 1.0 for score in result["category_scores"].values())
    assert result["flagged"] and result["categories"]["self-harm/intent"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": ""}, 400),
        ({"input": []}, 400),
        ({"input": 3}, 400),
        ({"input": [{"type": "image_url", "image_url": {"url": "data:,"}}]}, 400),
        ({"input": "hello", "model": "no-such-model"}, 404),
    ],
)
def test_bad_requests(media_server, auth, body, status):
    response = requests.post(f"{media_server.api_url}/moderations", json=body, headers=auth, timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
