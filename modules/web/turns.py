"""One turn of a UI chat: build the prompt, stream the model's reply, save the result.

The prompt comes from `ChatService.prepare`, the same path the API takes; the edits to the
saved chat are pure functions (chat_log, versions), applied through the store's `update` so
two writers (two tabs, or the API recording into the same chat) never lose each other's
change. The store is the history (saved chats) or the incognito chats (memory only).

- send: the user's message is saved when the generation starts; the reply when it ends.
  With `message` (a user message's id): the text is a new version of that message (edit and
  send); what followed the old version stays with it.
- regenerate: a new version of the last reply, or of the reply `message`; the old versions
  stay (‹ 2/3 ›). Stopping before any text saves nothing.
- continue: the reply shown grows by what the model writes; its other versions keep theirs.
- impersonate: the model writes the user's next message (starting from the text already in
  the input box); nothing is saved, the text goes back into the input box.
Stopped or interrupted replies are saved as far as they got.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from modules.chat.chat_images import with_images, without_markers
from modules.chat.chat_log import Chat, append_exchange, last_user_index, reply_message
from modules.chat.messages import Attachment, ChatMessage, ChatOptions, PreparedPrompt
from modules.chat.replies import ContentDelta, ReasoningDelta
from modules.chat.service import ChatService
from modules.chat.tool_rounds import expanded
from modules.chat.versions import add_after, add_version, grow_message, index_of
from modules.engines.base import Generation, GenerationRequest, TextEngine, Usage, most_tokens
from modules.errors import HearthError, InvalidRequest
from modules.image_input import ImageLimits, engine_prompt

from .presets import Sampling

log = logging.getLogger(__name__)

IMAGE_LIMITS = ImageLimits()  # the images of one prompt: the newest ones, as many as a request may hold
ACTIONS = ("send", "regenerate", "continue", "impersonate")


@dataclass(frozen=True)
class TurnRequest:
    action: str
    mode: str
    character: str | None  # None in instruct mode
    chat_id: str
    text: str  # the new message (send) or the start of the user's next one (impersonate)
    sampling: Sampling
    user_name: str = ""
    user_bio: str = ""
    instruction_template: str = ""
    state: dict[str, Any] = field(default_factory=dict, compare=False)  # for extensions' hooks
    message: int | None = None  # the message the action is about (send: edit it; regenerate)
    attachments: tuple[Attachment, ...] = ()
    reasoning_effort: str | None = None
    enable_thinking: bool | None = None
    # The chat's tools (OpenAI function definitions) and the first round's tool_choice; only
    # send and regenerate use them (tool_turns.py runs the calls).
    tools: tuple[dict, ...] = ()
    tool_choice: str | dict = "auto"


@dataclass(frozen=True)
class TurnEvent:
    kind: str  # "content" | "reasoning"
    text: str


@dataclass(frozen=True)
class Plan:
    """What a turn builds its prompt from and where its result goes."""

    messages: list[ChatMessage]  # the conversation the prompt is built from
    base: str = ""  # text the reply continues (continue, impersonate)
    continue_: bool = False
    impersonate: bool = False
    after: int | None = None  # the reply follows this message (send, regenerate)
    grows: int | None = None  # continue: the message that grows
    user: ChatMessage | None = None  # send: the user's message to save at the start
    replaces: int | None = None  # ...as a new version of this message (edit and send)


class Turn:
    """A running turn. Iterate `events()`, then call `save()` (also after a stop or error).

    With tools, a turn has rounds: `events()` streams one model turn, `calls()` are the tools
    it called, and `next_round()` starts the next model turn once their results are in
    (tool_turns.py drives this); the saved reply keeps every round before its text."""

    def __init__(
        self,
        chat: ChatService,
        store,
        request: TurnRequest,
        generation: Generation,
        prepared: PreparedPrompt,
        options: ChatOptions,
        plan: Plan,
        model: str,
        messages: Sequence[ChatMessage] = (),
    ) -> None:
        self.request = request
        self.generation = generation
        self.prepared = prepared
        self.plan = plan
        self.model = model
        self.messages = list(messages)  # what the first prompt was built from
        self.content = ""
        self.reasoning = ""
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.completion_tokens = 0  # of every round
        self.rounds: list[dict] = []  # tool_rounds.py's shape
        self.started = time.monotonic()
        self.first_text_at: float | None = None
        self.saved_at: int | None = None  # where on the path the saved messages start
        self._chat = chat
        self._store = store
        self._options = options
        self._parser = chat.reply_parser(options, prepared)
        self._round_calls: list[dict] = []  # this round's calls as they ran (call_json)

    @property
    def base(self) -> str:
        return self.plan.base

    @property
    def text(self) -> str:
        """The whole message the turn produced (for continue: the old text and the new)."""
        return self.plan.base + self.content

    def events(self) -> Iterator[TurnEvent]:
        for delta in self.generation:
            yield from self._events(self._parser.feed(delta.text))
            if delta.finish_reason:
                self.finish_reason, self.usage = delta.finish_reason, delta.usage
                self.completion_tokens += delta.usage.completion_tokens if delta.usage else 0
        yield from self._events(self._parser.finish())

    def calls(self) -> tuple[dict, ...]:
        """The tool calls of the model turn `events()` streamed (OpenAI's shape)."""
        return tuple(self._parser.tool_calls)

    def add_call(self, call: dict) -> None:
        """A call of this round as it ran (tool_rounds.call_json)."""
        self._round_calls.append(call)

    def close_round(self) -> None:
        """The round's text and calls become a saved round; the reply's text starts again."""
        if self._round_calls:
            self.rounds.append({"text": self.content, "calls": self._round_calls})
            self.content, self._round_calls = "", []

    def next_round(self, messages: list[ChatMessage], tool_choice: str, engine: TextEngine) -> None:
        """Start the model's next turn on `messages` (the conversation with the calls and
        their results)."""
        self.close_round()
        options = dataclasses.replace(self._options, tool_choice=tool_choice)
        self.prepared, self.generation = start_generation(self._chat, engine, self.request, messages, options)
        self._parser = self._chat.reply_parser(options, self.prepared)
        self.finish_reason = None

    def _events(self, parsed) -> Iterator[TurnEvent]:
        for event in parsed:
            if isinstance(event, ContentDelta) and event.text:
                self.content += event.text
                self.first_text_at = self.first_text_at or time.monotonic()
                yield TurnEvent("content", event.text)
            elif isinstance(event, ReasoningDelta) and event.text:
                self.reasoning += event.text
                yield TurnEvent("reasoning", event.text)
            # tool calls: the parser keeps them whole (calls())

    def cancel(self) -> None:
        self.generation.cancel()

    def save(self) -> Chat | None:
        """Save what the turn produced; returns the saved chat (None when nothing changed)."""
        request, plan = self.request, self.plan
        self.close_round()
        if request.action == "impersonate" or not (self.content.strip() or self.rounds):
            return None
        if request.action == "continue":
            text = self.text  # the reply keeps what extensions added when it was first written
            change = lambda chat: grow_message(chat, plan.grows, text)  # noqa: E731
            target = plan.grows
        else:
            reply = reply_message(self.content, self.prepared.state.get("extras"), model=self.model)
            reply = dataclasses.replace(reply, tool_rounds=tuple(self.rounds))
            change = lambda chat: add_after(chat, plan.after, reply)  # noqa: E731
            target = None
        chat = self._store.update(request.mode, request.character, request.chat_id, change)
        if target is None:  # send: from the user's message on; regenerate: the new version
            target = plan.after if plan.user is not None else _child_of(chat, plan.after)
        self.saved_at = _place(chat, target)
        return chat

    def stats(self) -> dict:
        elapsed = time.monotonic() - self.started
        out: dict = {"seconds": round(elapsed, 3)}
        if self.usage:
            out["prompt_tokens"] = self.usage.prompt_tokens
            out["completion_tokens"] = self.completion_tokens
            if self.first_text_at and self.usage.completion_tokens > 1 and not self.rounds:
                generating = max(time.monotonic() - self.first_text_at, 1e-3)
                out["tokens_per_second"] = round(self.usage.completion_tokens / generating, 1)
        return out


def _child_of(chat: Chat, parent: int | None) -> int | None:
    if parent is None:
        return chat.messages[0].id if chat.messages else None
    for i, m in enumerate(chat.messages[:-1]):
        if m.id == parent:
            return chat.messages[i + 1].id
    return None


def _place(chat: Chat, message_id: int | None) -> int | None:
    for i, m in enumerate(chat.messages):
        if m.id == message_id:
            return i
    return None


def start_turn(chat: ChatService, store, engine: TextEngine, request: TurnRequest) -> Turn:
    """Build the prompt, start the generation and (for send) save the user's message."""
    if request.action not in ACTIONS:
        raise InvalidRequest(f"Unknown action {request.action!r}.", param="action")
    current = store.load(request.mode, request.character, request.chat_id)
    plan = plan_turn(current, request)
    options = chat_options(request, continue_=plan.continue_, impersonate=plan.impersonate)
    messages, image_notices = prompt_messages(store, request, plan.messages, engine)
    prepared, generation = start_generation(chat, engine, request, messages, options)
    if image_notices:
        prepared = dataclasses.replace(prepared, notices=(*image_notices, *prepared.notices))
    if plan.user is not None:
        try:
            plan = _save_user_message(store, request, prepared, plan)
        except HearthError:
            generation.close()
            raise
    return Turn(chat, store, request, generation, prepared, options, plan, engine.info.name, messages)


def start_generation(
    chat: ChatService,
    engine: TextEngine,
    request: TurnRequest,
    messages: list[ChatMessage],
    options: ChatOptions,
) -> tuple[PreparedPrompt, Generation]:
    """The prompt of `messages` and its generation, started."""
    n_ctx = engine.info.n_ctx
    wanted = request.sampling.max_tokens
    # History is trimmed to leave room for the reply, but never more than half the context.
    prepared = chat.prepare(
        messages,
        options,
        engine.info,
        count_tokens=engine.count_tokens,
        max_tokens=min(wanted, n_ctx // 2),
        request_state=request.state,
    )

    def room_for(tokens: int) -> bool:  # + BOS
        return tokens + 1 + wanted <= n_ctx

    # Counted only when it may not fit (counting a remote model's prompt is a round trip).
    fits = room_for(most_tokens(prepared.prompt)) or room_for(engine.count_tokens(prepared.prompt))
    max_tokens = wanted if fits else None  # None: to the context's end
    params = request.sampling.params(max_tokens=max_tokens, stop=prepared.stop, grammar=prepared.grammar)
    # The chat's turns meet its prompt cache (on an engine with several places to run them).
    affinity = f"chat:{request.mode}:{request.character}:{request.chat_id}"
    prompt = engine_prompt(prepared.prompt, prepared.images)
    return prepared, engine.generate(GenerationRequest(prompt, params, affinity=affinity))


def prompt_messages(
    store, request: TurnRequest, messages: Sequence[ChatMessage], engine: TextEngine
) -> tuple[list[ChatMessage], list[str]]:
    """The chat's messages with their images (chat_images.py) read from the chat's files."""

    def read(file: str) -> bytes:
        return store.read_file(request.mode, request.character, request.chat_id, file)

    return with_images(expanded(messages), read, vision=engine.info.vision, limits=IMAGE_LIMITS)


def chat_options(request: TurnRequest, *, continue_: bool = False, impersonate: bool = False) -> ChatOptions:
    with_tools = request.action in ("send", "regenerate")
    return ChatOptions(
        tools=request.tools if with_tools else (),
        tool_choice=request.tool_choice if with_tools and request.tools else "auto",
        mode=request.mode,
        character=request.character,
        instruction_template=request.instruction_template or None,
        user_name=request.user_name or None,
        user_bio=request.user_bio or None,
        continue_=continue_,
        impersonate=impersonate,
        reasoning_effort=request.reasoning_effort,
        enable_thinking=request.enable_thinking,
    )


def _save_user_message(store, request: TurnRequest, prepared: PreparedPrompt, plan: Plan) -> Plan:
    """Save the user's message (as the hooks want it shown); the reply will follow it."""
    user = plan.user
    assert user is not None
    if prepared.visible_text is not None:
        user = dataclasses.replace(user, content=without_markers(prepared.visible_text))
    place: list[int] = []

    def change(chat: Chat) -> Chat:
        if plan.replaces is None:
            place.append(len(chat.messages))
            return append_exchange(chat, user)
        place.append(index_of(chat, plan.replaces))  # where it is now (another tab may have edited)
        return add_version(chat, place[0], user)

    saved = store.update(request.mode, request.character, request.chat_id, change)
    return dataclasses.replace(plan, after=saved.messages[place[0]].id)


def plan_turn(current: Chat, request: TurnRequest) -> Plan:
    """The messages to build the prompt from, the text the reply continues, and where the
    result goes."""
    messages = list(current.messages)
    last = messages[-1] if messages else None
    action, text = request.action, request.text
    if action == "send":
        if request.message is not None:  # edit and send: a new version of a user message
            at = index_of(current, request.message)
            old = messages[at]
            if old.role != "user":
                raise InvalidRequest("Only your own messages can be edited and sent again.", param="message")
            if not text and not old.attachments:
                raise InvalidRequest("Type a message first.", param="text")
            user = ChatMessage("user", text, attachments=request.attachments or old.attachments)
            return Plan([*messages[:at], user], user=user, replaces=old.id)
        if text or request.attachments:
            user = ChatMessage("user", text, attachments=request.attachments)
            return Plan([*messages, user], user=user)
        if last is not None and last.role == "user":  # e.g. after a failed reply: answer it now
            return Plan(messages, after=last.id)
        raise InvalidRequest("Type a message first.", param="text")
    if action == "regenerate":
        if request.message is not None:
            at = index_of(current, request.message)
            if messages[at].role != "assistant" or at == 0:
                raise InvalidRequest("Only a reply to a message can be written again.", param="message")
        else:
            at = last_user_index(current) + 1
            if at == 0:
                raise InvalidRequest("There is no reply to regenerate.", param="history_id")
        return Plan(messages[:at], after=messages[at - 1].id)
    if action == "continue":
        if last is None or last.role != "assistant":
            raise InvalidRequest("There is no reply to continue.", param="action")
        return Plan(messages, base=last.content, continue_=True, grows=last.id)
    if text:  # impersonate, continuing what the user has typed
        return Plan([*messages, ChatMessage("user", text)], base=text, continue_=True, impersonate=True)
    return Plan(messages, impersonate=True)
