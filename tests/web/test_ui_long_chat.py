"""A chat of 1,000 messages (code blocks included) in headless Chromium: it opens quickly
because only its end is built, older messages appear as the view scrolls up to them, and a
reply streams into it without long main-thread tasks. The figures in docs/ui.md come from
bench/bench_ui_long_chat.py; the bounds here are loose (this machine is shared), and would
still catch a page that builds the whole chat, or renders every frame from scratch."""

from __future__ import annotations

import pytest
from long_chat import recorder, stream_figures, write_long_chat

pytestmark = pytest.mark.browser

COUNT = 1000


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("long-chat")
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, model_dir, ctx_size=4096)], log_path=folder / "server.log", wait_for="ui"
    )
    proc.extra["chat"] = write_long_chat(user_data, COUNT)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def test_a_thousand_messages_open_stream_and_scroll(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(recorder(COUNT))
    errors = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site.ui_url}/?chat={site.extra['chat']}")
    page.wait_for_function("() => window.__opened !== null", timeout=30_000)
    assert page.evaluate("window.__opened") < 4000  # ms from navigation; about 1 s here
    built = page.locator("#messages .message").count()
    assert 10 <= built <= 40  # only the end of the chat is built
    page.wait_for_selector(".message .code-block .hljs-keyword")  # highlighted once idle

    page.fill("#param-max_tokens", "1500")
    since = page.evaluate("performance.now()")
    page.evaluate("window.__recordFrames()")
    page.fill("#input", "One more, please.")
    page.press("#input", "Enter")
    page.wait_for_selector(".message.streaming .md-tail", state="attached", timeout=30_000)
    page.wait_for_selector(".message.streaming", state="detached", timeout=120_000)
    figures = stream_figures(page, since)
    assert figures["frames"] > 20 and figures["longest_task_ms"] < 400, figures
    assert page.locator(".message.assistant").last.locator(".model-tag").inner_text() == "tiny"

    page.evaluate(
        """() => new Promise((done) => {
          const box = document.getElementById('messages');
          const step = () => {
            box.scrollTop = Math.max(0, box.scrollTop - 1500);
            if (box.querySelector('.message[data-index="0"]') && box.scrollTop === 0) done();
            else requestAnimationFrame(step);
          };
          step();
        })"""
    )
    assert page.locator("#messages .message").count() == COUNT + 2  # and the new exchange
    assert page.locator(".message").first.locator(".content").inner_text().startswith("Question 0:")
    context.close()
    assert not errors, errors


STREAM = """async () => {
  const { MarkdownStream } = await import('/ui/static/js/markdown.js');
  const box = document.createElement('div');
  const stream = new MarkdownStream(box);
  stream.update('First paragraph.\\n\\nSecond');
  const first = box.querySelector('.md-kept p');
  stream.update('First paragraph.\\n\\nSecond paragraph.\\n\\n```py\\nx = 1\\n\\ny = 2');
  return {
    same: first === box.querySelector('.md-kept p'),
    kept: [...box.querySelectorAll('.md-kept p')].map((p) => p.textContent),
    tail: box.querySelector('.md-tail code')?.textContent,
  };
}"""


def test_a_streamed_reply_renders_finished_blocks_once(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    result = page.evaluate(STREAM)
    assert result["same"]  # a finished paragraph is never rendered again
    assert result["kept"] == ["First paragraph.", "Second paragraph."]
    assert result["tail"] == "x = 1\n\ny = 2"  # a blank line inside an open code fence does not end it
