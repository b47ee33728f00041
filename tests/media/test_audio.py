"""/v1/audio/speech (piper) and /v1/audio/transcriptions|translations (faster-whisper), with
the real models from PyPI: what one says, the other must hear."""

from __future__ import annotations

import io
import re
import time

import av
import numpy as np
import pytest
import requests

from modules.engines.media.codec import FORMATS, PCM_RATE, AudioEncoder

pytestmark = pytest.mark.media

SENTENCE = "The quick brown fox jumps over the lazy dog."
THREE_SENTENCES = "The sun is shining today. Birds sing in the trees. We walk to the park together."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def duration(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        samples = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    return samples


@pytest.fixture(scope="module")
def spoken_wav(openai_client) -> bytes:
    return openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="wav"
    ).content


def reencode(wav: bytes, container: str, codec: str, rate: int = 48000) -> bytes:
    """The speech in another container, made with PyAV as a browser or phone would."""
    out_buffer = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(out_buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def test_speech_then_transcription_returns_the_original_sentence(openai_client, spoken_wav):
    assert spoken_wav[:4] == b"RIFF" and spoken_wav[8:12] == b"WAVE"
    assert 1.0 < duration(spoken_wav) < 10.0
    transcript = openai_client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", spoken_wav))
    assert words(transcript.text) == words(SENTENCE)


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [
        ("speech.ogg", "ogg", "libopus"),
        ("speech.webm", "webm", "libopus"),
        ("speech.flac", "flac", "flac"),
        ("speech.mp3", "mp3", "libmp3lame"),
    ],
)
def test_transcribes_every_common_container(openai_client, spoken_wav, name, container, codec):
    rate = 48000 if codec == "libopus" else 22050
    audio = reencode(spoken_wav, container, codec, rate)
    transcript = openai_client.audio.transcriptions.create(model="whisper-1", file=(name, audio))
    assert words(transcript.text) == words(SENTENCE)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav"])
def test_each_speech_format_decodes_to_the_same_length(openai_client, spoken_wav, fmt):
    audio = openai_client.audio.speech.create(
        model="tts-1", voice="nova", input=SENTENCE, response_format=fmt
    )
    assert audio.response.headers["content-type"].startswith(FORMATS[fmt].content_type)
    # piper varies phoneme lengths at random (noise_w), so two renderings differ a little
    assert duration(audio.content) == pytest.approx(duration(spoken_wav), rel=0.15)


def test_pcm_is_raw_16_bit_at_24_khz(openai_client, spoken_wav):
    pcm = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="pcm"
    ).content
    assert len(pcm) % 2 == 0
    assert len(pcm) / 2 / PCM_RATE == pytest.approx(duration(spoken_wav), rel=0.15)


def test_speed_changes_the_length(openai_client, spoken_wav):
    fast = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="wav", speed=2.0
    ).content
    # Phoneme lengths halve; piper's pauses between words shrink less.
    assert 0.4 * duration(spoken_wav) < duration(fast) < 0.7 * duration(spoken_wav)


def test_control_characters_are_not_spoken_and_never_fail(openai_client, spoken_wav):
    """A NUL once reached piper's phonemizer and was a 500 (found by tests/fuzz)."""
    noisy = SENTENCE.replace(" ", " \x00\x01\x1b ", 2)
    audio = openai_client.audio.speech.create(
        model="tts-1", voice="alloy", input=noisy, response_format="wav"
    )
    assert 0.8 * duration(spoken_wav) < duration(audio.content) < 1.3 * duration(spoken_wav)


def test_wav_streams_sentence_by_sentence(media_server, auth):
    with requests.post(
        f"{media_server.api_url}/audio/speech",
        headers=auth,
        stream=True,
        timeout=120,
        json={"input": THREE_SENTENCES, "response_format": "wav", "voice": "joe"},
    ) as response:
        assert response.status_code == 200
        assert response.headers.get("Transfer-Encoding") == "chunked"
        chunks = [chunk for chunk in response.iter_content(chunk_size=None) if chunk]
    assert len(chunks) >= 3  # at least one piece per sentence, sent as each was ready
    assert chunks[0].startswith(b"RIFF")
    assert duration(b"".join(chunks)) > 3


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("json", lambda r: words(r.json()["text"]) == words(SENTENCE)),
        (
            "text",
            lambda r: words(r.text) == words(SENTENCE) and r.headers["content-type"].startswith("text/plain"),
        ),
        ("srt", lambda r: r.text.startswith("1\n00:00:00,000 --> 00:00:0")),
        ("vtt", lambda r: r.text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:0")),
        (
            "verbose_json",
            lambda r: (
                r.json()["language"] == "en"
                and r.json()["duration"] > 1
                and words(r.json()["segments"][0]["text"]) == words(SENTENCE)
            ),
        ),
    ],
)
def test_transcription_response_formats(media_server, auth, spoken_wav, fmt, check):
    response = requests.post(
        f"{media_server.api_url}/audio/transcriptions",
        headers=auth,
        timeout=120,
        files={"file": ("speech.wav", spoken_wav)},
        data={"model": "whisper-1", "response_format": fmt, "temperature": "0"},
    )
    assert response.status_code == 200, response.text
    assert check(response), response.text


