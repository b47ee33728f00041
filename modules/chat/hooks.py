"""The chat engine's extension points, with do-nothing defaults.

`ChatService` calls each hook from one place, in this order for a request: `state_modifier`,
then on a new user message `chat_input_modifier` and `input_modifier`, `history_modifier`,
`bot_prefix_modifier` (chat modes), `custom_generate_chat_prompt`, and `output_modifier` on
each piece of the reply. The app's implementation is `modules.extensions.ExtensionHooks`
(every enabled extension's hooks, text-generation-webui's names and signatures); tests
subclass this class directly.

`state` is one fresh dict per request: {"mode", "name1", "name2", "character", "continue",
"impersonate", "extras"}, plus what the request adds for extensions (e.g. the API's
`localdocs` field). `extras` is a dict the hooks may fill with data for the response: the
API adds its keys to the chat completion, the UI passes it to the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modules.chat.messages import ChatMessage


class ChatHooks:
    def state_modifier(self, state: dict[str, Any]) -> dict[str, Any]:
        """The request's state, before anything else."""
        return state

    def chat_input_modifier(self, text: str, visible_text: str, state: dict[str, Any]) -> tuple[str, str]:
        """A new user message: the text for the prompt and the text the UI saves."""
        return text, visible_text

    def input_modifier(self, text: str, state: dict[str, Any]) -> str:
        """The user's new message, before it goes into the prompt."""
        return text

    def history_modifier(self, messages: list[ChatMessage], state: dict[str, Any]) -> list[ChatMessage]:
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
