"""Images in a chat, in headless Chromium against a real server whose model reads images
(the tiny model with a generated projector): one attached with the file picker, one pasted,
each sent with a question; the thumbnails show in the conversation, the model answers, and
after a reload both images and both replies are still there."""

from __future__ import annotations

import base64
import io

import pytest
from tiny_model import write_tiny_model
from tiny_projector import write_tiny_projector
from ui_helpers import screenshot, send, set_max_tokens, wait_reply_done

pytestmark = pytest.mark.browser


def png(seed: int, size=(96, 80)) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("browser-images")
    models = folder / "models"
    models.mkdir()
    write_tiny_model(models / "tiny-vision.gguf", name="tiny vision")
    write_tiny_projector(models / "mmproj-tiny-vision.gguf", 64)
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        [*tiny_args(user_data, models, ctx_size=2048, model="tiny-vision")],
        log_path=folder / "server.log",
        wait_for="ui",
    )
    yield proc
    proc.stop()
    log = proc.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


LOADED_THUMBS = """selector => [...document.querySelectorAll(selector)]
    .filter(img => img.complete && img.naturalWidth > 0).length"""


def loaded(page, selector: str) -> int:
    return page.evaluate(LOADED_THUMBS, selector)


def test_images_by_picker_and_paste_are_sent_shown_and_kept(site, new_page, tmp_path):
    picked = tmp_path / "picked.png"
    picked.write_bytes(png(1))
    page = new_page()
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item.active")
    page.wait_for_selector("#messages .message, #messages .empty-chat")
    set_max_tokens(page, 6)

    page.set_input_files("#file-input", str(picked))
    page.wait_for_selector("#attachments .image-chip:not(.pending) img.image-thumb")
    send(page, "What is in the picture?")
    wait_reply_done(page)

    # a screenshot pasted into the message box
    page.evaluate(
        """data => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "image.png", { type: "image/png" }));
            const paste = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true });
            document.querySelector("#input").dispatchEvent(paste);
        }""",
        base64.b64encode(png(2)).decode(),
    )
    page.wait_for_selector("#attachments .image-chip:not(.pending) img.image-thumb")
    send(page, "And this one?")
    wait_reply_done(page)

    page.wait_for_function(f"() => ({LOADED_THUMBS})('.message.user img.image-thumb') === 2")
    replies = page.locator(".message.assistant .content").all_inner_texts()
    assert len(replies) == 2 and all(r.strip() for r in replies)
    screenshot(page, "images-in-chat")

    page.reload()
    page.wait_for_selector(".message.user img.image-thumb")
    page.wait_for_function(f"() => ({LOADED_THUMBS})('.message.user img.image-thumb') === 2")
    assert page.locator(".message.assistant .content").all_inner_texts() == replies
    assert page.locator(".message.user .content").all_inner_texts() == [
        "What is in the picture?",
        "And this one?",
    ]
    # a thumbnail opens the full image
    href = page.locator(".message.user .image-chip a").first.get_attribute("href")
    assert page.request.get(site.ui_url + href).body() == png(1)
