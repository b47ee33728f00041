"""Helpers for the UI tests that talk to a real server: its JSON API, its websocket, and the
chat page in a browser."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from servers import ServerProcess, make_user_data, start_server, tiny_args
from simple_websocket import Client


class UiClient:
    """The UI's JSON API over HTTP, sending the Origin a browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Origin"] = base

    def call(self, method: str, path: str, **kwargs):
        response = self.http.request(method, self.base + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def new_chat(self, mode: str = "chat", character: str | None = "Assistant") -> dict:
        return self.call("POST", "/ui/api/chats", json={"mode": mode, "character": character})

    def chat(self, chat: dict) -> dict:
        params = {"mode": chat["mode"]}
        if chat["character"]:
            params["character"] = chat["character"]
        return self.call("GET", f"/ui/api/chats/{chat['id']}", params=params)

    def socket(self) -> Socket:
        return Socket(self.base.replace("http://", "ws://") + "/ui/ws")


class Socket:
    def __init__(self, url: str) -> None:
        self.ws = Client.connect(url)

    def send(self, **message) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, timeout: float = 30) -> dict:
        raw = self.ws.receive(timeout=timeout)
        assert raw is not None, "no message from the server in time"
        return json.loads(raw)

    def generate(self, chat: dict, action: str = "send", text: str = "", gid: str = "g1", **sampling) -> None:
        self.send(
            type="generate",
            id=gid,
            action=action,
            text=text,
            chat={"mode": chat["mode"], "character": chat["character"], "id": chat["id"]},
            sampling={"temperature": 0, "max_tokens": 40, **sampling},
        )

    def until(self, *types: str, timeout: float = 60) -> tuple[list[dict], dict]:
        """Messages up to the first of `types`; returns (the ones before, that one)."""
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(timeout=max(0.1, deadline - time.monotonic()))
            if message["type"] in types:
                return seen, message
            seen.append(message)
        raise AssertionError(f"no {types} within {timeout}s; got {[m['type'] for m in seen]}")

    def close(self) -> None:
        self.ws.close()


ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"


def screenshot(page, name: str, folder: Path = ARTIFACTS) -> Path:
    """Save a screenshot (by default under tests/.artifacts/, which git ignores)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def ui_site(
    folder: Path,
    model_dir: Path,
    *,
    ctx_size: int,
    forbidden: tuple[str, ...] = ("Traceback",),
    mcp_servers: dict | None = None,
    **model_args,
) -> Iterator[ServerProcess]:
    """A real server for a module's UI tests: a fresh user_data under `folder`
    (`proc.extra["user_data"]`, with `mcp_servers` in its mcp.json), the tiny model (or what
    `model_args` give tiny_args), waited for on the UI port. Stopped at the end, its log must
    hold none of the `forbidden` words."""
    user_data = make_user_data(folder / "user_data")
    if mcp_servers is not None:
        (user_data / "mcp.json").write_text(json.dumps({"mcpServers": mcp_servers}))
    proc = start_server(
        [*tiny_args(user_data, model_dir, ctx_size=ctx_size, **model_args)],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
    try:
        yield proc
    finally:
        proc.stop()
    log = proc.log()
    assert not [word for word in forbidden if word in log], log[-3000:]


# --- The chat page in a browser ---------------------------------------------------------------


def open_chat(page, url: str) -> None:
    """Open the chat page with the Assistant character (a newcomer without one starts in
    instruct mode: test_ui_browser_first_minute.py)."""
    page.goto(url if "?" in url else url + "?character=Assistant")
    page.wait_for_selector("#chat-list .chat-item.active")
    page.wait_for_selector("#messages .message, #messages .empty-chat")


def new_chat(page) -> None:
    """Start a new chat and wait until it is the one shown."""
    old = page.evaluate("() => new URL(location.href).searchParams.get('chat')")
    page.click("#new-chat")
    page.wait_for_function(
        "old => new URL(location.href).searchParams.get('chat') !== old"
        " && document.querySelectorAll('.message.user').length === 0",
        arg=old,
    )


def set_max_tokens(page, value: int) -> None:
    page.fill("#param-max_tokens", str(value))


def send(page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")


def wait_reply_done(page, timeout: float = 60_000) -> None:
    page.wait_for_selector(".message.streaming", state="detached", timeout=timeout)
    page.wait_for_function("() => document.querySelector('#send').getAttribute('aria-label') === 'Send'")


def last_reply(page) -> str:
    return page.locator(".message.assistant .content").last.inner_text()


# A template that reads `enable_thinking` (as Qwen3's does): off, the reply starts after an
# empty think block.
THINKING_TEMPLATE = """instruction_template: |-
  {%- for m in messages %}<|im_start|>{{ m.role }}
  {{ m.content }}<|im_end|>
  {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
  {% if enable_thinking is defined and enable_thinking is false %}<think>

  </think>

  {% endif %}{% endif %}
"""
