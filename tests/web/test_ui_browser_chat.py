"""The chat page in headless Chromium against a real server with the tiny model."""

from __future__ import annotations

import json

import pytest
from ui_helpers import last_reply, new_chat, open_chat, screenshot, send, set_max_tokens, wait_reply_done

pytestmark = pytest.mark.browser

# Samples the streaming message's length once per animation frame, until told to stop.
# Markdown's emphasis and code marks vanish when their closing mark arrives ("*a" becomes
# "a"), so they are not counted.
SHOWN_LENGTH = "(node) => node.textContent.replace(/[*_~`]/g, '').length"
SAMPLE_FRAMES = """() => {
  window.__frames = [];
  window.__sampling = true;
  const shown = SHOWN_LENGTH;
  const tick = () => {
    const content = document.querySelector('.message.streaming .content');
    if (content) window.__frames.push(shown(content));
    if (window.__sampling) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}""".replace("SHOWN_LENGTH", SHOWN_LENGTH)


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    """One server for the module's tests; each test opens its own chats."""
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("browser-chat")
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [
            # room for replies of thousands of tokens: Stop must win the race
            *tiny_args(user_data, model_dir, ctx_size=16384),
            "--parallel",
            "2",
        ],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def test_tokens_arrive_incrementally_and_the_reply_is_saved(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    assert page.locator(".message.assistant").count() == 1  # the greeting
    set_max_tokens(page, 1500)
    page.evaluate(SAMPLE_FRAMES)
    send(page, "Tell me a long story")
    assert page.locator(".message.user .content").last.inner_text() == "Tell me a long story"
    wait_reply_done(page)
    page.evaluate("window.__sampling = false")
    frames = page.evaluate("window.__frames")
    painted = sorted({length for length in frames if length > 0})
    final = page.locator(".message.assistant .content").last.evaluate(SHOWN_LENGTH)
    assert len(painted) >= 3 and painted[0] < final, (painted[:10], final)  # several paints
    assert frames == sorted(frames)  # it only grows
    assert "tokens" in page.locator(".message.assistant .stats").last.inner_text()
    text = last_reply(page)
    page.reload()
    page.wait_for_selector(".message.user")
    assert last_reply(page) == text  # saved exactly as shown
    screenshot(page, "chat-tiny")


def test_stop_mid_stream(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 8000)
    send(page, "Go on forever")
    page.wait_for_function(
        "() => (document.querySelector('.message.streaming .content')?.textContent.length || 0) > 20"
    )
    assert page.get_attribute("#send", "aria-label") == "Stop"
    page.click("#send")
    wait_reply_done(page)
    assert "stopped" in page.locator(".message.assistant .stats").last.inner_text()
    shown = last_reply(page)
    assert shown
    page.wait_for_timeout(300)
    assert last_reply(page) == shown  # nothing more arrives
    page.reload()
    page.wait_for_selector(".message.user")
    assert last_reply(page) == shown


def test_escape_stops_too(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 8000)
    send(page, "Again")
    page.wait_for_selector(".message.streaming")
    page.keyboard.press("Escape")
    wait_reply_done(page)
    assert "stopped" in page.locator(".message.assistant .stats").last.inner_text()


def test_regenerate_and_continue(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 30)
    send(page, "Say something")
    wait_reply_done(page)
    first = last_reply(page)

    page.click("#regenerate")
    wait_reply_done(page)
    second = last_reply(page)
    assert page.locator(".message.assistant").count() == 2  # greeting + one reply, replaced
    assert second and second != first

    page.click("#continue")
    wait_reply_done(page)
    third = last_reply(page)
    assert third.startswith(second[:20]) and len(third) > len(second)
    assert page.locator(".message.assistant").count() == 2


def test_impersonate_and_remove_last(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 12)
    page.click("#impersonate")
    page.wait_for_function("() => document.querySelector('#input').value.length > 0")
    wait_reply_done(page)
    assert page.locator(".message.user").count() == 0  # not sent, only written for you
    send(page, "Remove me later")
    wait_reply_done(page)
    page.click("#remove-last")
    page.wait_for_function("() => document.querySelectorAll('.message.user').length === 0")
    assert page.input_value("#input") == "Remove me later"


def test_enter_sends_and_shift_enter_adds_a_line(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 5)
    page.click("#input")
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#input") == "line one\nline two"
    assert page.locator(".message.user").count() == 0
    page.keyboard.press("Enter")
    page.wait_for_selector(".message.user")
    assert page.locator(".message.user .content").inner_text() == "line one\nline two"
    wait_reply_done(page)


def test_switch_character_and_mode(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    page.click("#character-button")
    page.click(".picker-item:has-text('Ada')")
    page.wait_for_function("() => document.querySelector('#character-name').textContent === 'Ada'")
    page.wait_for_selector(".message.assistant .author:has-text('Ada')")
    assert "notebook" in page.locator(".message.assistant .content").first.inner_text()  # her greeting
    assert page.locator(".message.assistant img.avatar").count() == 1  # her picture
    ada_chat = page.locator(".chat-item.active .chat-name").inner_text()

    page.click("#mode-switch [data-mode='instruct']")
    page.wait_for_selector(".empty-chat")
    assert page.get_attribute("#mode-switch [data-mode='instruct']", "aria-checked") == "true"
    set_max_tokens(page, 8)
    send(page, "Instruct question")
    wait_reply_done(page)
    assert page.locator(".message.assistant .author").last.inner_text() == "Assistant"

    page.click("#mode-switch [data-mode='chat']")
    page.wait_for_function("() => document.querySelector('#character-name').textContent === 'Ada'")
    page.wait_for_selector(".message.assistant .author:has-text('Ada')")
    assert page.locator(".chat-item.active .chat-name").inner_text() == ada_chat
    assert "Instruct question" not in page.locator("#chat-list").inner_text()

    page.keyboard.press("Escape")  # keyboard: the mode switch is a radio group with arrow keys
    page.focus("#mode-switch [data-mode='chat']")
    page.keyboard.press("ArrowRight")
    chat_instruct = page.locator("#mode-switch [data-mode='chat-instruct']")
    chat_instruct.and_(page.locator("[aria-checked='true']")).wait_for()


def test_rename_and_delete_chats(site, new_page):
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    active = page.locator(".chat-item.active")
    active.hover()
    active.locator("button[aria-label='Rename chat']").click()
    page.fill(".rename-input", "Renamed <b>chat</b>")
    page.press(".rename-input", "Enter")
    page.wait_for_selector(".chat-item.active .chat-name:text-is('Renamed <b>chat</b>')")
    assert page.locator("#chat-title").inner_text() == "Renamed <b>chat</b>"
    count = page.locator(".chat-item").count()
    page.locator(".chat-item.active button[aria-label='Delete chat']").click()
    page.click("#confirm-ok")
    page.wait_for_function(f"() => document.querySelectorAll('.chat-item').length === {count - 1}")
    assert "Renamed" not in page.locator("#chat-list").inner_text()


def test_new_chat_switch_back_and_find_it_after_a_restart(ui_server, new_page):
    first_server = ui_server()
    page = new_page()
    open_chat(page, first_server.ui_url + "/")
    set_max_tokens(page, 10)
    send(page, "The first chat")
    wait_reply_done(page)
    first_reply = last_reply(page)
    new_chat(page)
    send(page, "The second chat")
    wait_reply_done(page)
    page.click(".chat-link:has-text('The first chat')")
    page.wait_for_selector(".message.user .content:text-is('The first chat')")
    assert last_reply(page) == first_reply

    first_server.stop()
    second_server = ui_server()  # the same user_data, new ports
    page.goto(second_server.ui_url + "/?character=Assistant")  # a new origin: a newcomer's page
    page.wait_for_selector("#chat-list .chat-item")
    titles = page.locator("#chat-list .chat-name").all_inner_texts()
    assert "The first chat" in titles and "The second chat" in titles
    page.click(".chat-link:has-text('The first chat')")
    page.wait_for_selector(".message.user .content:text-is('The first chat')")
    assert last_reply(page) == first_reply


XSS = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    '[click me](javascript:window.__pwned=3) <a href="javascript:window.__pwned=4">link</a> '
    '<svg onload="window.__pwned=5"></svg> <iframe src="javascript:window.__pwned=6"></iframe>'
)
EVIL_NAME = '<img src=x onerror="window.__pwned=7"><script>window.__pwned=8</script>'


def assert_inert(page) -> None:
    assert page.evaluate("window.__pwned") is None
    for selector in (
        "#messages img:not(.avatar)",
        "#messages script",
        "#messages svg:not(.icon)",
        "#messages iframe",
        "#messages a[href^='javascript']",
        "#messages [onerror]",
        "#messages [onload]",
        "#chat-list img",
        "#sidebar script",
        "#picker-grid script",
    ):
        assert page.locator(selector).count() == 0, selector


def test_markup_in_replies_names_and_titles_renders_as_text(site, new_page):
    evil = site.extra["user_data"] / "characters" / "Evil.yaml"
    evil.write_text(json.dumps({"name": EVIL_NAME, "greeting": XSS, "context": "Evil."}))
    page = new_page()
    page.goto(site.ui_url + "/?character=Evil")
    page.wait_for_selector(".message.assistant")
    assert page.locator("#character-name").inner_text() == EVIL_NAME
    assert page.locator(".message.assistant .author").first.inner_text() == EVIL_NAME
    greeting = page.locator(".message.assistant .content").first
    assert "<img src=x onerror=" in greeting.inner_text() and "<script>" in greeting.inner_text()
    assert_inert(page)

    # the same text streamed: continue the greeting, and send it as a message
    set_max_tokens(page, 5)
    page.click("#continue")
    wait_reply_done(page)
    send(page, XSS)
    wait_reply_done(page)
    assert "<svg onload=" in page.locator(".message.user .content").last.inner_text()
    active = page.locator(".chat-item.active")
    active.hover()
    active.locator("button[aria-label='Rename chat']").click()
    page.fill(".rename-input", EVIL_NAME)
    page.press(".rename-input", "Enter")
    page.wait_for_selector(".chat-item.active")
    assert page.locator(".chat-item.active .chat-name").inner_text() == EVIL_NAME
    page.click("#character-button")
    assert EVIL_NAME in page.locator("#picker-grid").inner_text()
    page.keyboard.press("Escape")
    page.goto(site.ui_url + "/characters")
    page.wait_for_selector(".char-card")
    assert EVIL_NAME in page.locator("#gallery").inner_text()
    assert page.locator("#gallery script").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_markdown_code_blocks_are_highlighted_with_a_copy_button(site, new_page):
    chat_file = None
    page = new_page()
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    chat_id = page.evaluate("new URL(location.href).searchParams.get('chat')")
    chat_file = site.extra["user_data"] / "logs" / "chat" / "Assistant" / f"{chat_id}.json"
    data = json.loads(chat_file.read_text())
    data["messages"].append({"role": "user", "content": "Show me code"})
    data["messages"].append(
        {
            "role": "assistant",
            "content": "Here:\n\n```python\ndef hello():\n    return 'hi'\n```\n\n**bold**, `code` and "
            "[a link](https://example.org).",
        }
    )
    chat_file.write_text(json.dumps(data))
    page.reload()
    page.wait_for_selector(".code-block")
    assert page.locator(".code-block .code-lang").inner_text() == "python"
    assert page.locator(".code-block .hljs-keyword").first.inner_text() == "def"
    assert page.locator(".message.assistant strong").last.inner_text() == "bold"
    link = page.locator(".message.assistant a").last
    assert link.get_attribute("href") == "https://example.org"
    assert "noopener" in link.get_attribute("rel")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click(".copy-code")
    page.wait_for_selector(".copy-code:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == "def hello():\n    return 'hi'\n"
    screenshot(page, "chat-markdown")


def test_the_view_follows_new_text_unless_scrolled_up(site, new_page):
    page = new_page(height=600)
    open_chat(page, site.ui_url + "/")
    new_chat(page)
    set_max_tokens(page, 8000)
    send(page, "A long one")
    page.wait_for_function(
        "() => (document.querySelector('.message.streaming .content')?.textContent.length || 0) > 2500"
    )
    at_bottom = (
        "() => { const m = document.querySelector('#messages');"
        " return m.scrollHeight - m.scrollTop - m.clientHeight < 60; }"
    )
    assert page.evaluate(at_bottom)
    page.mouse.move(500, 300)
    page.mouse.wheel(0, -600)
    page.wait_for_selector("#jump-latest:not([hidden])")
    page.wait_for_timeout(300)
    assert not page.evaluate(at_bottom)  # left where the user put it
    page.click("#send")  # stop
    wait_reply_done(page)
    page.click("#jump-latest")
    page.wait_for_function(at_bottom)
