"""Templates without a system role: Gemma 2's raises "System role not supported", others
drop the system message's text. Either way the system prompt goes into the first user
message instead, as llama.cpp does (`system_message_not_supported` in its common/chat.cpp):
its text, a newline, then the user's text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from modules.chat import sandbox
from modules.errors import InvalidRequest

log = logging.getLogger(__name__)

_MARK = "\u2063HEARTH-SYSTEM\u2063"  # text no real system prompt contains
_USER = {"role": "user", "content": "Hi"}


def refuses_system_role(source: str, variables: Mapping[str, Any]) -> bool:
    """Whether the template fails on, or leaves out, a leading system message that it would
    otherwise render after (`variables`: the real render's, messages aside). A template that
    cannot render a lone user message either is broken, not refusing: its own error is
    clearer than a fold."""

    def rendered(messages: list[dict]) -> str | None:
        try:
            return sandbox.render(source, {**variables, "messages": messages})
        except InvalidRequest:
            return None

    with_system = rendered([{"role": "system", "content": _MARK}, dict(_USER)])
    if with_system is not None and _MARK in with_system:
        return False
    return rendered([dict(_USER)]) is not None


def fold_system_message(messages: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The messages with a leading system message joined to the next one (dropped when it is
    alone), as llama.cpp does for a template without a system role."""
    out = [dict(m) for m in messages]
    if not out or out[0].get("role") != "system":
        return out
    system = out.pop(0)
    if out:
        out[0]["content"] = f"{system.get('content') or ''}\n{out[0].get('content') or ''}"
    else:
        log.warning("The template has no system role and there is no message to add it to: left out.")
    return out
