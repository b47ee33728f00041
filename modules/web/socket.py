"""The chat websocket (`/ui/ws`): generate replies and notebook text, stream them to the page.

Client -> server (JSON text frames; docs/ui.md has the whole reference):

    {"type": "generate", "id": "g1", "action": "send" | "regenerate" | "continue" | "impersonate",
     "chat": {"mode": "chat", "character": "Ada", "id": "20250101-...", "incognito": false},
     "text": "...", "sampling": {...preset fields...},
     "user_name": "", "user_bio": "", "instruction_template": "",
     "message": 7,                     (optional: the message to edit and send, or to regenerate)
     "attachments": [{"name", "kind", "text"}],       (optional: files, as /ui/api/files read them)
     "reasoning_effort": "low", "enable_thinking": false,      (optional, for templates that read them)
     "extensions": {"localdocs": ["notes"]},  (optional: state for extensions' hooks)
     "tools": {"servers": ["time"], "tools": ["calculator"], "choice": "auto"}}
                (optional, send and regenerate: the chat's tools; choice "auto", "required"
                 or a tool's name, for the first round)
    {"type": "approval", "id": "g1", "call": "call_...", "approve": true}   (a tool_ask's answer)
    {"type": "complete", "id": "n1", "notebook": "<id>", "text": "...", "sampling": {...}}
    {"type": "stop", "id": "g1"}
    {"type": "ping"}

Server -> client:

    {"type": "status", "id": "g1", "message": "Loading SmolLM2-135M-Instruct…"}
    {"type": "start", "id": "g1", "action": "send", "model": "...", "template": "ChatML", "notices": []}
    {"type": "delta", "id": "g1", "text": "Hel"}          (reply text, in order)
    {"type": "reasoning", "id": "g1", "text": "..."}      (inside <think>, if the model thinks)
    {"type": "tool_round" | "tool_ask" | "tool_result", "id": "g1", ...}   (tool_turns.py)
    {"type": "done", "id": "g1", "finish_reason": "stop" | "length" | "cancelled",
     "text": "<the whole message>", "saved": true, "chat": {...summary...}, "stats": {...},
     "at": 4, "messages": [...the path from place 4 on...], "notices": [...],
     "extras": {...}}                                     (what extensions add, e.g. "localdocs")
    {"type": "error", "id": "g1" | null, "message": "..."}
    {"type": "pong"}

One socket runs one generation at a time. "stop" cancels only the generation with that id on
this socket (and ends its tool loop: a call that waits for approval does not run); closing
the socket does the same. Whatever was generated is saved, tool steps included.

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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from simple_websocket import ConnectionClosed

from modules.chat.attachments import MAX_FILES, MAX_MESSAGE_FILE_CHARS
from modules.chat.messages import MODES
from modules.chat.names import validate_history_id, validate_name
from modules.engines.base import TextEngine
from modules.errors import HearthError, InvalidRequest
from modules.inbound import check_inbound, parse_json
from modules.tools.registry import ToolSet

from .chats import path_json, summary_json
from .files import AttachmentIn
from .notebook import MAX_TEXT_NOTEBOOK, completion_request, notebook_json, start_completion
from .presets import Sampling
from .tool_turns import Approvals, tool_turn_events
from .turns import TurnRequest, start_turn

log = logging.getLogger(__name__)

MAX_TEXT = 100_000
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ChatRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["chat", "chat-instruct", "instruct"]
    character: str | None = None
    id: str
    incognito: bool = False


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
    # The message the action is about: send with it edits that user message (a new version)
    # and answers it; regenerate with it writes a new version of that reply.
    message: int | None = Field(None, ge=1)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_FILES)
    # For templates that read them (reasoning models): None leaves the template's default.
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    enable_thinking: bool | None = None
    tools: ChatToolsIn | None = None

    @model_validator(mode="after")
    def _files(self) -> GenerateMessage:
        if sum(len(a.text) for a in self.attachments) > MAX_MESSAGE_FILE_CHARS:
            raise ValueError(f"the files hold more than {MAX_MESSAGE_FILE_CHARS:,} characters in all")
        return self


class ChatToolsIn(BaseModel):
    """The chat's tools: built-in or local tools by name, MCP servers of mcp.json by label."""

    model_config = ConfigDict(extra="forbid")
    servers: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=32
    )
    tools: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=64
    )
    choice: str = Field("auto", min_length=1, max_length=100)  # "auto", "required" or a tool's name


class CompleteMessage(BaseModel):
    """The notebook: continue a page of text (saved first, then with the model's text)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["complete"]
    id: Annotated[str, Field(pattern=_ID.pattern)]
    notebook: str = Field(min_length=1, max_length=128)
    text: str = Field(max_length=MAX_TEXT_NOTEBOOK)
    sampling: Sampling = Field(default_factory=Sampling)


class StopMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stop"]
    id: Annotated[str, Field(pattern=_ID.pattern)]


class ApprovalMessage(BaseModel):
    """The user's answer to a call that waits for approval (tool_ask)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["approval"]
    id: Annotated[str, Field(pattern=_ID.pattern)]
    call: str = Field(min_length=1, max_length=100)
    approve: bool


class PingMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ping"]


Message = Annotated[
    GenerateMessage | CompleteMessage | StopMessage | ApprovalMessage | PingMessage,
    Field(discriminator="type"),
]
TYPES = ("generate", "complete", "stop", "approval", "ping")


