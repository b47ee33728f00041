"""The characters, model and settings pages, phone width and keyboard use, in headless Chromium."""

from __future__ import annotations

import io
import shutil

import pytest
import yaml
from PIL import Image
from ui_helpers import screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_model_path):
    """A server whose model folder holds two tiny models and a broken one."""
    from servers import make_user_data, start_server, tiny_args
    from tiny_model import write_tiny_model

    folder = tmp_path_factory.mktemp("browser-pages")
    models = folder / "models"
    models.mkdir()
    shutil.copy(tiny_model_path, models / "tiny.gguf")
    write_tiny_model(models / "Tiny Two Instruct.gguf", seed=1, name="Tiny Two")
    (models / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    user_data = make_user_data(folder / "user_data")
    proc = start_server(
        tiny_args(user_data, models, ctx_size=1024),
        log_path=folder / "server.log",
        wait_for="ui",
    )
    proc.extra["user_data"] = user_data
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def picture_file(tmp_path, color=(230, 120, 40)):
    path = tmp_path / "portrait.jpg"
    image = Image.new("RGB", (300, 300), color)
    for x in range(80, 220):  # something to see: a lighter square
        for y in range(80, 220):
            image.putpixel((x, y), (250, 210, 160))
    image.save(path, format="JPEG")
    return path


def test_create_a_character_with_a_picture_and_chat_with_it(site, new_page, tmp_path):
    page = new_page()
    page.goto(site.ui_url + "/characters")
    page.wait_for_selector(".char-card")
    assert page.locator(".char-card").count() == 3  # Ada, Assistant and Example
    page.click("#new-character")
    page.fill("#field-name", "Captain Nova")
    page.fill("textarea[name=greeting]", "Welcome aboard, {{user}}!")
    page.fill("textarea[name=context]", "Captain Nova commands a small ship.")
    page.set_input_files("#picture", str(picture_file(tmp_path)))
    page.wait_for_selector("#picture-preview img")
    page.click("#save-character")
    page.wait_for_selector(".char-card[data-key='Captain Nova'] .char-picture img")
    card = page.locator(".char-card[data-key='Captain Nova']")
    picture_url = card.locator("img").get_attribute("src")
    assert page.request.get(site.ui_url + picture_url).headers["content-type"] == "image/png"
    assert (site.extra["user_data"] / "characters" / "Captain Nova.png").exists()

    card.locator("a:has-text('Chat')").click()
    page.wait_for_selector(".message.assistant")
    assert page.locator("#character-name").inner_text() == "Captain Nova"
    assert page.locator(".message.assistant .content").first.inner_text() == "Welcome aboard, You!"
    assert page.locator(".message.assistant img.avatar").count() == 1


def test_edit_validate_and_delete_a_character(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/characters")
    page.wait_for_selector(".char-card")
    page.click("#new-character")
    page.click("#save-character")  # no name
    assert "name" in page.locator("#editor-error").inner_text()
    page.fill("#field-name", "Temp Person")
    page.set_input_files(
        "#picture",
        files=[{"name": "fake.png", "mimeType": "image/png", "buffer": b"<html>not a picture</html>"}],
    )
    page.click("#save-character")
    page.wait_for_selector("#editor-error:has-text('picture')")  # a message, not a dead button
    page.set_input_files("#picture", files=[])
    page.click("#save-character")
    page.wait_for_selector(".char-card[data-key='Temp Person']")

    page.click(".char-card[data-key='Temp Person'] button:has-text('Edit')")
    page.fill("textarea[name=context]", "Edited context.")
    page.click("#save-character")
    page.wait_for_selector(".char-card[data-key='Temp Person'] .char-blurb:has-text('Edited context.')")
    page.click(".char-card[data-key='Temp Person'] button:has-text('Edit')")
    page.click("#delete-character")
    page.click("#confirm-ok")
    page.wait_for_selector(".char-card[data-key='Temp Person']", state="detached")


def test_import_cards_and_files(site, new_page, tmp_path):
    import base64
    import json

    from modules.chat import png

    card = {
        "spec": "chara_card_v2",
        "data": {"name": "Card Import", "description": "From a card.", "first_mes": "Hello from a card."},
    }
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (60, 90, 200)).save(buffer, format="PNG")
    card_png = png.with_text(buffer.getvalue(), "chara", base64.b64encode(json.dumps(card).encode()).decode())
    page = new_page()
    page.goto(site.ui_url + "/characters")
    page.wait_for_selector(".char-card")
    page.set_input_files(
        "#import-file", files=[{"name": "card.png", "mimeType": "image/png", "buffer": card_png}]
    )
    page.wait_for_selector(".char-card[data-key='Card Import'] img")
    text = yaml.safe_dump({"name": "Yaml Import", "greeting": "Hi from YAML"}).encode()
    page.set_input_files("#import-file", files=[{"name": "y.yaml", "mimeType": "text/yaml", "buffer": text}])
    page.wait_for_selector(".char-card[data-key='Yaml Import']")
    page.set_input_files(
        "#import-file", files=[{"name": "bad.json", "mimeType": "application/json", "buffer": b"{broken"}]
    )
    page.wait_for_selector(".toast-error")
    assert "cannot be read" in page.locator(".toast-error").inner_text()
    screenshot(page, "characters-tiny")


def test_load_a_model_with_options_and_see_it_everywhere(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/models")
    page.wait_for_selector("#model-table tbody tr")
    assert page.locator("#current-model h2").inner_text() == "tiny"
    assert "tiny" in page.locator("#model-pill").inner_text()
    page.select_option("#load-name", "Tiny Two Instruct")
    page.fill("#load-ctx", "768")
    page.fill("#load-threads", "1")
    page.click("#load-button")
    page.wait_for_selector("#current-model h2:text-is('Tiny Two Instruct')")
    assert "768" in page.locator("#current-model").inner_text()
    assert page.locator(".toast:has-text('Loaded Tiny Two Instruct')").count() == 1
    assert "Tiny Two Instruct" in page.locator("#model-pill").inner_text()
    assert page.locator("#model-table tr:has-text('Tiny Two Instruct') .badge.ok").count() == 1

    page.goto(site.ui_url + "/")  # the chat header shows it too
    page.wait_for_selector("#model-pill .model-name:text-is('Tiny Two Instruct')")
    page.goto(site.ui_url + "/models")
    page.wait_for_selector("#model-table tbody tr")
    page.click("#model-table tr:has-text('Tiny Two Instruct') button:has-text('Unload')")
    page.wait_for_selector("#current-model h2:text-is('tiny')")
    page.click("#model-table tr:has-text('tiny') >> nth=0 >> button:has-text('Unload')")
    page.wait_for_selector("#current-model h2:text-is('No model loaded')")
    assert "No model" in page.locator("#model-pill").inner_text()
    page.select_option("#load-name", "tiny")
    page.fill("#load-ctx", "1024")
    page.click("#load-button")
    page.wait_for_selector("#current-model h2:text-is('tiny')")


def test_a_broken_model_shows_a_message_and_the_page_stays_usable(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/models")
    page.wait_for_selector("#model-table tbody tr")
    page.select_option("#load-name", "broken")
    page.click("#load-button")
    page.wait_for_selector("#model-error:not([hidden])")
    assert "Could not load broken" in page.locator("#model-error").inner_text()
    assert page.is_enabled("#load-button")
    page.select_option("#load-name", "tiny")
    page.click("#load-button")
    page.wait_for_selector("#model-error", state="hidden")
    page.wait_for_selector("#current-model h2:text-is('tiny')")


def test_settings_save_the_choices_and_list_extensions(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/settings")
    page.wait_for_selector("#extensions-table tbody tr")
    assert "openai" in page.locator("#extensions-table").inner_text()
    page.select_option("select[name=mode]", "instruct")
    page.select_option("select[name=preset]", "Precise")
    page.fill("input[name=user_name]", "Sam")
    page.select_option("select[name=theme]", "dark")
    page.click("button:has-text('Save to settings.yaml')")
    page.wait_for_selector(".toast:has-text('Saved to')")
    saved = yaml.safe_load((site.extra["user_data"] / "settings.yaml").read_text())
    assert saved["mode"] == "instruct" and saved["preset"] == "Precise" and saved["user_name"] == "Sam"
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.select_option("select[name=theme]", "auto")
    page.select_option("select[name=mode]", "chat")
    page.click("button:has-text('Save to settings.yaml')")
    page.wait_for_selector(".toast:has-text('Saved to') >> nth=1")


def test_theme_toggle_and_dark_screenshot(site, new_page):
    page = new_page(color_scheme="dark")
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")  # auto -> light
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    page.click("#theme-toggle")  # light -> dark
    page.reload()
    page.wait_for_selector("#chat-list .chat-item")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    screenshot(page, "chat-dark-tiny")


def test_phone_width(site, new_page):
    page = new_page(width=390, height=844)
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#messages .message, #messages .empty-chat")
    assert page.evaluate("document.documentElement.scrollWidth <= 390")  # no sideways scrolling
    assert not page.is_visible("#new-chat")  # the sidebar is a drawer
    page.click("#sidebar-toggle")
    page.wait_for_selector("#new-chat", state="visible")
    screenshot(page, "phone-drawer-tiny")
    page.click("#scrim", position={"x": 370, "y": 400})
    page.wait_for_selector("#new-chat", state="hidden")
    page.fill("#input", "Hi from a phone")
    page.fill("#param-max_tokens", "8") if page.is_visible("#param-max_tokens") else None
    page.click("#send")
    page.wait_for_selector(".message.user")
    page.wait_for_selector(".message.streaming", state="detached")
    assert page.evaluate("document.documentElement.scrollWidth <= 390")
    screenshot(page, "phone-tiny")
    for path in ("/notebook", "/characters", "/models", "/settings"):
        page.goto(site.ui_url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth <= 390"), path


# What no page may do, on a phone least of all: a control or card past the screen's edge or its
# card's, a button's text cut off, a name broken inside a word. Hidden ones (a closed drawer) are skipped.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const shown = (e) => e.checkVisibility({ visibilityProperty: true }) && !e.closest(".visually-hidden");
  const name = (e) => `${e.tagName.toLowerCase()}#${e.id} "${e.textContent.trim().slice(0, 30)}"`;
  const outside = (box, left, right) => box.left < left - 0.5 || box.right > right + 0.5;
  for (const e of document.querySelectorAll("button, a.btn, input, select, textarea, .card, .char-card")) {
    if (!shown(e)) continue;
    const box = e.getBoundingClientRect();
    if (outside(box, 0, innerWidth)) problems.push(`${name(e)} runs off screen: ${box.right}`);
    const card = e.parentElement.closest(".card, .char-card")?.getBoundingClientRect();
    if (card && outside(box, card.left, card.right)) problems.push(`${name(e)} runs past its card`);
    if ((e.tagName === "BUTTON" || e.matches("a.btn")) && e.scrollWidth > e.clientWidth) {
      problems.push(`${name(e)} is cut off: ${e.scrollWidth} > ${e.clientWidth}`);
    }
  }
  for (const label of document.querySelectorAll(".char-name > span:first-child, .table td strong")) {
    const text = label.firstChild;
    if (!shown(label) || text?.nodeType !== Node.TEXT_NODE) continue;
    for (const word of text.data.matchAll(/[^\\s-]+/g)) {
      const range = document.createRange();
      range.setStart(text, word.index);
      range.setEnd(text, word.index + word[0].length);
      if (range.getClientRects().length > 1) problems.push(`"${word[0]}" in "${text.data}" is split`);
    }
  }
  return problems;
}"""

PAGES = {
    "/": "#messages .message, #messages .empty-chat",
    "/?character=Assistant": "#messages .message",
    "/notebook": "#notebook-text",
    "/characters": ".char-card",
    "/models": "#model-table tbody tr",
    "/settings": "#extensions-table tbody tr",
}


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_every_control_stays_inside_its_card_and_the_screen(site, new_page, width):
    page = new_page(width=width, height=844)
    for path, ready in PAGES.items():
        page.goto(site.ui_url + path)
        page.wait_for_selector(ready)
        page.wait_for_load_state("networkidle")
        assert page.evaluate(LAYOUT_PROBLEMS) == [], (width, path)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        name = path.strip("/?").replace("=", "-") or "chat"
        screenshot(page, f"width-{width}-{name}-tiny")


@pytest.mark.parametrize("width", [360, 390, 1280])
def test_the_header_shows_the_model_and_its_template(site, new_page, width):
    page = new_page(width=width, height=844)
    status = page.request.get(site.ui_url + "/ui/api/status").json()
    template = status["model"]["template"]
    expected = "template from the model" if template == "model" else template
    for path in ("/", "/characters"):
        page.goto(site.ui_url + path)
        page.wait_for_selector(f"#model-pill .model-name:text-is('{status['model']['id']}')")
        assert page.locator("#model-pill .template-name").inner_text() == f"· {expected}"
        for part in (".model-name", ".template-name"):  # shown whole, not hidden or cut to "…"
            shown = page.evaluate(
                "(selector) => { const e = document.querySelector(selector);"
                " const box = e.getBoundingClientRect(); return e.checkVisibility() && box.width > 0"
                " && box.right <= innerWidth && e.scrollWidth <= e.clientWidth; }",
                f"#model-pill {part}",
            )
            assert shown, (width, path, part)


def test_keyboard_only(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/")
    page.wait_for_selector("#chat-list .chat-item")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    seen = []
    for _ in range(40):  # every control on the way is reachable and says what it is
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                "() => { const e = document.activeElement; return e.getAttribute('aria-label') || e.id"
                " || e.textContent.trim() || e.tagName; }"
            )
        )
    assert "input" in seen and "Regenerate" in " ".join(seen)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # a visible focus ring
    page.focus("#character-button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#character-picker[open]")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.querySelector('#character-picker').open")


def test_login_in_the_browser_guards_the_page_and_the_socket(ui_server, new_page):
    from simple_websocket import Client, ConnectionError

    site = ui_server("--ui-auth", "ann:secret")
    with pytest.raises(ConnectionError):
        Client.connect(site.ui_url.replace("http", "ws") + "/ui/ws")  # no session: refused
    page = new_page()
    page.goto(site.ui_url + "/characters")
    page.wait_for_selector("input[name=username]")
    assert "/login" in page.url
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".alert-error")
    page.fill("input[name=username]", "ann")
    page.fill("input[name=password]", "secret")
    page.click("button[type=submit]")
    page.wait_for_selector(".char-card")  # back where we wanted to go
    page.goto(site.ui_url + "/?character=Assistant")
    page.wait_for_selector("#messages .message")
    page.fill("#param-max_tokens", "5")
    page.fill("#input", "Logged in")
    page.press("#input", "Enter")
    page.wait_for_selector(".message.user")
    page.wait_for_selector(".message.streaming", state="detached")
    assert page.locator(".message.assistant .stats").last.inner_text()
    page.click("button[aria-label^='Log out']")
    page.wait_for_selector("input[name=username]")


def test_the_load_form_offers_the_load_arguments_and_the_table_shows_states(site, new_page):
    page = new_page()
    page.goto(site.ui_url + "/models")
    page.wait_for_selector("#model-table tbody tr")
    page.click("#load-more summary")
    for name in ("cache_type", "ubatch_size", "rope_freq_base", "compress_pos_emb", "no_mmap", "gpu_layers"):
        assert page.locator(f"#arg-{name}").count() == 1, name
    assert page.locator("#arg-ctx_size").count() == 0  # the form's own field shows it
    page.select_option("#load-name", "Tiny Two Instruct")
    page.select_option("#arg-cache_type", "f32")
    page.fill("#arg-ubatch_size", "64")
    page.select_option("#arg-no_mmap", "true")
    page.click("#load-button")
    page.wait_for_selector("#current-model h2:text-is('Tiny Two Instruct')")
    assert "KV cache: f32" in page.locator("#current-model").inner_text()
    row = page.locator("#model-table tr:has-text('Tiny Two Instruct')")
    assert row.locator(".badge.ok").inner_text() == "Loaded"
    others = page.locator("#model-table tr:has-text('broken')")
    assert others.locator("td").nth(3).inner_text() == "—"  # unloaded
