"""The media endpoints: embeddings, moderations, images, speech-to-text and text-to-speech.

A child blueprint of the API's, so the API-key check and the OpenAI-shaped errors cover
it. Handlers turn a request into plain engine parameters once, wait for the model's worker
thread through a mailer channel (never blocking gevent's loop), and map the result back to
OpenAI's shapes. See docs/media.md for the choices made where OpenAI's API is silent.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import numpy as np
from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from modules.app import services
from modules.engines.media import manager as media_manager
from modules.engines.media.codec import FORMATS
from modules.errors import InvalidRequest, PayloadTooLarge

from .http import admin_only, read_json, validate

blueprint = Blueprint("media", __name__, url_prefix="/v1")

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request
EMBEDDING_CHUNK = 256  # inputs per worker job, so one huge request does not hold a model long
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit for audio uploads
MAX_SPEECH_CHARS = 4096


class _Request(BaseModel):
    # OpenAI keeps adding optional fields (user, quality, style, instructions, ...);
    # the ones Hearth has no use for are accepted and ignored.
    model_config = ConfigDict(extra="ignore")


# --- Embeddings -----------------------------------------------------------------------------------

class EmbeddingsRequest(_Request):
    input: Any  # checked by embedding_inputs, whose errors say what is accepted
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value)


def embedding_inputs(value: Any) -> list[str] | list[list[int]]:
    """A string, strings, token ids or lists of token ids -> a list of strings or id lists."""
    if isinstance(value, str) or (isinstance(value, list) and value and _is_ids(value)):
        value = [value]
    if not isinstance(value, list) or not (all(isinstance(item, str) for item in value)
                                           or all(_is_ids(item) for item in value)):
        raise InvalidRequest("'input' must be a string, a list of strings, a list of token ids "
                             "or a list of token-id lists.", param="input")
    if not value:
        raise InvalidRequest("'input' is empty; send a string or a list of strings.", param="input")
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"'input' holds {len(value)} items; the limit is "
                             f"{MAX_EMBEDDING_INPUTS} per request.", param="input")
    for index, item in enumerate(value):
        if not item or (isinstance(item, str) and not item.strip()):
            raise InvalidRequest(f"input[{index}] is empty.", param="input")
    return value


def _check_dimensions(dimensions: int | None, available: int) -> None:
    if dimensions is not None and dimensions > available:
        raise InvalidRequest(f"'dimensions' is {dimensions}, but this model's embeddings have "
                             f"{available}.", param="dimensions")


def _truncate(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components, scaled back to unit length."""
    if dimensions is None:
        return vectors
    _check_dimensions(dimensions, vectors.shape[1])
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.maximum(norms, 1e-12)


def _encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


@blueprint.post("/embeddings")
def embeddings():
    body = read_json(EmbeddingsRequest)
    inputs = embedding_inputs(body.input)
    media = services().media
    spec = media.find(media_manager.EMBEDDING, body.model)
    worker = media.worker(spec)
    is_text = isinstance(inputs[0], str)
    vectors, tokens = [], 0
    for start in range(0, len(inputs), EMBEDDING_CHUNK):
        chunk = inputs[start:start + EMBEDDING_CHUNK]

        def run(model, chunk=chunk):
            _check_dimensions(body.dimensions, model.dimensions)  # before the work, not after
            return model.embed_texts(chunk) if is_text else model.embed_token_ids(chunk)

        result = worker.call(run)
        vectors.append(result.vectors)
        tokens += result.tokens
    matrix = np.concatenate(vectors)
    matrix = _truncate(matrix, body.dimensions)
    data = [{"object": "embedding", "index": index,
             "embedding": _encode_vector(vector, body.encoding_format)}
            for index, vector in enumerate(matrix)]
    return jsonify(object="list", data=data, model=spec.id,
                   usage={"prompt_tokens": tokens, "total_tokens": tokens})


