"""Simulated llama-server boxes for bench/bench_fleet.py: each sleeps instead of computing.

One process serves every simulated box, each on its own port, from one asyncio loop. A box
has `--slots` slots; a request waits for a free one, "evaluates its prompt" for
`--prefill-ms`, then streams `max_tokens` tokens at `--rate` tokens per second (each token
due at a fixed time from the first, so a late wake-up never slows the box down). It speaks
what Hearth reads from llama-server: /health, /v1/models, /props (slots, context, a ChatML
template), /tokenize, /detokenize and streamed /v1/completions with usage. A client that
goes away frees its slot at the next token.

    python bench/fleet_sim.py --ports 9001 9002 --slots 4 --rate 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MODEL = "sim"


class Box:
    def __init__(self, slots: int, rate: float, prefill: float) -> None:
        self.slots = slots
        self.free = asyncio.Semaphore(slots)
        self.rate = rate
        self.prefill = prefill

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                method, path, body = request
                if method == "POST" and path == "/v1/completions":
                    await self.complete(writer, json.loads(body))
                else:
                    write_json(writer, *self.answer(method, path, body))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        path = path.split("?", 1)[0]
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/v1/models":
            meta = {"n_ctx_train": 8192, "n_vocab": 32000}
            return 200, {"object": "list", "data": [{"id": MODEL, "owned_by": "llamacpp", "meta": meta}]}
        if path == "/props":
            return 200, {
                "default_generation_settings": {"n_ctx": 8192},
                "total_slots": self.slots,
                "chat_template": CHATML,
                "bos_token": "",
                "eos_token": "<|im_end|>",
            }
        if path == "/tokenize":
            text = json.loads(body).get("content", "")
            return 200, {"tokens": list(range((len(text.encode()) + 3) // 4))}
        if path == "/detokenize":
            return 200, {"content": " tok" * len(json.loads(body).get("tokens", []))}
        return 404, {"error": {"message": f"no {method} {path}", "code": 404}}

    async def complete(self, writer: asyncio.StreamWriter, body: dict) -> None:
        tokens = int(body.get("max_tokens") or 16)
        prompt_tokens = (len(str(body.get("prompt", "")).encode()) + 3) // 4
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: keep-alive\r\n\r\n"
        )
        async with self.free:
            await asyncio.sleep(self.prefill)
            start = time.monotonic()
            for i in range(tokens):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                last = i == tokens - 1
                finish = "length" if last else None
                choice = {"text": " tok", "index": 0, "logprobs": None, "finish_reason": finish}
                event = {"choices": [choice], "object": "text_completion", "model": MODEL}
                if last:
                    event["usage"] = {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": tokens,
                        "total_tokens": prompt_tokens + tokens,
                    }
                write_chunk(writer, b"data: " + json.dumps(event).encode() + b"\n\n")
                await writer.drain()  # raises when the client has gone: the slot is freed
        write_chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def write_json(writer: asyncio.StreamWriter, status: int, data: dict) -> None:
    body = json.dumps(data).encode()
    reason = "OK" if status == 200 else "Not Found"
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n".encode()
        + body
    )


def write_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


async def main(ports: list[int], slots: int, rate: float, prefill: float) -> None:
    servers = []
    for port in ports:
        box = Box(slots, rate, prefill)
        servers.append(await asyncio.start_server(box.serve, "127.0.0.1", port, backlog=1024))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, nargs="+", required=True)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="tokens per second per slot")
    parser.add_argument("--prefill-ms", type=float, default=20.0)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.ports, args.slots, args.rate, args.prefill_ms / 1000))
    except KeyboardInterrupt:
        pass
