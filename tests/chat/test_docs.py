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
