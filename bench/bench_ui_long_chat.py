"""A chat of 1,000 messages (code blocks included) in Chromium: time to open it, and the
longest main-thread task and frame gap while a reply streams into it; the figures in
docs/ui.md come from here.

Starts Hearth on the tiny test model (thousands of tokens a second: the hardest stream for
the page) or, with --real, the default model; runs --rounds rounds and prints medians.

    .venv/bin/python bench/bench_ui_long_chat.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "web")]

from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from long_chat import recorder, stream_figures, write_long_chat  # noqa: E402
from servers import make_user_data, start_server, tiny_args  # noqa: E402
from tiny_model import write_tiny_model  # noqa: E402


def one_round(browser, url: str, chat_id: str, count: int, tokens: int) -> dict:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_init_script(recorder(count))
    page = context.new_page()
    page.goto(f"{url}/?chat={chat_id}")
    page.wait_for_function("() => window.__opened !== null", timeout=60_000)
    opened = page.evaluate("window.__opened")
    open_tasks = [t["duration"] for t in page.evaluate("window.__longTasks")]
    page.fill("#param-max_tokens", str(tokens))
    since = page.evaluate("performance.now()")
    page.evaluate("window.__recordFrames()")
    page.fill("#input", "One more answer, please.")
    page.press("#input", "Enter")
    page.wait_for_selector(".message.streaming")
    page.wait_for_selector(".message.streaming", state="detached", timeout=300_000)
    figures = stream_figures(page, since)
    built = page.locator("#messages .message").count()
    scrolled = scroll_to_first(page, count)
    context.close()
    return {
        "open_ms": round(opened),
        "open_longest_task_ms": max(open_tasks, default=0.0),
        "built": built,
        **figures,
        **scrolled,
    }


def scroll_to_first(page, count: int) -> dict:
    """Scroll up to the chat's first message, as a reader would (older ones are built as the
    view nears them): how long it takes, and the longest task on the way."""
    since = page.evaluate("performance.now()")
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
    took = page.evaluate("performance.now()") - since
    tasks = [t["duration"] for t in page.evaluate("window.__longTasks") if t["start"] >= since]
    return {"scroll_to_first_ms": round(took), "scroll_longest_task_ms": max(tasks, default=0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=1500, help="max new tokens of the streamed reply")
    parser.add_argument("--real", action="store_true", help="the default model instead of the tiny one")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        user_data = make_user_data(folder / "user_data")
        models = folder / "models"
        models.mkdir()
        if not args.real:
            write_tiny_model(models / "tiny.gguf")
        chat_id = write_long_chat(user_data, args.messages)
        flags = tiny_args(
            user_data, models, ctx_size=4096, model=None if args.real else "tiny", threads_batch=2
        )
        server = start_server(flags, log_path=folder / "server.log", wait_for="ui", timeout=180)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                rounds = [
                    one_round(browser, server.ui_url, chat_id, args.messages, args.tokens)
                    for _ in range(args.rounds)
                ]
                browser.close()
        finally:
            server.stop()
    for row in rounds:
        print(row)
    keys = [
        "open_ms",
        "open_longest_task_ms",
        "longest_task_ms",
        "longest_frame_gap_ms",
        "long_tasks",
        "scroll_to_first_ms",
        "scroll_longest_task_ms",
    ]
    print("medians:", {k: statistics.median(r[k] or 0 for r in rounds) for k in keys})


if __name__ == "__main__":
    main()