def test_word_timestamps_in_verbose_json(openai_client, spoken_wav):
    transcript = openai_client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", spoken_wav),
        response_format="verbose_json",
        timestamp_granularities=["word"],
    )
    assert [words(w.word)[0] for w in transcript.words] == words(SENTENCE)
    assert all(w.start <= w.end for w in transcript.words)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client marks translations deprecated
def test_translation_of_english_speech_is_the_english_text(openai_client, spoken_wav):
    translation = openai_client.audio.translations.create(model="whisper-1", file=("speech.wav", spoken_wav))
    assert words(translation.text) == words(SENTENCE)


def test_a_text_file_renamed_wav_is_400(media_server, auth):
    response = requests.post(
        f"{media_server.api_url}/audio/transcriptions",
        headers=auth,
        timeout=60,
        files={"file": ("notes.wav", b"These are my meeting notes.\n" * 20)},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"files": {"audio": ("a.wav", b"RIFF")}}, "file"),
        ({"json": {"file": "speech.wav"}}, "file"),
        ({"files": {"file": ("a.wav", b"")}}, "file"),
        ({"files": {"file": ("a.wav", b"x")}, "data": {"response_format": "docx"}}, "response_format"),
        ({"files": {"file": ("a.wav", b"x")}, "data": {"temperature": "7"}}, "temperature"),
    ],
)
def test_bad_uploads_are_400(media_server, auth, kwargs, param):
    response = requests.post(
        f"{media_server.api_url}/audio/transcriptions", headers=auth, timeout=60, **kwargs
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_another_language_with_an_english_only_model_is_400(media_server, auth, spoken_wav):
    response = requests.post(
        f"{media_server.api_url}/audio/transcriptions",
        headers=auth,
        timeout=60,
        files={"file": ("speech.wav", spoken_wav)},
        data={"language": "fr"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "language"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": "   "}, 400, "input"),
        ({"input": "x" * 4097}, 400, "input"),
        ({"input": "Hello.", "voice": "no-such-voice"}, 400, "voice"),
        ({"input": "Hello.", "speed": 5}, 400, "speed"),
        ({"input": "Hello.", "response_format": "aiff"}, 400, "response_format"),
        ({"input": "Hello.", "model": "no-such-model"}, 404, "model"),
    ],
)
def test_bad_speech_requests(media_server, auth, body, status, param):
    response = requests.post(f"{media_server.api_url}/audio/speech", json=body, headers=auth, timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_encoder_streams_every_format_without_seeking():
    tone = (np.sin(np.linspace(0, 2 * np.pi * 440, 22050)) * 8000).astype(np.int16)
    for fmt in FORMATS.values():
        encoder = AudioEncoder(fmt, 22050)
        pieces = [encoder.feed(tone), encoder.feed(tone), encoder.feed(tone), encoder.finish()]
        data = b"".join(pieces)
        if fmt.name == "pcm":
            assert len(data) / 2 / PCM_RATE == pytest.approx(3.0, abs=0.01)
        else:
            assert duration(data) == pytest.approx(3.0, abs=0.1), fmt.name
        assert pieces[0] or fmt.name == "opus"  # bytes flow before the end (Ogg pages lag a bit)


def test_an_upload_over_25_mb_is_413(media_server, auth):
    response = requests.post(
        f"{media_server.api_url}/audio/transcriptions",
        headers=auth,
        timeout=120,
        files={"file": ("big.wav", b"\0" * (25 * 1024 * 1024 + 1))},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_a_client_that_goes_away_stops_the_synthesis(media_server, auth, openai_client):
    long_text = " ".join(f"This is sentence number {i} of a very long story." for i in range(60))
    with requests.post(
        f"{media_server.api_url}/audio/speech",
        headers=auth,
        stream=True,
        timeout=120,
        json={"input": long_text, "response_format": "pcm"},
    ) as response:
        assert next(response.iter_content(chunk_size=None))
    # The voice's worker now stops after the sentence in hand instead of speaking all 60
    # (about 15 s of work here): the next request is answered at once.
    started = time.monotonic()
    openai_client.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="wav")
    assert time.monotonic() - started < 5
