"""Files in a message, in headless Chromium against a real server: a .txt and a .pdf are read,
sent and used in the prompt; bad files (200 MB, a PDF that is not one, a name with ../) get
a clear message in the page, and the server logs no traceback."""

from __future__ import annotations

import json

import pytest
from document_files import docx_bytes, pdf_bytes
from ui_helpers import new_chat, screenshot, send, set_max_tokens, ui_site, wait_reply_done

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    folder = tmp_path_factory.mktemp("browser-files")
    with ui_site(folder, model_dir, ctx_size=4096, forbidden=("Traceback", "ERROR")) as proc:
        yield proc


def fresh_chat(page, site) -> None:
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    new_chat(page)


def chips(page) -> list[str]:
    return page.locator("#attachments .file-name").all_inner_texts()


def test_a_txt_and_a_pdf_are_read_sent_and_in_the_prompt(site, new_page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Meeting notes: the launch moves to TUESDAY.\n")
    report = tmp_path / "report.pdf"
    report.write_bytes(pdf_bytes(["The secret word is PINEAPPLE."]))
    page = new_page()
    fresh_chat(page, site)
    page.set_input_files("#file-input", [str(notes), str(report)])
    page.wait_for_function(
        "() => [...document.querySelectorAll('#attachments .file-size')]"
        ".filter(e => /tokens/.test(e.textContent)).length === 2"
    )
    assert chips(page) == ["notes.txt", "report.pdf"]
    assert "tokens" in page.inner_text("#token-count")
    screenshot(page, "files-attached-tiny")
    set_max_tokens(page, 8)
    send(page, "What do the files say?")
    wait_reply_done(page)
    assert page.locator(".message.user .file-name").all_inner_texts() == ["notes.txt", "report.pdf"]
    assert chips(page) == []  # the input box is empty again
    # the prompt of the next reply holds both files' text before the question
    page.click("#chat-menu-button")
    page.click("[data-action='prompt']")
    page.wait_for_selector("#prompt-dialog[open]")
    prompt = page.inner_text("#prompt-text")
    assert (
        prompt.index("[File: notes.txt]") < prompt.index("TUESDAY") < prompt.index("What do the files say?")
    )
    assert "PINEAPPLE" in prompt and "[File: report.pdf]" in prompt
    page.keyboard.press("Escape")
    chat_id = page.evaluate("new URL(location.href).searchParams.get('chat')")
    saved = json.loads((site.extra["user_data"] / "logs" / "instruct" / f"{chat_id}.json").read_text())
    files = saved["messages"][0]["attachments"]
    assert [f["name"] for f in files] == ["notes.txt", "report.pdf"] and "PINEAPPLE" in files[1]["text"]
    page.reload()
    page.wait_for_selector(".message.user .file-chip")
    assert page.locator(".message.user .file-name").all_inner_texts() == ["notes.txt", "report.pdf"]


def test_a_word_file_and_removing_one_before_sending(site, new_page, tmp_path):
    memo = tmp_path / "memo.docx"
    memo.write_bytes(docx_bytes(["Quarterly memo", "Sales rose."]))
    other = tmp_path / "other.md"
    other.write_text("# Not this one")
    page = new_page()
    fresh_chat(page, site)
    page.set_input_files("#file-input", [str(memo), str(other)])
    # both read (a chip shows tokens once its file is read): the chip being read changes
    # width when it is, and a click aimed at its button then could land beside it
    page.wait_for_function(
        "() => [...document.querySelectorAll('#attachments .file-size')]"
        ".filter((size) => size.textContent.endsWith('tokens')).length === 2"
    )
    page.click("#attachments button[aria-label='Remove other.md']")
    assert chips(page) == ["memo.docx"]
    set_max_tokens(page, 4)
    send(page, "Summarize")
    wait_reply_done(page)
    page.click("#chat-menu-button")
    page.click("[data-action='prompt']")
    page.wait_for_selector("#prompt-dialog[open]")
    prompt = page.inner_text("#prompt-text")
    assert "Sales rose." in prompt and "Not this one" not in prompt


def last_error(page, count: int) -> str:
    page.wait_for_function(f"() => document.querySelectorAll('.toast-error').length >= {count}")
    return page.locator(".toast-error .toast-text").nth(count - 1).inner_text()


def test_bad_files_get_a_clear_message(site, new_page, tmp_path):
    big = tmp_path / "huge.bin"
    with open(big, "wb") as f:  # 200 MB on disk without writing them: a sparse file
        f.truncate(200 * 1024 * 1024)
    fake = tmp_path / "fake.pdf"
    fake.write_text("this is not a PDF at all")
    page = new_page()
    fresh_chat(page, site)
    page.set_input_files("#file-input", str(big))
    assert "200 MB" in last_error(page, 1) and "25 MB" in last_error(page, 1)
    page.set_input_files("#file-input", str(fake))
    assert "fake.pdf" in last_error(page, 2) and "not a PDF" in last_error(page, 2)
    page.evaluate(
        """() => { const data = new DataTransfer();
          data.items.add(new File(['hello'], '../evil.txt', {type: 'text/plain'}));
          document.querySelector('#composer-box').dispatchEvent(
            new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true})); }"""
    )
    assert "'../evil.txt' is a path" in last_error(page, 3)
    assert chips(page) == []  # nothing was attached
    screenshot(page, "files-refused-tiny")