# --- Moderations ----------------------------------------------------------------------------------

class ModerationsRequest(_Request):
    input: Any  # a string, strings, or OpenAI's [{"type": "text", "text": ...}] parts
    model: str | None = None


def moderation_inputs(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        items = None
    texts = []
    for item in items or ():
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            item = item["text"]
        elif isinstance(item, dict) and item.get("type") == "image_url":
            raise InvalidRequest("Images cannot be moderated here; send text.", param="input")
        if not isinstance(item, str):
            items = None
            break
        texts.append(item)
    if items is None:
        raise InvalidRequest("'input' must be a string, a list of strings or a list of text "
                             "parts.", param="input")
    if not texts or not all(text.strip() for text in texts):
        raise InvalidRequest("'input' is empty; send a string or a list of strings.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"'input' holds {len(texts)} items; the limit is "
                             f"{MAX_EMBEDDING_INPUTS}.", param="input")
    return texts


@blueprint.post("/moderations")
def moderations():
    from modules.engines.media.moderation import category_matrix, moderate

    body = read_json(ModerationsRequest)
    texts = moderation_inputs(body.input)
    media = services().media
    spec = media.moderation_model(body.model)

    def run(model):
        if "moderation" not in model.cache:
            model.cache["moderation"] = category_matrix(lambda t: model.embed_texts(t).vectors)
        owners, descriptions = model.cache["moderation"]
        return moderate(model.embed_texts(texts).vectors, owners, descriptions)

    results = media.worker(spec).call(run)
    return jsonify(id=f"modr-{uuid.uuid4().hex}", model=spec.id, results=[{
        "flagged": result.flagged,
        "categories": result.categories,
        "category_scores": {name: round(score, 6) for name, score in result.scores.items()},
        "category_applied_input_types": {name: ["text"] for name in result.categories},
    } for result in results])


# --- Images ------------------------------------------------------------------------------------------

class ImagesRequest(_Request):
    prompt: Annotated[str, Field(min_length=1, max_length=32000)]
    model: str | None = None
    n: Annotated[int, Field(ge=1, le=10)] = 1
    size: str = "512x512"
    response_format: Literal["b64_json", "url"] = "url"
    steps: Annotated[int, Field(ge=1, le=150)] = 20
    cfg_scale: Annotated[float, Field(ge=0, le=30)] = 7.0
    seed: Annotated[int, Field(ge=0, lt=2**32)] | None = None
    negative_prompt: str = ""


@blueprint.post("/images/generations")
def image_generations():
    from modules.engines.media.images import ImageRequest, parse_size

    body = read_json(ImagesRequest)
    width, height = parse_size(body.size)
    media = services().media
    spec = media.find(media_manager.IMAGE, body.model)
    params = ImageRequest(prompt=body.prompt, width=width, height=height, n=body.n,
                          steps=body.steps, cfg_scale=body.cfg_scale, seed=body.seed,
                          negative_prompt=body.negative_prompt)
    images = media.worker(spec).call(lambda model: model.generate(params))
    data = []
    for image in images:
        encoded = base64.b64encode(image.png).decode("ascii")
        item = ({"b64_json": encoded} if body.response_format == "b64_json"
                else {"url": f"data:image/png;base64,{encoded}"})
        data.append({**item, "revised_prompt": body.prompt, "seed": image.seed})
    return jsonify(created=int(time.time()), data=data)


# --- Speech-to-text ---------------------------------------------------------------------------------

class TranscriptionForm(_Request):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    temperature: Annotated[float, Field(ge=0, le=1)] = 0.0
    timestamp_granularities: list[Literal["word", "segment"]] = ["segment"]


def _upload() -> tuple[bytes, TranscriptionForm]:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The upload is {request.content_length} bytes; the limit is "
                              f"{MAX_UPLOAD_BYTES}.")
    request.max_content_length = MAX_UPLOAD_BYTES + 64 * 1024
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest("Send the audio as multipart/form-data with a 'file' field.",
                             param="file")
    upload = request.files.get("file")
    if upload is None:
        raise InvalidRequest("Missing required field 'file' (the audio to transcribe).",
                             param="file")
    data = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The upload is larger than the limit of {MAX_UPLOAD_BYTES} bytes.")
    if not data:
        raise InvalidRequest("The uploaded file is empty.", param="file")
    form: dict[str, Any] = {key: value for key, value in request.form.items() if value != ""}
    granularities = request.form.getlist("timestamp_granularities[]") or request.form.getlist(
        "timestamp_granularities")
    if granularities:
        form["timestamp_granularities"] = granularities
    return data, validate(TranscriptionForm, form)


