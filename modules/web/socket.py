"""The chat websocket (`/ui/ws`): generate replies and stream them to the page.

Client -> server (JSON text frames):

    {"type": "generate", "id": "g1", "action": "send" | "regenerate" | "continue" | "impersonate",
     "chat": {"mode": "chat", "character": "Ada", "id": "20250101-..."},
     "text": "...", "sampling": {...preset fields...},
     "user_name": "", "user_bio": "", "instruction_template": "",
     "extensions": {"localdocs": ["notes"]}}   (optional: state for extensions' hooks)
    {"type": "stop", "id": "g1"}
    {"type": "ping"}

Server -> client:

    {"type": "status", "id": "g1", "message": "Loading SmolLM2-135M-Instruct…"}
    {"type": "start", "id": "g1", "action": "send", "model": "...", "template": "ChatML"}
    {"type": "delta", "id": "g1", "text": "Hel"}          (reply text, in order)
    {"type": "reasoning", "id": "g1", "text": "..."}      (inside <think>, if the model thinks)
    {"type": "done", "id": "g1", "finish_reason": "stop" | "length" | "cancelled",
     "text": "<the whole message>", "saved": true, "chat": {...summary...}, "stats": {...},
     "extras": {...}}                                     (what extensions add, e.g. "localdocs")
    {"type": "error", "id": "g1" | null, "message": "..."}
    {"type": "pong"}

One socket runs one generation at a time. "stop" cancels only the generation with that id on
this socket; closing the socket cancels its generation. Whatever was generated is saved.

The generation is read on its own greenlet (a thread outside gevent) so that this
handler keeps reading the socket and a stop arrives at once, even while the prompt is
still being evaluated. The model itself runs on its engine's OS thread.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from simple_websocket import ConnectionClosed

from modules.chat.messages import MODES
from modules.chat.names import validate_history_id, validate_name
from modules.errors import HearthError, InvalidRequest
from modules.inbound import check_inbound, parse_json

from .presets import Sampling
from .turns import Turn, TurnRequest, start_turn

log = logging.getLogger(__name__)

MAX_TEXT = 100_000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ChatRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["chat", "chat-instruct", "instruct"]
    character: str | None = None
    id: str


class GenerateMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["generate"]
    id: Annotated[str, Field(pattern=_ID.pattern)]
    action: Literal["send", "regenerate", "continue", "impersonate"]
    chat: ChatRef
    text: str = Field("", max_length=MAX_TEXT)
    sampling: Sampling = Field(default_factory=Sampling)
    user_name: str = Field("", max_length=100)
    user_bio: str = Field("", max_length=4000)
    instruction_template: str = Field("", max_length=100)
    # Per-request state for extensions' hooks, added by their scripts (e.g. LocalDocs'
    # {"localdocs": ["notes"]}).
    extensions: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")], Any] = Field(
        default_factory=dict, max_length=32
    )


class StopMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stop"]
    id: Annotated[str, Field(pattern=_ID.pattern)]


class PingMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ping"]


Message = Annotated[GenerateMessage | StopMessage | PingMessage, Field(discriminator="type")]


def parse_message(raw: Any) -> GenerateMessage | StopMessage | PingMessage:
    if not isinstance(raw, str):
        raise InvalidRequest("Send JSON text messages.")
    data = parse_json(raw, "the message")
    if not isinstance(data, dict) or data.get("type") not in ("generate", "stop", "ping"):
        raise InvalidRequest("Unknown message type: use generate, stop or ping.")
    check_inbound(data)
    try:
        from pydantic import TypeAdapter

        return TypeAdapter(Message).validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise InvalidRequest(f"Invalid {data['type']} message: {where}: {first['msg']}.") from None


def turn_request(message: GenerateMessage) -> TurnRequest:
    chat = message.chat
    if chat.mode not in MODES:  # pragma: no cover - the Literal already says so
        raise InvalidRequest(f"Invalid mode {chat.mode!r}.")
    character = None if chat.mode == "instruct" else validate_name(chat.character)
    validate_history_id(chat.id)
    if message.instruction_template:
        validate_name(message.instruction_template, what="instruction template")
    return TurnRequest(
        action=message.action,
        mode=chat.mode,
        character=character,
        chat_id=chat.id,
        text=message.text,
        sampling=message.sampling,
        user_name=" ".join(message.user_name.split()),
        user_bio=message.user_bio.strip(),
        instruction_template=message.instruction_template,
        state=dict(message.extensions),
    )


class ChatSocket:
    def __init__(self, ws, hearth, summarize) -> None:
        self.ws = ws
        self.hearth = hearth
        self.summarize = summarize  # Chat -> the JSON summary the sidebar shows
        self.current: tuple[str, Turn | None] | None = None  # (id, turn once started)
        self.worker: threading.Thread | None = None
        self.closed = False
        self._send_lock = threading.Lock()
        self._stop_requested: set[str] = set()

    def serve(self) -> None:
        try:
            while True:
                self.handle(self.ws.receive())
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.stop_current()
            if self.worker is not None:
                self.worker.join(timeout=30)

    def send(self, **message: Any) -> bool:
        if self.closed:
            return False
        try:
            with self._send_lock:
                self.ws.send(json.dumps(message, ensure_ascii=False))
            return True
        except (ConnectionClosed, OSError):
            self.closed = True
            return False

    def handle(self, raw: Any) -> None:
        try:
            message = parse_message(raw)
        except InvalidRequest as e:
            self.send(type="error", id=None, message=e.message)
            return
        if isinstance(message, PingMessage):
            self.send(type="pong")
        elif isinstance(message, StopMessage):
            if self.current and self.current[0] == message.id:
                self._stop_requested.add(message.id)
                self.stop_current()
        elif self.current is not None:
            self.send(type="error", id=message.id, message="A reply is still being written. Stop it first.")
        else:
            self.current = (message.id, None)
            self.worker = threading.Thread(
                target=self._generate, args=(message,), name=f"ui-turn-{message.id}", daemon=True
            )
            self.worker.start()

    def stop_current(self) -> None:
        if self.current and self.current[1] is not None:
            self.current[1].cancel()

    def _generate(self, message: GenerateMessage) -> None:
        gid = message.id
        try:
            self._run_turn(message)
        except HearthError as e:
            self.send(type="error", id=gid, message=e.message)
        except Exception:  # a bug: keep the socket usable and say so
            log.exception("the UI's generation %s failed", gid)
            self.send(type="error", id=gid, message="The server failed while writing this reply.")
        finally:
            self.current = None
            self._stop_requested.discard(gid)

    def _run_turn(self, message: GenerateMessage) -> None:
        gid = message.id
        request = turn_request(message)
        models = self.hearth.models
        if models.get_loaded() is None:
            name = models.default_spec().id
            self.send(type="status", id=gid, message=f"Loading {name}…")
        with models.using() as engine:  # held until its generation runs: never unloaded meanwhile
            turn = start_turn(self.hearth.chat, engine, request)
        self.current = (gid, turn)
        if gid in self._stop_requested or self.closed:
            turn.cancel()
        self.send(
            type="start",
            id=gid,
            action=request.action,
            model=engine.info.name,
            template=turn.prepared.template_name,
        )
        error: HearthError | None = None
        try:
            for event in turn.events():
                kind = "delta" if event.kind == "content" else "reasoning"
                if not self.send(type=kind, id=gid, text=event.text):
                    turn.cancel()  # the page went away: stop, keep what we have
        except HearthError as e:
            turn.cancel()
            error = e
        saved = turn.save()
        if error is not None:
            self.send(type="error", id=gid, message=error.message, saved=saved is not None)
            return
        self.send(
            type="done",
            id=gid,
            finish_reason=turn.finish_reason or "cancelled",
            text=turn.text,
            reasoning=turn.reasoning,
            saved=saved is not None,
            truncated=turn.prepared.truncated,
            chat=self.summarize(saved) if saved is not None else None,
            stats=turn.stats(),
            extras=turn.prepared.state.get("extras") or {},
        )
