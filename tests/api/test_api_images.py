"""Image input on a model with a projector: the tiny test model and a projector generated for
it (tests/tiny_projector.py), found beside it as users place one. Answers are meaningless
(random weights) but deterministic, and the whole path runs: the projector pairs and loads,
images are counted in the usage, the same image gives the same answer and another a
different one, the next turn reuses the image from the cache, every protocol takes images,
and bad images are a 400 that harms nothing else."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
from api_helpers import assert_openai_error, post
from tiny_model import write_tiny_model
from tiny_projector import write_tiny_projector

TINY_EMBD = 64


def png(seed: int, size: tuple[int, int] = (96, 80)) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def huge_png(width: int, height: int) -> bytes:
    """A small file whose header says width x height (nothing behind it is decoded)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    ihdr = struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + ihdr + end


def ask(image_urls, text="What is in this picture?", **fields) -> dict:
    content = [{"type": "text", "text": text}] + [
        {"type": "image_url", "image_url": {"url": url}} for url in image_urls
    ]
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 8, "seed": 5, **fields}


@pytest.fixture(scope="module")
def vision_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vision")
    write_tiny_model(folder / "tiny-vision.gguf", name="tiny vision")
    write_tiny_projector(folder / "mmproj-tiny-vision.gguf", TINY_EMBD)
    return folder


@pytest.fixture(scope="module")
def vision(start_api, vision_models):
    return start_api(models=vision_models, model="tiny-vision")


def test_the_projector_is_paired_and_not_a_model(vision):
    models = requests.get(f"{vision.api_url}/models", timeout=30).json()["data"]
    [card] = [m for m in models if m["id"] == "tiny-vision"]
    assert card["input_modalities"] == ["text", "image"]
    assert not any("mmproj" in m["id"] for m in models)


def test_the_chat_completions_example(vision):
    """text-generation-webui's documented request, with a base64 image."""
    image = post(vision, "/v1/chat/completions", ask([data_url(png(1))])).json()
    text = post(vision, "/v1/chat/completions", ask([])).json()
    assert image["choices"][0]["message"]["content"]
    assert image["usage"]["prompt_tokens"] >= text["usage"]["prompt_tokens"] + 16  # the image's tokens


def test_the_official_client(vision):
    import openai

    client = openai.OpenAI(base_url=vision.api_url, api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="tiny-vision",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Please describe what you see in this image."},
                    {"type": "image_url", "image_url": {"url": data_url(png(1), "png")}},
                ],
            }
        ],
        max_tokens=8,
    )
    assert reply.choices[0].message.content and reply.usage.prompt_tokens > 16


def test_the_completions_example_with_two_markers(vision):
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "About image <__media__> and image <__media__>, the first one"},
                    {"type": "image_url", "image_url": {"url": data_url(png(1))}},
                    {"type": "image_url", "image_url": {"url": data_url(png(2))}},
                ],
            }
        ],
        "max_tokens": 8,
        "seed": 1,
    }
    one = post(vision, "/v1/completions", body).json()
    assert one["choices"][0]["text"] and one["usage"]["prompt_tokens"] > 32
    body["messages"][0]["content"].pop()  # two markers, one image
    error = assert_openai_error(post(vision, "/v1/completions", body), 400)
    assert "markers" in error["message"]


def test_same_image_same_answer_other_image_other_answer(vision):
    first = post(vision, "/v1/chat/completions", ask([data_url(png(1))], temperature=1)).json()
    again = post(vision, "/v1/chat/completions", ask([data_url(png(1))], temperature=1)).json()
    other = post(vision, "/v1/chat/completions", ask([data_url(png(7))], temperature=1)).json()
    answer = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == answer
    assert other["choices"][0]["message"]["content"] != answer
    # the second time the whole prompt but its last tokens came from the cache, image included
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= again["usage"]["prompt_tokens"] - 4


def test_several_images_and_jpeg_gif_webp(vision):
    from PIL import Image

    urls = []
    for kind in ("jpeg", "gif", "webp"):
        out = io.BytesIO()
        Image.open(io.BytesIO(png(3))).save(out, format=kind.upper())
        urls.append(data_url(out.getvalue(), kind))
    raw = base64.b64encode(png(4)).decode()  # plain base64, no data: URL
    reply = post(vision, "/v1/chat/completions", ask([*urls, raw]))
    assert reply.status_code == 200, reply.text