def parse_message(
    raw: Any,
) -> GenerateMessage | CompleteMessage | StopMessage | ApprovalMessage | PingMessage:
    if not isinstance(raw, str):
        raise InvalidRequest("Send JSON text messages.")
    data = parse_json(raw, "the message")
    if not isinstance(data, dict) or data.get("type") not in TYPES:
        raise InvalidRequest("Unknown message type: use generate, complete, stop, approval or ping.")
    check_inbound(data)
    try:
        from pydantic import TypeAdapter

        return TypeAdapter(Message).validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise InvalidRequest(f"Invalid {data['type']} message: {where}: {first['msg']}.") from None


def turn_request(message: GenerateMessage, tools: ToolSet | None = None) -> TurnRequest:
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
        message=message.message,
        attachments=tuple(a.attachment() for a in message.attachments),
        reasoning_effort=message.reasoning_effort,
        enable_thinking=message.enable_thinking,
        tools=tools.chat_tools() if tools else (),
        tool_choice=tool_choice(message.tools, tools) if tools and message.tools else "auto",
    )


def tool_choice(spec: ChatToolsIn, tools: ToolSet) -> str | dict:
    if spec.choice in ("auto", "required"):
        return spec.choice
    if tools.get(spec.choice) is None:
        raise InvalidRequest(f"The tool {spec.choice!r} is not among the chat's tools.", param="tools.choice")
    return {"type": "function", "function": {"name": spec.choice}}


class ChatSocket:
    def __init__(self, ws, hearth, web) -> None:
        self.ws = ws
        self.hearth = hearth
        self.web = web  # the UI's state: the incognito chats and the notebooks live there
        self.current: tuple[str, Any] | None = None  # (id, the turn once started)
        self.worker: threading.Thread | None = None
        self.closed = False
        self._send_lock = threading.Lock()
        self._stop_requested: set[str] = set()
        self.approvals: Approvals | None = None  # the running turn's, when it has tools

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
        elif isinstance(message, ApprovalMessage):
            # an answer for a turn that ended meanwhile (stopped) is dropped
            if self.current and self.current[0] == message.id and self.approvals is not None:
                self.approvals.answer(message.call, message.approve)
        elif self.current is not None:
            self.send(type="error", id=message.id, message="A reply is still being written. Stop it first.")
        else:
            self.current = (message.id, None)
            self.worker = threading.Thread(
                target=self._generate, args=(message,), name=f"ui-turn-{message.id}", daemon=True
            )
            self.worker.start()

    def stop_current(self) -> None:
        if self.approvals is not None:
            self.approvals.stop()
        if self.current and self.current[1] is not None:
            self.current[1].cancel()

    def _generate(self, message: GenerateMessage | CompleteMessage) -> None:
        gid = message.id
        try:
            self._run(message)
        except HearthError as e:
            self.send(type="error", id=gid, message=e.message)
        except Exception:  # a bug: keep the socket usable and say so
            log.exception("the UI's generation %s failed", gid)
            self.send(type="error", id=gid, message="The server failed while writing this reply.")
        finally:
            self.current = None
            self.approvals = None
            self._stop_requested.discard(gid)

    def _start(
        self, message: GenerateMessage | CompleteMessage, engine: TextEngine
    ) -> tuple[Any, dict, ToolSet | None]:
        """The turn's generation, started, what the page's start event says of it, and the
        tools its model may call."""
        if isinstance(message, CompleteMessage):
            turn = start_completion(self.web.notebooks, engine, completion_request(message))
            return turn, {"action": "complete", "model": engine.info.name, "cut": turn.cut}, None
        tools = None
        if message.tools and message.action in ("send", "regenerate"):
            spec = message.tools
            tools = self.hearth.tools.toolset(spec.tools, spec.servers, "tools") or None
        request = turn_request(message, tools)
        if tools is not None:
            self.approvals = Approvals()
        store = self.web.incognito if message.chat.incognito else self.hearth.chat.history
        turn = start_turn(self.hearth.chat, store, engine, request)
        return (
            turn,
            {
                "action": request.action,
                "model": engine.info.name,
                "template": turn.prepared.template_name,
                "notices": list(turn.prepared.notices),
            },
            tools,
        )

    def _engine(self, gid: str):
        """The model manager, having told the page when a model must load first."""
        models = self.hearth.models
        if models.get_loaded() is None:
            name = models.default_spec().id
            self.send(type="status", id=gid, message=f"Loading {name}…")
        return models

    def _run(self, message: GenerateMessage | CompleteMessage) -> None:
        gid = message.id
        # held until its generation runs: never unloaded meanwhile
        with self._engine(gid).using() as engine:
            turn, start, tools = self._start(message, engine)
        self.current = (gid, turn)
        if gid in self._stop_requested or self.closed:
            self.stop_current()
        self.send(type="start", id=gid, **start)
        error: HearthError | None = None
        events = turn.events()
        if tools is not None and self.approvals is not None:

            def notify(kind: str, **fields: Any) -> None:
                self.send(type=kind, id=gid, **fields)

            events = tool_turn_events(
                turn, tools, self.hearth.tools, self.approvals, notify, self.hearth.models.using
            )
        try:
            for event in events:
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
        done = {
            "finish_reason": turn.finish_reason or "cancelled",
            "text": turn.text,
            "saved": saved is not None,
            "stats": turn.stats(),
        }
        if isinstance(message, CompleteMessage):
            self.send(type="done", id=gid, **done, notebook=notebook_json(saved) if saved else None)
            return
        self.send(
            type="done",
            id=gid,
            **done,
            reasoning=turn.reasoning,
            truncated=turn.prepared.truncated,
            notices=list(turn.prepared.notices),
            chat=summary_json(saved) if saved is not None else None,
            at=turn.saved_at,
            messages=path_json(saved, turn.saved_at)
            if saved is not None and turn.saved_at is not None
            else None,
            extras=turn.prepared.state.get("extras") or {},
        )
