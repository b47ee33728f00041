"""Encoding synthesized speech, piece by piece, into the formats OpenAI's speech API offers.

Every format streams: each `feed` returns the bytes ready so far. wav starts with a header
whose sizes say "unknown length" (0xFFFFFFFF), as streamed WAV does elsewhere; players,
ffmpeg and browsers accept it, but Python's `wave` module then reports a huge frame count.
pcm is raw 16-bit little-endian mono at 24 kHz, as OpenAI's is. mp3, opus (in Ogg) and
flac are encoded by PyAV (FFmpeg), writing into a sink that cannot seek, so the muxers
never go back to patch a header.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

PCM_RATE = 24000


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    container: str | None  # PyAV/FFmpeg format, None for the ones written by hand
    codec: str | None
    rate: int | None  # fixed output rate, None: the voice's own


FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("wav", "audio/wav", None, None, None),
    "pcm": AudioFormat("pcm", "audio/pcm", None, None, PCM_RATE),
    "mp3": AudioFormat("mp3", "audio/mpeg", "mp3", "libmp3lame", None),
    "opus": AudioFormat("opus", "audio/ogg", "ogg", "libopus", 48000),
    "flac": AudioFormat("flac", "audio/flac", "flac", "flac", None),
}


def streaming_wav_header(sample_rate: int, channels: int = 1, sample_width: int = 2) -> bytes:
    unknown = 0xFFFFFFFF
    byte_rate = sample_rate * channels * sample_width
    fmt = struct.pack(
        "<HHIIHH", 1, channels, sample_rate, byte_rate, channels * sample_width, sample_width * 8
    )
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", unknown)
    )


class _Sink:
    """A write-only file for PyAV: no seek, so the muxer writes strictly in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data) -> int:
        self._buffer += bytes(data)
        return len(data)

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class AudioEncoder:
    """Turns int16 mono chunks at `sample_rate` into bytes of `format`, as they come."""

    def __init__(self, fmt: AudioFormat, sample_rate: int) -> None:
        self.format = fmt
        self._rate = sample_rate
        self._header_sent = False
        self._resampler = None
        self._container = self._stream = None
        self._sink = _Sink()
        if fmt.container:
            self._open_container()
        elif fmt.rate and fmt.rate != sample_rate:
            import av

            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=fmt.rate)

    def _open_container(self) -> None:
        import av

        fmt = self.format
        self._container = av.open(self._sink, mode="w", format=fmt.container)
        self._stream = self._container.add_stream(fmt.codec, rate=fmt.rate or self._rate)
        self._stream.layout = "mono"
        encoder_format = self._stream.codec_context.format.name
        self._resampler = av.AudioResampler(format=encoder_format, layout="mono", rate=fmt.rate or self._rate)

    def _frames(self, samples: np.ndarray | None):
        import av

        if samples is None:
            return self._resampler.resample(None)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        return self._resampler.resample(frame)

    def feed(self, samples: np.ndarray) -> bytes:
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        if self.format.name == "wav":
            header = b"" if self._header_sent else streaming_wav_header(self._rate)
            self._header_sent = True
            return header + samples.tobytes()
        if self._container is None:  # pcm
            if self._resampler is None:
                return samples.tobytes()
            return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in self._frames(samples))
        for frame in self._frames(samples):
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        return self._sink.take()

    def finish(self) -> bytes:
        if self.format.name == "wav":
            return b"" if self._header_sent else streaming_wav_header(self._rate)
        if self._container is None:
            if self._resampler is None:
                return b""
            return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in self._frames(None))
        for frame in self._frames(None):
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.take()
