"""A chat as a Markdown document (the UI's "Export as Markdown"): the path shown, with who
wrote each message, when, and with which model, and the tool steps of a reply. Other
versions stay in the JSON export."""

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
        if not (m.content or m.attachments or m.tool_rounds):
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
        for round_ in m.tool_rounds:
            if round_["text"].strip():
                lines += [round_["text"], ""]
            lines += [line for call in round_["calls"] for line in _tool_step(call)]
        lines += [m.content, ""]
    return "\n".join(lines).rstrip() + "\n"


def _tool_step(call: dict) -> list[str]:
    """A tool call as a quote: the tool, how it ended, its arguments and its result."""
    where = f" ({_line(call['server'])})" if call.get("server") else ""
    out = [f"> Tool {_line(call['name'])}{where}: {call['status']}, {call['seconds']:g} s", ">"]
    out += ["> ```json", *(f"> {line}" for line in (call["arguments"] or "{}").splitlines()), "> ```"]
    if call.get("output"):
        fence = "~~~~" if "~~~" in call["output"] else "~~~"
        out += [f"> {fence}", *(f"> {line}" for line in call["output"].splitlines()), f"> {fence}"]
    return [*out, ""]


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def _line(text: str) -> str:
    """A name or title on one line, with Markdown's emphasis marks shown as they are."""
    return " ".join(text.split()).replace("*", "\\*").replace("_", "\\_")