def _transcribe(task: str):
    from modules.engines.media.transcription import TranscriptionRequest, to_srt, to_vtt

    audio, form = _upload()
    media = services().media
    spec = media.find(media_manager.TRANSCRIPTION, form.model)
    words = "word" in form.timestamp_granularities and form.response_format == "verbose_json"
    params = TranscriptionRequest(audio=audio, task=task, language=form.language,
                                  prompt=form.prompt, temperature=form.temperature,
                                  word_timestamps=words)
    transcript = media.worker(spec).call(lambda model: model.transcribe(params))
    fmt = form.response_format
    if fmt == "text":
        return Response(transcript.text + "\n", mimetype="text/plain")
    if fmt == "srt":
        return Response(to_srt(transcript), mimetype="text/plain")
    if fmt == "vtt":
        return Response(to_vtt(transcript), mimetype="text/vtt")
    usage = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    if fmt == "json":
        return jsonify(text=transcript.text, usage=usage)
    verbose = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [{key: value for key, value in vars(segment).items() if key != "words"}
                     | {"tokens": list(segment.tokens)} for segment in transcript.segments],
        "usage": usage,
    }
    if words:
        verbose["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end}
                            for segment in transcript.segments for w in segment.words]
    return jsonify(verbose)


@blueprint.post("/audio/transcriptions")
def transcriptions():
    return _transcribe("transcribe")


@blueprint.post("/audio/translations")
def translations():
    return _transcribe("translate")


# --- Text-to-speech -----------------------------------------------------------------------------------

class SpeechRequest(_Request):
    input: Annotated[str, Field(min_length=1, max_length=MAX_SPEECH_CHARS)]
    model: str | None = None
    voice: str | None = None
    response_format: Literal["mp3", "opus", "wav", "flac", "pcm"] = "mp3"
    speed: Annotated[float, Field(ge=0.25, le=4.0)] = 1.0
    stream_format: Literal["audio"] = "audio"


@blueprint.post("/audio/speech")
def speech():
    from modules.engines.media.speech import SpeechRequest as Speech

    body = read_json(SpeechRequest)
    if not body.input.strip():
        raise InvalidRequest("'input' is empty.", param="input")
    media = services().media
    spec = media.voice(body.model, body.voice)
    params = Speech(text=body.input, format=body.response_format, speed=body.speed)
    chunks = media.worker(spec).stream(lambda model: model.speak(params))
    # Wait for the first chunk here, so that a failure (a model that cannot load, bad text)
    # is still answered with a status and a JSON error rather than a cut-off stream.
    try:
        first = next(chunks)
    except StopIteration:
        first = b""
    return Response(_chain(first, chunks), mimetype=FORMATS[body.response_format].content_type)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()  # the client went away: stop synthesizing


# --- Admin: listing and unloading ------------------------------------------------------------------

class UnloadRequest(_Request):
    model: str


@blueprint.get("/internal/media/models")
def list_media_models():
    return jsonify(object="list", data=services().media.catalog())


@blueprint.post("/internal/media/unload")
@admin_only
def unload_media_model():
    body = read_json(UnloadRequest)
    return jsonify(unloaded=services().media.unload(body.model))
