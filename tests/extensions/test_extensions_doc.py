"""docs/extensions.md documents every hook the code declares, and the bundled extensions."""

from __future__ import annotations

import re
from pathlib import Path

from modules.chat.hooks import ChatHooks
from modules.extensions import HOOK_NAMES, HOOKS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "extensions.md").read_text(encoding="utf-8")


def test_every_hook_is_documented_with_its_signature_and_nothing_else_is():
    table = DOC[DOC.index("## Hooks") :]
    table = table[: table.index("\n\n", table.index("| ---"))]
    documented = re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE)
    assert documented == [spec.signature for spec in HOOKS]


def test_every_hook_has_a_section():
    for name in HOOK_NAMES:
        assert re.search(rf"^### `{name}", DOC, re.MULTILINE), name


def test_the_chat_engine_hooks_are_all_declared():
    engine_hooks = {name for name in vars(ChatHooks) if not name.startswith("_")}
    assert engine_hooks <= set(HOOK_NAMES)


def test_the_example_extension_in_the_docs_is_the_shipped_file():
    shipped = (
        Path(__file__).resolve().parents[2] / "extensions" / "character_bias" / "script.py"
    ).read_text()
    for line in ("def bot_prefix_modifier(string, state):", '"bias_string": " *I am so happy*",'):
        assert line in shipped and line in DOC
