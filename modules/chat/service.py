"""The chat service: the one way the API and the UI turn a conversation into a prompt,
and a model's reply back into content, reasoning and tool calls."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modules.chat import tools as toolbox
from modules.chat.attachments import fit_files, with_files
from modules.chat.characters import Character, CharacterStore
from modules.chat.chat_log import Chat
from modules.chat.grammar import tool_call_grammar
from modules.chat.history import HistoryStore
from modules.chat.hooks import ChatHooks
from modules.chat.messages import (
    DEFAULT_CHAT_INSTRUCT_COMMAND,
    MODES,
    ChatMessage,
    ChatOptions,
    PreparedPrompt,
)
from modules.chat.placeholders import fill_placeholders
from modules.chat.prompts import PromptBuilder, fit
from modules.chat.reasoning import prompt_opens_reasoning
from modules.chat.replies import ReplyParser
from modules.chat.templates import TemplateStore
from modules.engines.base import ImageInput, ModelInfo
from modules.errors import ContextOverflow, InvalidRequest, NotFound
from modules.image_input import MARKER

DEFAULT_USER_NAME = "You"
_START_LINE = re.compile(r"^\s*<START>\s*$", re.IGNORECASE | re.MULTILINE)


def prompt_images(prompt: str, history: Sequence[ChatMessage]) -> tuple[ImageInput, ...]:
    """The images of the prompt: one per marker in it. Old turns dropped to fit the context
    took theirs with them, so these are the last images of the conversation."""
    images = tuple(image for message in history for image in message.images)
    markers = prompt.count(MARKER)
    if markers > len(images):
        raise InvalidRequest(
            f"The prompt has {markers} image markers ({MARKER}) but the request has {len(images)} images.",
            param="messages",
        )
    return images[len(images) - markers :] if markers else ()


def template_variables(options: ChatOptions) -> tuple[tuple[str, Any], ...]:
    """The reasoning switches a request set, for templates that read them."""
    pairs = (("reasoning_effort", options.reasoning_effort), ("enable_thinking", options.enable_thinking))
    return tuple((name, value) for name, value in pairs if value is not None)


class ChatService:
    def __init__(
        self,
        *,
        characters: CharacterStore,
        templates: TemplateStore,
        history: HistoryStore,
        default_character: str = "Assistant",
        hooks: ChatHooks | None = None,
    ) -> None:
        self.characters = characters
        self.templates = templates
        self.history = history
        self.default_character = default_character
        self.hooks = hooks or ChatHooks()

    # --- prompts -------------------------------------------------------------------------

    def prepare(
        self,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        model: ModelInfo,
        *,
        count_tokens: Callable[[str], int],
        max_tokens: int,
        request_state: Mapping[str, Any] | None = None,
    ) -> PreparedPrompt:
        """The prompt, stop strings and grammar for one request (see docs/chat.md).

        `request_state` adds request fields for extensions to the hooks' `state` (e.g. the
        API's `localdocs`)."""
        if options.mode not in MODES:
            raise InvalidRequest(
                f"Invalid mode {options.mode!r}: use one of {', '.join(MODES)}.",
                param="mode",
            )
        budget = model.n_ctx - max(max_tokens, 0)
        if budget <= 0:
            raise ContextOverflow(
                f"max_tokens ({max_tokens}) leaves no room for the prompt in the model's "
                f"context window of {model.n_ctx} tokens."
            )
        setup = toolbox.setup_tools(options.tools, options.tool_choice)
        character = self._character(options) if options.mode != "instruct" else None
        user_name, bot_name = self._names(options, character)
        state = self.hook_state(options, user_name, bot_name, request_state)
        state = self.hooks.state_modifier(state)
        history, visible_text = self._modified_history(messages, options, state)
        builder, history = self._builder(history, options, model, character, setup, state)
        history, notices = _files_in(history, builder, budget, count_tokens)

        custom = self.hooks.custom_generate_chat_prompt(history, state)
        if custom is not None:
            prompt, dropped = custom, 0
        else:
            fitted = fit(builder, history, count_tokens=count_tokens, budget=budget)
            prompt, dropped = fitted.prompt, fitted.dropped
        forced = setup.choice in ("required", "function") and not options.impersonate
        images = prompt_images(prompt, history)
        return PreparedPrompt(
            prompt=prompt,
            stop=builder.stops(),
            grammar=tool_call_grammar(setup.tools, setup.forced_name) if forced else None,
            template_name=builder.template.name if builder.template else "",
            truncated=dropped > 0,
            dropped_messages=dropped,
            bot_name=bot_name,
            user_name=user_name,
            mode=options.mode,
            tools_enabled=setup.parse_calls and not options.impersonate,
            tool_names=setup.names,
            starts_in_reasoning=prompt_opens_reasoning(prompt),
            state=state,
            visible_text=visible_text,
            images=images,
            notices=tuple(notices),
        )

    def reply_parser(self, options: ChatOptions, prepared: PreparedPrompt) -> ReplyParser:
        """A fresh parser for the reply to `prepared` (feed it the streamed text)."""
        state = prepared.state or self.hook_state(options, prepared.user_name, prepared.bot_name)
        chat = prepared.mode != "instruct"
        return ReplyParser(
            parse_tools=prepared.tools_enabled,
            tool_names=prepared.tool_names,
            names=(prepared.user_name, prepared.bot_name) if chat else None,
            starts_in_reasoning=prepared.starts_in_reasoning,
            trim=chat and not options.continue_,
            output_modifier=lambda text: self.hooks.output_modifier(text, state),
        )

    # --- saving an API conversation ---------------------------------------------------------

    def record(
        self,
        history_id: str,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        prepared: PreparedPrompt,
        reply: ChatMessage | None,
    ) -> Chat:
        """Save a request's conversation and its reply as the chat `history_id` (an API
        request's `history_id`), where the UI lists the chats of its mode and character.

        The new user message is saved as the UI would save it (chat_input_modifier's visible
        text); with `continue_`, the reply is joined to the partial one it continues; in the
        chat modes the character's greeting opens the chat, as it does in the prompt."""
        messages = list(messages)
        last = messages[-1] if messages else None
        if last is not None and last.role == "user" and prepared.visible_text is not None:
            messages[-1] = dataclasses.replace(last, content=prepared.visible_text)
        if options.continue_ and last is not None and last.role == "assistant":
            messages.pop()
            more = reply.content if reply else ""
            reply = dataclasses.replace(reply or last, content=last.content + more)
        if options.mode == "instruct":
            return self.history.record("instruct", None, history_id, messages, reply)
        character = self._character(options)
        greeting = options.greeting if options.greeting is not None else character.greeting
        greeting = fill_placeholders(greeting, user=prepared.user_name, bot=prepared.bot_name).strip()
        return self.history.record(
            options.mode, character.key, history_id, messages, reply, greeting=greeting
        )

    # --- the pieces ------------------------------------------------------------------------

    @staticmethod
    def hook_state(
        options: ChatOptions,
        user_name: str,
        bot_name: str,
        request_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The `state` the hooks get: a fresh dict per request."""
        return {
            **(request_state or {}),
            "mode": options.mode,
            "name1": user_name,
            "name2": bot_name,
            "character": options.character,
            "continue": options.continue_,
            "impersonate": options.impersonate,
            "extras": {},
        }

    def _character(self, options: ChatOptions) -> Character:
        key = options.character or self.default_character
        try:
            return self.characters.get(key)
        except NotFound:
            if options.character:  # the request named it: tell the caller
                raise
            return Character(key=key, name=key)  # the default is gone: a blank assistant

    @staticmethod
    def _names(options: ChatOptions, character: Character | None) -> tuple[str, str]:
        user = options.user_name or (character.user_name if character else None)
        bot = options.bot_name or (character.name if character else None)
        return user or DEFAULT_USER_NAME, bot or "Assistant"

    def _modified_history(
        self,
        messages: Sequence[ChatMessage],
        options: ChatOptions,
        state: dict[str, Any],
    ) -> tuple[list[ChatMessage], str | None]:
        """The conversation after the hooks, and the new user message as the UI should save
        it (None when there is no new message)."""
        history = list(messages)
        last = history[-1] if history else None
        visible_text = None
        if last and last.role == "user" and not (options.continue_ or options.impersonate):
            text, visible_text = self.hooks.chat_input_modifier(last.content, last.content, state)
            text = self.hooks.input_modifier(text, state)
            history[-1] = dataclasses.replace(last, content=text)
        return list(self.hooks.history_modifier(history, state)), visible_text

    def _builder(
        self,
        history: list[ChatMessage],
        options: ChatOptions,
        model: ModelInfo,
        character: Character | None,
        setup: toolbox.ToolSetup,
        state: dict[str, Any],
    ) -> tuple[PromptBuilder, list[ChatMessage]]:
        """The prompt builder, and the history it builds from (leading system messages out)."""
        lead = 0
        while lead < len(history) and history[lead].role == "system":
            lead += 1
        system_text = "\n\n".join(m.content for m in history[:lead] if m.content.strip())
        turns = history[lead:]
        user_name, bot_name = state["name1"], state["name2"]
        common = {
            "user_name": user_name,
            "bot_name": bot_name,
            "model": model,
            "continue_": options.continue_,
            "impersonate": options.impersonate,
            "template_variables": template_variables(options),
        }
        if options.mode == "instruct":
            template = self.templates.choose(options, model)
            in_template = bool(setup.tools) and template.renders_tools
            if setup.tools and not in_template:
                system_text = "\n\n".join(p for p in (system_text, toolbox.preamble(setup.tools)) if p)
            builder = PromptBuilder(
                mode="instruct",
                template=template,
                system=system_text,
                tools=setup.tools if in_template else (),
                **common,
            )
            return builder, turns

        assert character is not None

        def fill(text: str) -> str:
            return fill_placeholders(text, user=user_name, bot=bot_name)

        context = options.context if options.context is not None else system_text or character.context
        parts = [fill(context).strip(), (options.user_bio or "").strip()]
        if setup.tools:
            parts.append(toolbox.preamble(setup.tools))
        greeting = fill(options.greeting if options.greeting is not None else character.greeting)
        if greeting.strip() and not (turns and turns[0].role == "assistant"):
            turns = [ChatMessage("assistant", greeting.strip()), *turns]
        example = _START_LINE.sub("", fill(character.example_dialogue))
        example = re.sub(r"\n{3,}", "\n\n", example).strip()
        template = self.templates.choose(options, model) if options.mode == "chat-instruct" else None
        builder = PromptBuilder(
            mode=options.mode,
            template=template,
            system="\n\n".join(p for p in parts if p),
            example_dialogue=example,
            chat_instruct_command=options.chat_instruct_command or DEFAULT_CHAT_INSTRUCT_COMMAND,
            bot_prefix=self.hooks.bot_prefix_modifier(f"{bot_name}:", state),
            **common,
        )
        return builder, turns


def _files_in(
    history: list[ChatMessage], builder: PromptBuilder, budget: int, count_tokens: Callable[[str], int]
) -> tuple[list[ChatMessage], list[str]]:
    """The history with the text of attached files in the messages (modules/chat/attachments.py):
    the newest user message's files cut to the room the prompt leaves, older ones whole."""
    newest = max((i for i, m in enumerate(history) if m.role == "user" and m.attachments), default=None)
    if newest is None:
        return history, []
    if newest != max(i for i, m in enumerate(history) if m.role == "user"):
        newest = None  # the files are in an older message: truncation decides
    out, notices = [], []
    for i, message in enumerate(history):
        if i != newest:
            out.append(with_files(message))
            continue
        empty = with_files(message, ["" for _ in message.attachments])
        base = count_tokens(builder.build([empty, *(with_files(m) for m in history[i + 1 :])]))
        texts, notices = fit_files(message.attachments, budget - base, count_tokens)
        out.append(with_files(message, texts))
    return out, notices
