"""docs/chat.md's reference tables agree with the code."""

from __future__ import annotations

import re
from pathlib import Path

from modules.chat.hooks import ChatHooks

REPO = Path(__file__).resolve().parents[2]

DOC = (REPO / "docs" / "chat.md").read_text(encoding="utf-8")


def test_template_table_lists_every_shipped_template(templates):
    section = DOC[DOC.index("Shipped templates:") :].split("\n\n")[1]
    rows = [line.split("|")[1].strip() for line in section.splitlines()[2:]]
    assert rows == templates.names()
    for name in rows:
        aliases = [a.strip() for a in section.split(f"| {name} |")[1].split("|")[0].split(",") if a.strip()]
        assert list(templates.get(name).aliases) == aliases


def test_hook_table_lists_every_hook():
    section = DOC[DOC.index("## Hooks") :]
    documented = re.findall(r"^\| `(\w+)\(", section, re.MULTILINE)
    hooks = [name for name in vars(ChatHooks) if not name.startswith("_")]
    assert sorted(documented) == sorted(hooks)


def test_the_chat_file_example_reads_as_it_says():
    import json

    from modules.chat.chat_file import chat_from_json
    from modules.chat.versions import switch_version, version_numbers

    section = DOC[DOC.index("## History") :]
    example = json.loads(section.split("```json\n")[1].split("```")[0])
    chat = chat_from_json(example, id=example["id"], mode="chat", character="Ada", mtime=0.0)
    assert [m.content for m in chat.messages] == ["Hello!", "1 < 2?", "Yes."]
    assert version_numbers(chat)[2] == (2, 2)  # "message 4 is version 2/2 of the reply to message 2"
    assert switch_version(chat, 2, 1).messages[2].content == "Indeed it is."
    assert chat.messages[1].attachments[0].name == "notes.txt"
    assert chat.internal() == example["internal"] and chat.visible() == example["visible"]
