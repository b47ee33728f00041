"""Screenshots of the UI with the real default model (SmolLM2-135M-Instruct), for the docs.

They are saved under tests/.artifacts/screenshots/real/. To refresh the committed ones in
docs/screenshots/, run:

    HEARTH_SCREENSHOTS=docs .venv/bin/python -m pytest tests/web/test_ui_screenshots.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from ui_helpers import ARTIFACTS, UiClient, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.real_model]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FOLDER = DOCS if os.environ.get("HEARTH_SCREENSHOTS") == "docs" else ARTIFACTS / "real"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"

CHARACTERS = [
    (
        "Captain Nova",
        "Captain Nova commands the small exploration ship Meridian. Calm, dry humour, loves stars.",
        "Welcome aboard the Meridian, {{user}}. Where shall we fly today?",
        ((32, 42, 94), (126, 87, 194)),
        "N",
    ),
    (
        "Chef Marco",
        "Marco runs a tiny trattoria and teaches home cooking with patience and enthusiasm.",
        "Ciao {{user}}! Hungry? Tell me what is in your fridge.",
        ((214, 93, 48), (247, 183, 51)),
        "M",
    ),
    (
        "Dr. Lin",
        "Dr. Lin is a friendly sleep researcher who explains science in plain words.",
        "Hello {{user}}. Did you sleep well last night?",
        ((17, 120, 100), (106, 207, 160)),
        "L",
    ),
]


def portrait(top, bottom, letter: str) -> bytes:
    size = 512
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        t = y / (size - 1)
        draw.line(
            [(0, y), (size, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    overlay = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    shapes = ImageDraw.Draw(overlay)
    shapes.ellipse((96, 96, 416, 416), fill=(255, 255, 255, 46), outline=(255, 255, 255, 170), width=6)
    font = ImageFont.truetype(FONT, 170) if Path(FONT).exists() else ImageFont.load_default()
    shapes.text((size / 2, size / 2 + 4), letter, fill=(255, 255, 255, 255), font=font, anchor="mm")
    image = Image.alpha_composite(image.convert("RGBA"), overlay)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory, model_dir):
    from servers import make_user_data, start_server, tiny_args

    folder = tmp_path_factory.mktemp("screenshots")
    user_data = make_user_data(folder / "user_data")
    empty_models = folder / "models"
    empty_models.mkdir()
    proc = start_server(  # the real default model: screenshots should read well
        tiny_args(user_data, empty_models, ctx_size=2048, model=None, threads_batch=2),
        log_path=folder / "server.log",
        wait_for="ui",
        timeout=180,
    )
    ui = UiClient(proc.ui_url)
    for name, context, greeting, colors, letter in CHARACTERS:
        ui.http.post(
            proc.ui_url + "/ui/api/characters",
            data={"name": name, "context": context, "greeting": greeting},
            files={"picture": ("p.png", portrait(*colors, letter), "image/png")},
        ).raise_for_status()
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log()


def deterministic(page) -> None:
    page.select_option("#preset", "Deterministic")
    page.fill("#param-max_tokens", "200")


def ask(page, text: str) -> None:
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_selector(".message.streaming")
    page.wait_for_selector(".message.streaming", state="detached", timeout=120_000)


def versions_and_search(page) -> None:
    """Two more versions of the last reply, the second shown; then a search."""
    page.fill("#param-temperature", "0.9")
    for seed in ("11", "12"):
        page.fill("#param-seed", seed)
        page.click("#regenerate")
        page.wait_for_selector(".message.streaming")
        page.wait_for_selector(".message.streaming", state="detached", timeout=120_000)
    page.click(".message.assistant >> nth=-1 >> button[aria-label='Previous version']")
    page.wait_for_function("() => document.querySelector('.version-count').textContent === '2/3'")
    page.locator(".message.assistant").last.hover()
    screenshot(page, "versions", FOLDER)
    page.fill("#chat-search", "palindrome")
    page.wait_for_selector(".search-hit mark")
    screenshot(page, "search", FOLDER)
    page.press("#chat-search", "Escape")
    deterministic(page)
    page.fill("#param-seed", "-1")


def files_in_a_message(page, folder: Path) -> None:
    """A text file and a PDF sent with a question the model answers from them."""
    from document_files import pdf_bytes

    notes = folder / "offsite-notes.txt"
    notes.write_text(
        "Team offsite\n\nDate: Thursday 14 March\nPlace: the lighthouse museum in Portland\n"
        "Bring: walking shoes and a rain jacket\n"
    )
    agenda = folder / "agenda.pdf"
    agenda.write_bytes(pdf_bytes(["Agenda", "10:00 Welcome and coffee", "11:00 Tour of the lighthouse"]))
    page.click("#new-chat")
    page.wait_for_selector(".empty-chat")
    page.set_input_files("#file-input", [str(notes), str(agenda)])
    page.wait_for_function("() => document.querySelectorAll('#attachments .file-chip').length === 2")
    page.wait_for_timeout(500)
    ask(page, "Where is the team offsite, and what should I bring?")
    screenshot(page, "files", FOLDER)


def notebook(page, url: str) -> None:
    page.goto(url + "/notebook")
    page.wait_for_selector("#notebook-list .chat-item.active")
    page.fill("#notebook-title", "The keeper's log")
    page.fill(
        "#notebook-text",
        "The Keeper's Log\n\nOnce upon a time, in a small village by the sea, there lived an old "
        "lighthouse keeper named Tom. Every night,",
    )
    if not page.is_visible("#param-max_tokens"):
        page.click("#params-toggle")  # the chat closed the panel: the choice is shared
    page.select_option("#preset", "Default")
    page.fill("#param-seed", "7")
    page.fill("#param-max_tokens", "160")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.querySelector('#notebook-text').readOnly")
    page.wait_for_function("() => !document.querySelector('#notebook-text').readOnly", timeout=120_000)
    page.wait_for_timeout(600)  # the token count
    screenshot(page, "notebook", FOLDER)


def test_screenshots(site, new_page, tmp_path):
    page = new_page(width=1280, height=860)
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item")
    page.click("#mode-switch [data-mode='instruct']")
    page.wait_for_selector(".empty-chat")
    deterministic(page)
    ask(page, "Write a Python function that checks whether a word is a palindrome.")
    ask(page, "What is the capital of France?")
    assert "Paris" in page.locator(".message.assistant .content").last.inner_text()
    page.locator(".message.user").last.hover()
    screenshot(page, "chat", FOLDER)

    versions_and_search(page)
    files_in_a_message(page, tmp_path)

    page.click("#mode-switch [data-mode='chat']")
    page.click("#character-button")
    page.click(".picker-item:has-text('Ada')")
    page.wait_for_selector(".message.assistant .author:has-text('Ada')")
    page.click("#params-toggle")  # close the panel: more room for the conversation
    ask(page, "Hi Ada! Why is the sky blue?")
    screenshot(page, "chat-character", FOLDER)

    page.click("#theme-toggle")
    page.click("#theme-toggle")  # auto -> light -> dark
    page.wait_for_timeout(300)
    screenshot(page, "chat-dark", FOLDER)
    page.click("#theme-toggle")  # back to automatic

    notebook(page, site.ui_url)

    page.goto(site.ui_url + "/characters")
    page.wait_for_selector(".char-card[data-key='Dr. Lin'] img")
    page.wait_for_load_state("networkidle")
    screenshot(page, "gallery", FOLDER)

    page.goto(site.ui_url + "/models")
    page.wait_for_selector("#current-model h2:text-is('SmolLM2-135M-Instruct')")
    screenshot(page, "model", FOLDER)

    phone = new_page(width=390, height=844)
    phone.goto(site.ui_url + "/?character=Ada")
    phone.wait_for_selector(".message.user")
    phone.wait_for_load_state("networkidle")
    screenshot(phone, "phone", FOLDER)
