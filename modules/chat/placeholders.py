"""`{{user}}`, `{{char}}`, `<USER>` and `<BOT>`: the names a character file leaves open."""

from __future__ import annotations

import re

# {{user}} in any case (cards vary); <USER> and <BOT> exactly, so HTML-ish text is left alone.
_PLACEHOLDER = re.compile(r"(?i:\{\{(?:user|char)\}\})|<USER>|<BOT>")

# What the streaming reply parser must not cut in half.
PLACEHOLDERS = ("{{user}}", "{{char}}", "<USER>", "<BOT>")


def fill_placeholders(text: str, *, user: str, bot: str) -> str:
    """Replace the placeholders with the user's and the character's names."""

    def name(match: re.Match[str]) -> str:
        token = match.group(0)
        return user if token == "<USER>" or token.lower() == "{{user}}" else bot

    return _PLACEHOLDER.sub(name, text) if text else text