def test_the_responses_api_and_messages_take_images(vision):
    image = data_url(png(1))
    responses = post(
        vision,
        "/v1/responses",
        {
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": image},
                    ],
                }
            ],
            "max_output_tokens": 4,
        },
    )
    assert responses.status_code == 200, responses.text
    assert responses.json()["usage"]["input_tokens"] > 16
    messages = post(
        vision,
        "/v1/messages",
        {
            "model": "tiny-vision",
            "max_tokens": 4,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": image.split(",")[1],
                            },
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        },
    )
    assert messages.status_code == 200, messages.text
    assert messages.json()["usage"]["input_tokens"] > 16


def test_a_marker_typed_by_a_user_places_no_image(vision):
    body = ask([], text="Is <__media__> an image?")
    assert post(vision, "/v1/chat/completions", body).status_code == 200


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("data:image/png;base64,not-base64!!", "base64"),
        (data_url(b"just some text, not a PNG"), "cannot be read"),
        (data_url(huge_png(20000, 20000)), "more pixels than the limit"),
        (data_url(huge_png(8000, 8000)), "8000x8000"),
        ("https://example.com/cat.png", "does not fetch"),
        ("file:///etc/passwd", "file:"),
        ("data:text/plain;base64,aGVsbG8=", "data:image"),
    ],
)
def test_bad_images_are_400_naming_the_part(vision, url, words):
    error = assert_openai_error(post(vision, "/v1/chat/completions", ask([url])), 400)
    assert error["param"] == "messages.0.content.1" and words in error["message"], error


def test_too_many_images(vision):
    error = assert_openai_error(post(vision, "/v1/chat/completions", ask([data_url(png(1))] * 9)), 400)
    assert "Too many images" in error["message"] and error["param"] == "messages.0.content.9"


def test_after_all_that_it_still_answers(vision):
    assert post(vision, "/v1/chat/completions", ask([data_url(png(1))])).status_code == 200


def test_remote_urls_when_allowed_never_reach_this_machine(start_api, vision_models):
    server = start_api("--allow-remote-images", models=vision_models, model="tiny-vision")
    for url in (
        f"{server.api_base}/health",
        "http://127.0.0.1:1/x.png",
        "http://localhost/x.png",
        "http://[::1]/x.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data",
    ):
        error = assert_openai_error(post(server, "/v1/chat/completions", ask([url])), 400)
        assert "private or local address" in error["message"], (url, error)


def test_mmproj_names_a_projector_kept_elsewhere(start_api, tmp_path_factory, vision_models):
    """--mmproj, for the --model: the projector need not sit beside the model."""
    models, elsewhere = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("elsewhere")
    write_tiny_model(models / "plain.gguf")
    projector = write_tiny_projector(elsewhere / "vision.gguf", TINY_EMBD, kind="mlp")
    server = start_api("--mmproj", str(projector), models=models, model="plain")
    reply = post(server, "/v1/chat/completions", ask([data_url(png(1))]))
    assert reply.status_code == 200 and reply.json()["usage"]["prompt_tokens"] > 64  # mlp: 64 tokens


def test_a_projector_that_does_not_fit_leaves_the_model_reading_text(start_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mismatch")
    write_tiny_model(folder / "tiny.gguf")
    write_tiny_projector(folder / "mmproj-tiny.gguf", 576)  # made for another model's width
    server = start_api(models=folder, model="tiny")
    assert post(server, "/v1/chat/completions", ask([])).status_code == 200
    error = assert_openai_error(post(server, "/v1/chat/completions", ask([data_url(png(1))])), 400)
    assert "reads text only" in error["message"]
    assert "not used" in server.log()


def test_a_load_names_a_projector_in_the_model_folder(start_api, tmp_path_factory):
    folder = tmp_path_factory.mktemp("load-args")
    write_tiny_model(folder / "one.gguf")
    write_tiny_model(folder / "two.gguf", seed=1)  # two models: nothing is paired by itself
    (folder / "projectors").mkdir()
    write_tiny_projector(folder / "projectors" / "for-one.gguf", TINY_EMBD)
    server = start_api("--admin-key", "admin", models=folder, model="one")
    admin = {"Authorization": "Bearer admin"}
    assert_openai_error(post(server, "/v1/chat/completions", ask([data_url(png(1))])), 400)
    for bad in ("../../etc/passwd", "/etc/hostname", "projectors/missing.gguf"):
        body = {"model_name": "one", "args": {"mmproj": bad}}
        error = assert_openai_error(post(server, "/v1/internal/model/load", body, headers=admin), 400)
        assert error["param"] == "args.mmproj"
    body = {"model_name": "one", "args": {"mmproj": "projectors/for-one.gguf"}}
    assert post(server, "/v1/internal/model/load", body, headers=admin).status_code == 200
    assert post(server, "/v1/chat/completions", ask([data_url(png(1))])).status_code == 200
