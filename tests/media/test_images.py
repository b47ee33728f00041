"""/v1/images/generations with a tiny random diffusers pipeline built by the tests."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.media

FAST = {"steps": 2}


def decode_png(data: str) -> Image.Image:
    raw = base64.b64decode(data)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(raw))
    image.load()
    return image


def test_generates_pngs_of_the_requested_size_that_record_their_settings(openai_client):
    response = openai_client.images.generate(
        prompt="a cat on the mat",
        model="dall-e-2",
        size="64x96",
        n=2,
        response_format="b64_json",
        extra_body={"steps": 3, "cfg_scale": 5.5, "seed": 1234, "negative_prompt": "blurry"},
    )
    assert len(response.data) == 2
    images = [decode_png(item.b64_json) for item in response.data]
    for index, image in enumerate(images):
        assert image.format == "PNG" and image.size == (64, 96)
        info = image.text
        assert info["prompt"] == "a cat on the mat"
        assert info["negative_prompt"] == "blurry"
        assert (info["steps"], info["cfg_scale"], info["size"]) == ("3", "5.5", "64x96")
        assert info["seed"] == str(1234 + index)
        assert info["model"] == "tiny-sd"
        assert "Seed: " + str(1234 + index) in info["parameters"]
    assert images[0].tobytes() != images[1].tobytes()


def test_url_format_is_a_data_url_and_a_seed_reproduces_the_image(openai_client):
    def generate(response_format):
        return openai_client.images.generate(
            prompt="a cat", size="64x64", response_format=response_format, extra_body={**FAST, "seed": 7}
        ).data[0]

    url = generate("url").url
    assert url.startswith("data:image/png;base64,")
    first = decode_png(url.removeprefix("data:image/png;base64,"))
    second = decode_png(generate("b64_json").b64_json)
    assert first.size == (64, 64)
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"size": "65x64"}, "size"),
        ({"size": "64"}, "size"),
        ({"size": "big"}, "size"),
        ({"size": "6²x64"}, "size"),  # isdigit() says yes, int() says no
        ({"size": "６４x64"}, "size"),
        ({"size": "-64x64"}, "size"),
        ({"size": "4096x4096"}, "size"),
        ({"size": "32x32"}, "size"),
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"steps": 0}, "steps"),
        ({"response_format": "jpeg"}, "response_format"),
        ({"prompt": ""}, "prompt"),
    ],
)
def test_bad_requests_are_400(media_server, auth, body, param):
    payload = {"prompt": "a cat", **FAST, **body}
    response = requests.post(
        f"{media_server.api_url}/images/generations", json=payload, headers=auth, timeout=60
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_unknown_image_model_is_404(media_server, auth):
    response = requests.post(
        f"{media_server.api_url}/images/generations",
        headers=auth,
        timeout=60,
        json={"prompt": "a cat", "model": "no-such-model"},
    )
    assert response.status_code == 404


def test_without_an_image_model_the_answer_is_503_saying_how_to_configure_one(media_app):
    client = media_app().test_client()
    response = client.post("/v1/images/generations", json={"prompt": "a cat"})
    assert response.status_code == 503
    assert "--image-model" in response.get_json()["error"]["message"]
