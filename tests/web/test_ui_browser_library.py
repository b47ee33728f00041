"""Finding, keeping and moving chats, in headless Chromium against a real server: search by
a word from the middle of a chat, an incognito chat that leaves no file, export then import
gives the same chat, text-generation-webui's history imports, timestamps and model names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ui_helpers import (
    THINKING_TEMPLATE,
    new_chat,
    open_chat,
    screenshot,
    send,
    set_max_tokens,
    ui_site,
    wait_reply_done,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("browser-library")
    with ui_site(folder, model_dir, ctx_size=4096) as proc:
        yield proc


def chat_files(site) -> set[str]:
    return {p.name for p in (site.extra["user_data"] / "logs").rglob("*.json")}


def test_search_finds_a_chat_by_a_word_in_its_middle(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 4)
    for text in ("Good morning", "Tell me about the albatross and its wings", "Thanks, bye"):
        send(page, text)
        wait_reply_done(page)
    wanted = page.evaluate("new URL(location.href).searchParams.get('chat')")
    page.click("#mode-switch [data-mode='instruct']")  # the search spans modes and characters
    page.wait_for_selector("#mode-switch [data-mode='instruct'][aria-checked='true']")
    page.fill("#chat-search", "ALBATROSS")
    hit = page.locator(".search-hit").first
    hit.wait_for()
    assert page.locator(".search-hit").count() == 1
    assert hit.locator("mark").first.inner_text().lower() == "albatross"
    assert "Assistant · chat" in hit.inner_text()
    screenshot(page, "search-tiny")
    hit.locator(".chat-link").click()
    page.wait_for_function("(id) => new URL(location.href).searchParams.get('chat') === id", arg=wanted)
    assert page.get_attribute("#mode-switch [data-mode='chat']", "aria-checked") == "true"
    assert "albatross" in page.locator(".message.user .content").nth(1).inner_text()
    page.fill("#chat-search", "no-such-word-anywhere")
    page.wait_for_selector("#chats-title:text-is('Nothing found')")
    page.press("#chat-search", "Escape")
    page.wait_for_selector("#chat-list .chat-item.active")


def test_an_incognito_chat_leaves_no_file(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    before = chat_files(site)
    page.click("#new-incognito")
    page.wait_for_selector("#incognito-bar:not([hidden])")
    assert page.is_visible("#incognito-badge")
    set_max_tokens(page, 5)
    send(page, "Nobody may know this")
    wait_reply_done(page)
    page.click("#regenerate")
    wait_reply_done(page)
    assert page.locator(".version-count").inner_text() == "2/2"
    assert "Nobody may know" not in page.inner_text("#chat-list")
    assert "chat=" not in page.url
    assert chat_files(site) == before
    screenshot(page, "incognito-tiny")
    page.click("#new-chat")  # leaving it forgets it on the server too
    page.wait_for_selector("#incognito-bar", state="hidden")
    assert chat_files(site) - before and all("incognito" not in name for name in chat_files(site))


def test_export_then_import_gives_the_same_chat(site, new_page, tmp_path):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 6)
    send(page, "Export me")
    wait_reply_done(page)
    page.click("#regenerate")
    wait_reply_done(page)
    shown = page.locator(".message .content").all_inner_texts()
    page.click("#chat-menu-button")
    with page.expect_download() as download:
        page.click("[data-action='export-json']")
    exported = tmp_path / "chat.json"
    download.value.save_as(exported)
    assert download.value.suggested_filename == "Export me.json"
    page.click("#chat-menu-button")
    with page.expect_download() as markdown:
        page.click("[data-action='export-markdown']")
    assert "Export me" in Path(markdown.value.path()).read_text(encoding="utf-8")
    count = page.locator("#chat-list .chat-item").count()
    page.set_input_files("#import-input", str(exported))
    page.wait_for_function(f"() => document.querySelectorAll('#chat-list .chat-item').length === {count + 1}")
    assert page.locator(".message .content").all_inner_texts() == shown
    assert page.locator(".version-count").inner_text() == "2/2"
    page.click(".message.assistant button[aria-label='Previous version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '1/2'")
    imported = page.evaluate("new URL(location.href).searchParams.get('chat')")
    original = json.loads(exported.read_text())
    copy = json.loads(
        (site.extra["user_data"] / "logs" / "chat" / "Assistant" / f"{imported}.json").read_text()
    )
    assert sorted(m["content"] for m in copy["messages"] + copy["branches"]) == sorted(
        m["content"] for m in original["messages"] + original["branches"]
    )


def test_textgen_history_imports_with_times_and_model(site, new_page, tmp_path):
    history = {
        "internal": [["<|BEGIN-VISIBLE-CHAT|>", "How can I help you today?"], ["What is 2+2?", "It is 4."]],
        "visible": [["<|BEGIN-VISIBLE-CHAT|>", "How can I help you today?"], ["What is 2+2?", "It is 4."]],
        "metadata": {
            "assistant_0": {"timestamp": "Jan 05, 2025 10:30"},
            "user_1": {"timestamp": "Jan 05, 2025 10:31"},
            "assistant_1": {"timestamp": "Jan 05, 2025 10:31", "model_name": "Qwen3-8B-Q4_K_M"},
        },
    }
    path = tmp_path / "textgen-history.json"
    path.write_text(json.dumps(history))
    page = new_page()
    open_chat(page, site.ui_url + "/")
    count = page.locator("#chat-list .chat-item").count()
    page.set_input_files("#import-input", str(path))
    page.wait_for_function(f"() => document.querySelectorAll('#chat-list .chat-item').length === {count + 1}")
    assert page.locator(".message .content").all_inner_texts() == [
        "How can I help you today?",
        "What is 2+2?",
        "It is 4.",
    ]
    reply = page.locator(".message.assistant").last
    assert reply.locator(".model-tag").inner_text() == "Qwen3-8B-Q4_K_M"
    assert "2025" in reply.locator(".msg-time").inner_text()  # not today: the date is shown
    assert reply.locator(".msg-time").get_attribute("datetime").startswith("2025-01-05")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    page.set_input_files("#import-input", str(bad))
    page.wait_for_selector(".toast-error:has-text('not valid JSON')")


def test_the_thinking_switch_shows_where_the_template_reads_it(site, new_page):
    folder = site.extra["user_data"] / "instruction-templates"
    folder.mkdir(exist_ok=True)
    (folder / "Thinker.yaml").write_text(THINKING_TEMPLATE)
    page = new_page()
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    assert page.is_hidden("#thinking-field")  # the model's own template reads no switch
    page.select_option("#template", "Thinker")
    page.wait_for_selector("#thinking-field", state="visible")
    assert page.is_hidden("#effort-field")
    page.select_option("#thinking", "off")
    page.click("#chat-menu-button")
    page.click("[data-action='prompt']")
    page.wait_for_selector("#prompt-dialog[open]")
    assert "</think>" in page.inner_text("#prompt-text")
    page.keyboard.press("Escape")
    page.click("#mode-switch [data-mode='chat']")  # no template in chat mode: no switch
    page.wait_for_selector("#thinking-field", state="hidden")
