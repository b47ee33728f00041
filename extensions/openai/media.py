"""The media endpoints: embeddings, moderations, images, speech-to-text and text-to-speech.

`ROUTES` are rows of the API's endpoint table (api.py turns each into an `Endpoint`), so
the API-key check, CORS, request logging, the OpenAI-shaped errors and /openapi.json
cover them like every other endpoint. Handlers turn a request into plain engine
parameters once, wait for the model's worker thread through a mailer channel (never
blocking gevent's loop), and map the result back to OpenAI's shapes. docs/media.md says
what Hearth chose where OpenAI's API is silent.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from modules.app import services
from modules.engines.media import manager as kinds
from modules.engines.media.codec import FORMATS
from modules.errors import InvalidRequest, PayloadTooLarge

from .http import json_response, read_json, validate

MAX_EMBEDDING_INPUTS = 2048  # OpenAI's limit per request
EMBEDDING_CHUNK = 256  # inputs per worker job, so one huge request does not hold a model long
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit for audio uploads
MAX_SPEECH_CHARS = 4096  # OpenAI's limit


def _field(default: Any = None, description: str = "", **constraints: Any) -> Any:
    return Field(default, description=description, **constraints)


class MediaRequest(BaseModel):
    # As the API's other requests: strict types, and OpenAI's fields that Hearth has no use
    # for (user, quality, style, instructions, ...) are accepted and ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class MediaResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Embeddings -----------------------------------------------------------------------------------


class EmbeddingsRequest(MediaRequest):
    input: Any = Field(
        ...,
        description="A string, a list of strings, a list of token ids (the "
        f"embedding model's own) or a list of such lists; at most {MAX_EMBEDDING_INPUTS}.",
    )
    model: str | None = _field(None, "Embedding model id (OpenAI's names map to the default).")
    encoding_format: Literal["float", "base64"] = _field("float", "base64: little-endian float32.")
    dimensions: int | None = _field(None, "Keep the first N dimensions, scaled back to unit length.", ge=1)


class Embedding(MediaResponse):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(MediaResponse):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(MediaResponse):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    )


def embedding_inputs(value: Any) -> list[str] | list[list[int]]:
    """A string, strings, token ids or lists of token ids -> a list of strings or id lists."""
    if isinstance(value, str) or (isinstance(value, list) and value and _is_ids(value)):
        value = [value]
    if not isinstance(value, list) or not (
        all(isinstance(item, str) for item in value) or all(_is_ids(item) for item in value)
    ):
        raise InvalidRequest(
            "'input' must be a string, a list of strings, a list of token ids or a list of token-id lists.",
            param="input",
        )
    if not value:
        raise InvalidRequest("'input' is empty; send a string or a list of strings.", param="input")
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(
            f"'input' holds {len(value)} items; the limit is {MAX_EMBEDDING_INPUTS} per request.",
            param="input",
        )
    for index, item in enumerate(value):
        if not item or (isinstance(item, str) and not item.strip()):
            raise InvalidRequest(f"input[{index}] is empty.", param="input")
    return value


def _check_dimensions(dimensions: int | None, available: int) -> None:
    if dimensions is not None and dimensions > available:
        raise InvalidRequest(
            f"'dimensions' is {dimensions}, but this model's embeddings have {available}.", param="dimensions"
        )


def _truncate(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` components, scaled back to unit length."""
    if dimensions is None:
        return vectors
    _check_dimensions(dimensions, vectors.shape[1])
    cut = vectors[:, :dimensions]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)


def _encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


