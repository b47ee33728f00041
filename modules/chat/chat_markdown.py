"""A chat as a Markdown document (the UI's "Export as Markdown"): the path shown, with who
wrote each message, when, and with which model. Other versions stay in the JSON export."""

from __future__ import annotations

from datetime import datetime

from modules.chat.chat_log import Chat


def chat_markdown(chat: Chat, *, user_name: str, bot_name: str) -> str:
    lines = [f"# {_line(chat.display_title)}", ""]
    about = [f"{'Instruct' if chat.mode == 'instruct' else chat.mode.capitalize()} chat"]
    if chat.character and chat.mode != "instruct":
        about.append(f"with {_line(bot_name)}")
    about.append(f"exported {_when(datetime.now().timestamp())}")
    lines += [f"*{' · '.join(about)}*", ""]
    names = {"user": user_name, "assistant": bot_name, "system": "System", "tool": "Tool"}
    for m in chat.messages:
        if not (m.content or m.attachments):
            continue
        head = [f"**{_line(names.get(m.role, m.role))}**"]
        if m.time:
            head.append(_when(m.time))
        if m.model:
            head.append(_line(m.model))
        lines += ["---", "", " · ".join(head), ""]
        for attachment in m.attachments:
            lines.append(f"> Attached: {_line(attachment.name)} ({len(attachment.text):,} characters)")
        if m.attachments:
            lines.append("")
        lines += [m.content, ""]
    return "\n".join(lines).rstrip() + "\n"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _line(text: str) -> str:
    """A name or title on one line, with Markdown's emphasis marks shown as they are."""
    return " ".join(text.split()).replace("*", "\\*").replace("_", "\\_")
