"""LocalDocs in headless Chromium: create and index a collection from the chat page's panel,
switch it on, ask, see the sources under the reply and again after a reload, re-index a
changed folder, switch it off, and delete it."""

from __future__ import annotations

import json
import re

import pytest
from localdocs_support import allow_folders, make_documents

pytestmark = pytest.mark.browser
pytest.importorskip("sentence_transformers")

QUESTION = "What is the name of the lighthouse keeper's cat?"


def send(page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_selector(".message.streaming", state="detached", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#send').getAttribute('aria-label') === 'Send'")


def sources_of_last_reply(page) -> list[str]:
    reply = page.locator(".message.assistant").last
    return reply.locator(".localdocs-sources li code").all_text_contents()  # inside a closed <details>


def test_the_localdocs_panel_from_a_new_collection_to_saved_sources(server, user_data, new_page, tmp_path):
    from playwright.sync_api import expect

    folder = make_documents(tmp_path)
    allow_folders(user_data, tmp_path)
    proc = server("--extensions", "localdocs", "--ctx-size", "2048", wait_for="ui")
    page = new_page()
    page.goto(proc.ui_url + "/?character=Assistant")  # chat mode: the chat is saved under Assistant
    page.wait_for_selector("#chat-list .chat-item.active")
    panel = page.locator(".localdocs-panel")
    expect(panel).to_contain_text("No collections yet.")

    # A folder that is not there: a clear message, nothing created.
    panel.get_by_label("New collection name").fill("nowhere")
    panel.get_by_label("Folder of the new collection").fill(str(tmp_path / "missing"))
    panel.get_by_role("button", name="Create and index").click()
    expect(panel.locator(".localdocs-note")).to_contain_text("missing")
    expect(panel.locator(".localdocs-collection")).to_have_count(0)

    panel.get_by_label("New collection name").fill("home")
    panel.get_by_label("Folder of the new collection").fill(str(folder))
    panel.get_by_role("button", name="Create and index").click()
    home = panel.locator(".localdocs-collection[data-collection='home']")
    expect(home.locator(".localdocs-status")).to_have_text(
        re.compile(r"^6 files · \d+ chunks$"), timeout=120_000
    )
    expect(home.get_by_role("checkbox")).to_be_checked()  # switched on for this chat

    page.fill("#param-max_tokens", "3")
    send(page, QUESTION)
    sources = sources_of_last_reply(page)
    assert sources and sources[0].endswith("lighthouse.pdf"), sources
    expect(page.locator(".message.assistant").last.locator(".localdocs-sources summary")).to_have_text(
        f"Sources ({len(sources)})"
    )

    # The sources are saved with the reply: a reload (or a restart) shows them again.
    chat_id = page.evaluate("() => new URL(location.href).searchParams.get('chat')")
    page.reload()
    page.wait_for_selector(".message.user")
    assert sources_of_last_reply(page) == sources
    saved = json.loads((user_data / "logs" / "chat" / "Assistant" / f"{chat_id}.json").read_text())
    reply = saved["messages"][-1]
    assert reply["role"] == "assistant" and reply["extras"]["localdocs"]["collections"] == ["home"]
    assert [s["path"] for s in reply["extras"]["localdocs"]["sources"]] == sources

    # A new file, then Index: the panel counts it.
    (folder / "boat.txt").write_text("The rowing boat is painted blue and moored by the pier.\n")
    home.get_by_role("button", name="Index").click()
    expect(home.locator(".localdocs-status")).to_have_text(
        re.compile(r"^7 files · \d+ chunks$"), timeout=60_000
    )

    # Switched off, the next reply searches nothing.
    home.get_by_role("checkbox").uncheck()
    send(page, QUESTION)
    assert sources_of_last_reply(page) == []

    # Delete asks first, in the page's own dialog.
    home.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete home?")
    dialog.get_by_role("button", name="Delete").click()
    expect(panel.locator(".localdocs-collection")).to_have_count(0)
    expect(panel).to_contain_text("No collections yet.")
    assert folder.joinpath("garden.txt").exists()  # the files stay
