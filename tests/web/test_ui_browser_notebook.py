"""The Notebook in headless Chromium against a real server: Ctrl+Enter generates and streams
into the page, Stop keeps what was written, the text survives a reload and a restart, Undo
and Regenerate, and the parameters are the chat's."""

from __future__ import annotations

import pytest
from ui_helpers import screenshot

pytestmark = pytest.mark.browser

START = "Once upon a time, in a lighthouse by the sea,"


def open_notebook(page, url: str) -> None:
    page.goto(url + "/notebook")
    page.wait_for_selector("#notebook-list .chat-item.active")


def text_of(page) -> str:
    return page.input_value("#notebook-text")


def wait_idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('#notebook-text').readOnly")
    page.wait_for_function("() => document.querySelector('#generate').textContent.includes('Generate')")


def wait_written(page, base: str, before: str) -> str:
    """After a click that generates: the page idle again with a continuation of `base` that is
    not `before`. A click first saves (or undoes) and only then generates, so the page can
    look idle before the generation has begun."""
    page.wait_for_function(
        "([base, before]) => { const v = document.querySelector('#notebook-text').value;"
        " return v.startsWith(base) && v.length > base.length && v !== before; }",
        arg=[base, before],
    )
    wait_idle(page)
    return text_of(page)


def test_generate_stop_reload_and_restart(ui_server, new_page):
    first = ui_server("--ctx-size", "16384")
    page = new_page()
    open_notebook(page, first.ui_url)
    page.fill("#notebook-text", START)
    page.fill("#param-max_tokens", "6000")
    # A fixed seed: the tiny model's random text can end by itself (its end token), which
    # leaves nothing to stop; with this seed it runs past 2,500 tokens.
    page.fill("#param-seed", "42")
    page.focus("#notebook-text")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "(n) => document.querySelector('#notebook-text').value.length > n + 40", arg=len(START)
    )
    assert page.get_attribute("#notebook-text", "readonly") is not None  # no typing into the stream
    page.click("#generate")  # Stop
    wait_idle(page)
    written = text_of(page)
    assert written.startswith(START) and len(written) > len(START) + 40
    assert "stopped" in page.inner_text("#notebook-info")
    page.wait_for_timeout(300)
    assert text_of(page) == written  # nothing more arrives
    page.reload()
    page.wait_for_function("(t) => document.querySelector('#notebook-text').value === t", arg=written)
    screenshot(page, "notebook-tiny")

    first.stop()
    second = ui_server("--ctx-size", "16384")  # the same user_data: the text is on the server
    page.goto(second.ui_url + "/notebook")  # a new origin: nothing in this browser's storage
    page.wait_for_function("(t) => document.querySelector('#notebook-text').value === t", arg=written)
    page.click("#undo")
    page.wait_for_function("(t) => document.querySelector('#notebook-text').value === t", arg=START)


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("browser-notebook")
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, model_dir, ctx_size=2048)], log_path=folder / "server.log", wait_for="ui"
    )
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def test_typing_is_saved_regenerate_and_notebooks(site, new_page):
    page = new_page()
    open_notebook(page, site.ui_url)
    page.fill("#notebook-text", "Dear diary,")
    page.fill("#notebook-title", "Diary")
    page.wait_for_selector("#notebook-list .chat-name:text-is('Diary')")  # saved as you type
    page.fill("#param-max_tokens", "12")
    page.click("#generate")
    once = wait_written(page, "Dear diary,", "Dear diary,")
    assert once.startswith("Dear diary,") and len(once) > len("Dear diary,")
    assert "12 new tokens" in page.inner_text("#notebook-info")
    page.fill("#param-seed", "7")
    page.fill("#param-temperature", "1")
    page.click("#regenerate")  # undo the last generation, then generate again
    again = wait_written(page, "Dear diary,", once)
    assert again.startswith("Dear diary,") and again != once
    page.click("#new-notebook")
    page.wait_for_function("() => document.querySelector('#notebook-text').value === ''")
    assert page.locator("#notebook-list .chat-item").count() == 2
    page.click("#notebook-list .chat-link:has-text('Diary')")
    page.wait_for_function("(t) => document.querySelector('#notebook-text').value === t", arg=again)
    # the chat page has the same parameters
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    assert page.input_value("#param-max_tokens") == "12" and page.input_value("#param-seed") == "7"