def embeddings() -> Response:
    body = read_json(EmbeddingsRequest)
    inputs = embedding_inputs(body.input)
    media = services().media
    spec = media.find(kinds.EMBEDDING, body.model)
    worker = media.worker(spec)
    is_text = isinstance(inputs[0], str)
    vectors, tokens = [], 0
    for start in range(0, len(inputs), EMBEDDING_CHUNK):
        chunk = inputs[start : start + EMBEDDING_CHUNK]

        def run(model, chunk=chunk):
            _check_dimensions(body.dimensions, model.dimensions)  # before the work, not after
            return model.embed_texts(chunk) if is_text else model.embed_token_ids(chunk)

        result = worker.call(run)
        vectors.append(result.vectors)
        tokens += result.tokens
    matrix = _truncate(np.concatenate(vectors), body.dimensions)
    # Built without validation: checking 32 x 384 floats again took as long as sending them
    # (9 ms a batch); the values are the model's own floats and the shape is built here.
    data = [
        Embedding.model_construct(
            object="embedding", index=index, embedding=_encode_vector(vector, body.encoding_format)
        )
        for index, vector in enumerate(matrix)
    ]
    return json_response(
        EmbeddingsResponse.model_construct(
            object="list",
            data=data,
            model=spec.id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
    )


# --- Moderations ----------------------------------------------------------------------------------


class ModerationsRequest(MediaRequest):
    input: Any = Field(
        ..., description='A string, a list of strings, or a list of {"type": "text", "text": ...} parts.'
    )
    model: str | None = _field(
        None, "An embedding model id (OpenAI's moderation names map to the default embedding model)."
    )


class ModerationResult(MediaResponse):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationsResponse(MediaResponse):
    id: str
    model: str
    results: list[ModerationResult]


def moderation_inputs(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    texts = []
    for item in items or ():
        if isinstance(item, dict) and item.get("type") == "image_url":
            raise InvalidRequest("Images cannot be moderated here; send text.", param="input")
        if isinstance(item, dict) and item.get("type") == "text":
            item = item.get("text")
        if not isinstance(item, str):
            items = None
            break
        texts.append(item)
    if items is None:
        raise InvalidRequest(
            "'input' must be a string, a list of strings or a list of text parts.", param="input"
        )
    if not texts or not all(text.strip() for text in texts):
        raise InvalidRequest("'input' is empty; send a string or a list of strings.", param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(
            f"'input' holds {len(texts)} items; the limit is {MAX_EMBEDDING_INPUTS}.", param="input"
        )
    return texts


def moderations() -> Response:
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
    return json_response(
        ModerationsResponse(
            id=f"modr-{uuid.uuid4().hex}",
            model=spec.id,
            results=[
                ModerationResult(
                    flagged=result.flagged,
                    categories=result.categories,
                    category_scores={name: round(score, 6) for name, score in result.scores.items()},
                    category_applied_input_types={name: ["text"] for name in result.categories},
                )
                for result in results
            ],
        )
    )


# --- Images ------------------------------------------------------------------------------------------


class ImagesRequest(MediaRequest):
    prompt: Annotated[str, Field(min_length=1, max_length=32000, description="What to draw.")]
    model: str | None = _field(None, "Image model id (dall-e-2, dall-e-3, gpt-image-1 map to it).")
    n: int = _field(1, "Images to generate (1-10).", ge=1, le=10)
    size: str = _field("512x512", "WIDTHxHEIGHT: multiples of 8 from 64 to 2048.")
    response_format: Literal["b64_json", "url"] = _field("url", "url is a data: URL of the PNG.")
    steps: int = _field(20, "Denoising steps (1-150).", ge=1, le=150)
    cfg_scale: float = _field(7.0, "Classifier-free guidance scale (0-30).", ge=0, le=30)
    seed: int | None = _field(
        None, "Seed of the first image; image i uses seed + i (default: random).", ge=0, lt=2**32
    )
    negative_prompt: str = _field("", "What the image should not show.")


class ImageData(MediaResponse):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str
    seed: int


class ImagesResponse(MediaResponse):
    created: int
    data: list[ImageData]


def image_generations() -> Response:
    from modules.engines.media.images import ImageRequest, parse_size

    body = read_json(ImagesRequest)
    width, height = parse_size(body.size)
    media = services().media
    spec = media.find(kinds.IMAGE, body.model)
    params = ImageRequest(
        prompt=body.prompt,
        width=width,
        height=height,
        n=body.n,
        steps=body.steps,
        cfg_scale=body.cfg_scale,
        seed=body.seed,
        negative_prompt=body.negative_prompt,
    )
    images = media.worker(spec).call(lambda model: model.generate(params))
    data = []
    for image in images:
        encoded = base64.b64encode(image.png).decode("ascii")
        where = (
            {"b64_json": encoded}
            if body.response_format == "b64_json"
            else {"url": f"data:image/png;base64,{encoded}"}
        )
        data.append(ImageData(**where, revised_prompt=body.prompt, seed=image.seed))
    return json_response(ImagesResponse(created=int(time.time()), data=data))


# --- Speech-to-text ---------------------------------------------------------------------------------


class TranscriptionForm(BaseModel):
    """The multipart form's fields (strings on the wire, hence not strict)."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    temperature: Annotated[float, Field(ge=0, le=1)] = 0.0
    timestamp_granularities: list[Literal["word", "segment"]] = ["segment"]


def _upload() -> tuple[bytes, TranscriptionForm]:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"The upload is {request.content_length} bytes; the limit is {MAX_UPLOAD_BYTES}."
        )
    request.max_content_length = MAX_UPLOAD_BYTES + 64 * 1024
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest("Send the audio as multipart/form-data with a 'file' field.", param="file")
    upload = request.files.get("file")
    if upload is None:
        raise InvalidRequest("Missing required field 'file' (the audio to transcribe).", param="file")
    data = upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"The upload is larger than the limit of {MAX_UPLOAD_BYTES} bytes.")
    if not data:
        raise InvalidRequest("The uploaded file is empty.", param="file")
    form: dict[str, Any] = {key: value for key, value in request.form.items() if value != ""}
    granularities = request.form.getlist("timestamp_granularities[]") or request.form.getlist(
        "timestamp_granularities"
    )
    if granularities:
        form["timestamp_granularities"] = granularities
    return data, validate(TranscriptionForm, form)


def _transcribe(task: str) -> Response:
    from modules.engines.media.transcription import TranscriptionRequest, to_srt, to_vtt

    audio, form = _upload()
    media = services().media
    spec = media.find(kinds.TRANSCRIPTION, form.model)
    words = "word" in form.timestamp_granularities and form.response_format == "verbose_json"
    params = TranscriptionRequest(
        audio=audio,
        task=task,
        language=form.language,
        prompt=form.prompt,
        temperature=form.temperature,
        word_timestamps=words,
    )
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
        return jsonify({"text": transcript.text, "usage": usage})
    verbose = {
        "task": transcript.task,
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [
            {key: value for key, value in vars(segment).items() if key != "words"}
            | {"tokens": list(segment.tokens)}
            for segment in transcript.segments
        ],
        "usage": usage,
    }
    if words:
        verbose["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end}
            for segment in transcript.segments
            for w in segment.words
        ]
    return jsonify(verbose)


def transcriptions() -> Response:
    return _transcribe("transcribe")


def translations() -> Response:
    return _transcribe("translate")


# --- Text-to-speech -----------------------------------------------------------------------------------


class SpeechRequest(MediaRequest):
    input: Annotated[str, Field(min_length=1, max_length=MAX_SPEECH_CHARS, description="The text to speak.")]
    model: str | None = _field(None, "tts-1, tts-1-hd, gpt-4o-mini-tts, or a voice id.")
    voice: str | None = _field(
        None, "An installed voice id; OpenAI's voices (alloy, ...) use the default voice."
    )
    response_format: Literal["mp3", "opus", "wav", "flac", "pcm"] = _field(
        "mp3", "pcm: raw 16-bit little-endian mono at 24 kHz."
    )
    speed: float = _field(1.0, "0.25 to 4.0.", ge=0.25, le=4.0)
    stream_format: Literal["audio"] = _field("audio", "Only audio (no server-sent events).")


def speech() -> Response:
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


# --- The table -----------------------------------------------------------------------------------------


def model_cards() -> list[dict]:
    """/v1/models entries for the media models (a source of ApiState.model_sources)."""
    return services().media.catalog()


@dataclass(frozen=True)
class Route:
    """One endpoint; the same fields as api.Endpoint, which each row becomes."""

    method: str
    path: str
    view: Callable[..., Response]
    summary: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    stream: type[BaseModel] | None = None
    access: Literal["public", "key", "admin"] = "key"


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/embeddings",
        embeddings,
        "Embed texts or token ids with a sentence-transformers model.",
        request=EmbeddingsRequest,
        response=EmbeddingsResponse,
    ),
    Route(
        "POST",
        "/v1/moderations",
        moderations,
        "Flag harmful text by embedding similarity (a heuristic, not a trained classifier).",
        request=ModerationsRequest,
        response=ModerationsResponse,
    ),
    Route(
        "POST",
        "/v1/images/generations",
        image_generations,
        "Generate PNG images with the local diffusers pipeline (--image-model).",
        request=ImagesRequest,
        response=ImagesResponse,
    ),
    Route(
        "POST",
        "/v1/audio/transcriptions",
        transcriptions,
        "Speech to text (multipart: file, model, language, prompt, response_format, "
        "temperature, timestamp_granularities[]).",
        response=None,
    ),
    Route(
        "POST",
        "/v1/audio/translations",
        translations,
        "Speech to English text (multipart, as transcriptions).",
        response=None,
    ),
    Route(
        "POST",
        "/v1/audio/speech",
        speech,
        "Text to speech, streamed as it is synthesized.",
        request=SpeechRequest,
    ),
)
