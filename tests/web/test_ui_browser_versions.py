"""Editing, versions and branches in headless Chromium against a real server: edit a middle
message and answer it again, three versions of a reply that survive a reload, ←/→ and ↑,
branch here, and Continue on a version that keeps every version's text."""

from __future__ import annotations

import json

import pytest
from ui_helpers import last_reply, new_chat, screenshot, send, set_max_tokens, wait_reply_done

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("browser-versions")
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, model_dir, ctx_size=4096), "--parallel", "2"],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def instruct_chat(page, site) -> None:
    """A new instruct chat (a newcomer's page starts there: the tiny model has a template)."""
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    assert page.get_attribute("#mode-switch [data-mode='instruct']", "aria-checked") == "true"
    new_chat(page)
    page.wait_for_selector(".empty-chat")


def saved_file(site, page) -> dict:
    chat_id = page.evaluate("new URL(location.href).searchParams.get('chat')")
    return json.loads((site.extra["user_data"] / "logs" / "instruct" / f"{chat_id}.json").read_text())


def versions_of_last(page) -> str:
    return page.locator(".message.assistant").last.locator(".version-count").inner_text()


def test_three_versions_navigate_and_survive_a_reload(site, new_page):
    page = new_page()
    instruct_chat(page, site)
    set_max_tokens(page, 12)
    send(page, "Name a colour")
    wait_reply_done(page)
    texts = [last_reply(page)]
    for _ in range(2):
        page.click("#regenerate")
        wait_reply_done(page)
        texts.append(last_reply(page))
    assert len(set(texts)) == 3 and versions_of_last(page) == "3/3"
    assert page.locator(".message.assistant").count() == 1  # one reply shown, three versions
    page.click(".message.assistant button[aria-label='Previous version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '2/3'")
    assert last_reply(page) == texts[1]
    page.locator("#messages").click(position={"x": 5, "y": 5})  # the keys move versions outside text fields
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '1/3'")
    assert last_reply(page) == texts[0]
    page.focus("#input")  # an empty input box gives the arrows to the versions too
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '2/3'")
    page.reload()
    page.wait_for_selector(".version-count")
    assert versions_of_last(page) == "2/3" and last_reply(page) == texts[1]
    screenshot(page, "versions-tiny")


def test_edit_a_middle_message_and_regenerate_from_it(site, new_page):
    page = new_page()
    instruct_chat(page, site)
    set_max_tokens(page, 8)
    for text in ("First question", "Second question", "Third question"):
        send(page, text)
        wait_reply_done(page)
    old_replies = page.locator(".message.assistant .content").all_inner_texts()
    middle = page.locator(".message.user").nth(1)
    middle.hover()
    middle.locator("button[aria-label='Edit message']").click()
    page.fill(".edit-input", "Second question, edited")
    page.click(".edit-form button:text-is('Send')")
    wait_reply_done(page)
    users = page.locator(".message.user .content").all_inner_texts()
    assert users == ["First question", "Second question, edited"]  # what followed is not shown
    assert page.locator(".message.user").nth(1).locator(".version-count").inner_text() == "2/2"
    assert page.locator(".message.assistant .content").first.inner_text() == old_replies[0]
    # the old version keeps everything that followed it
    page.locator(".message.user").nth(1).locator("button[aria-label='Previous version']").click()
    page.wait_for_function("() => document.querySelectorAll('.message.user').length === 3")
    assert page.locator(".message.assistant .content").all_inner_texts() == old_replies
    # a middle reply regenerated from here: a new version, the rest stays with the old one
    first_reply = page.locator(".message.assistant").first
    first_reply.hover()
    first_reply.locator("button[aria-label^='Regenerate from here']").click()
    wait_reply_done(page)
    assert page.locator(".message.user").count() == 1
    assert page.locator(".message.assistant .version-count").inner_text() == "2/2"
    data = saved_file(site, page)
    every = data["messages"] + data["branches"]
    users = {m["content"] for m in every if m["role"] == "user"}
    assert users == {"First question", "Second question", "Third question", "Second question, edited"}
    assert sum(m["role"] == "assistant" for m in every) == 5  # three old replies, two new ones


def test_save_an_edit_in_place_and_arrow_up(site, new_page):
    page = new_page()
    instruct_chat(page, site)
    set_max_tokens(page, 6)
    send(page, "Helo")
    wait_reply_done(page)
    reply = last_reply(page)
    page.focus("#input")
    page.keyboard.press("ArrowUp")  # in an empty box: edit my last message
    page.wait_for_selector(".message.user .edit-input")
    page.fill(".edit-input", "Hello")
    page.click(".edit-form button:text-is('Save')")
    page.wait_for_selector(".message.user .edit-input", state="detached")
    assert page.locator(".message.user .content").inner_text() == "Hello"
    assert last_reply(page) == reply  # Save keeps the reply
    reply_view = page.locator(".message.assistant").last
    reply_view.hover()
    reply_view.locator("button[aria-label='Edit message']").click()
    page.fill(".edit-input", "A better answer.")
    page.keyboard.press("Enter")
    page.wait_for_selector(".edit-input", state="detached")
    assert last_reply(page) == "A better answer." and versions_of_last(page) == "2/2"
    page.reload()
    page.wait_for_selector(".message.user")
    assert page.locator(".message.user .content").inner_text() == "Hello"
    assert last_reply(page) == "A better answer."


def test_branch_here_and_find_both_chats(site, new_page):
    page = new_page()
    instruct_chat(page, site)
    set_max_tokens(page, 6)
    send(page, "Trunk message one")
    wait_reply_done(page)
    send(page, "Trunk message two")
    wait_reply_done(page)
    original = page.evaluate("new URL(location.href).searchParams.get('chat')")
    first_reply = page.locator(".message.assistant").first
    first_reply.hover()
    first_reply.locator("button[aria-label^='Branch here']").click()
    page.wait_for_function("(old) => new URL(location.href).searchParams.get('chat') !== old", arg=original)
    assert page.locator(".message.user .content").all_inner_texts() == ["Trunk message one"]
    assert "(branch)" in page.inner_text("#chat-title")
    names = page.locator("#chat-list .chat-name").all_inner_texts()
    assert "Trunk message one (branch)" in names and "Trunk message one" in names
    set_max_tokens(page, 4)
    send(page, "Only on the branch")
    wait_reply_done(page)
    page.locator(".chat-item").filter(has_not_text="branch").filter(has_text="Trunk message one").locator(
        ".chat-link"
    ).click()
    page.wait_for_function("(id) => new URL(location.href).searchParams.get('chat') === id", arg=original)
    assert page.locator(".message.user .content").all_inner_texts() == [
        "Trunk message one",
        "Trunk message two",
    ]


def test_continue_on_a_version_keeps_every_versions_text(site, new_page):
    page = new_page()
    instruct_chat(page, site)
    set_max_tokens(page, 10)
    send(page, "Start a story")
    wait_reply_done(page)
    first = last_reply(page)
    page.click("#regenerate")
    wait_reply_done(page)
    second = last_reply(page)
    page.click(".message.assistant button[aria-label='Previous version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '1/2'")
    page.click("#continue")
    wait_reply_done(page)
    continued = last_reply(page)
    assert continued.startswith(first[:10]) and len(continued) > len(first)
    assert versions_of_last(page) == "1/2"
    page.click(".message.assistant button[aria-label='Next version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '2/2'")
    assert last_reply(page) == second  # the other version's text is whole
    page.reload()
    page.wait_for_selector(".version-count")
    page.click(".message.assistant button[aria-label='Previous version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '1/2'")
    assert last_reply(page) == continued
