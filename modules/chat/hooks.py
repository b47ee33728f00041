"""The chat engine's extension points, with do-nothing defaults.

Extensions subclass `ChatHooks` and override what they need (text-generation-webui's names
and meanings). The service calls each hook from one place; `state` is a fresh dict per
request: {"mode", "name1", "name2", "character", "continue", "impersonate"}.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modules.chat.messages import ChatMessage


class ChatHooks:
    def input_modifier(self, text: str, state: dict[str, Any]) -> str:
        """The user's new message, before it goes into the prompt."""
        return text

    def history_modifier(
        self, messages: list[ChatMessage], state: dict[str, Any]
    ) -> list[ChatMessage]:
        """The whole conversation, before the prompt is built."""
        return messages

    def bot_prefix_modifier(self, prefix: str, state: dict[str, Any]) -> str:
        """The `Name:` the bot's reply starts after, in the chat modes."""
        return prefix

    def custom_generate_chat_prompt(
        self, messages: Sequence[ChatMessage], state: dict[str, Any]
    ) -> str | None:
        """Return a prompt to use instead of the built one (no truncation), or None."""
        return None

    def output_modifier(self, text: str, state: dict[str, Any]) -> str:
        """Each piece of reply content, as it streams."""
        return text
