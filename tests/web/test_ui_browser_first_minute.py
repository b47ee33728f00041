"""A newcomer's first minute: the chat page opens where the loaded model answers best
(instruct mode for an instruction-tuned model, chat mode for a base model), keeps the user's
own choice after that, respects a mode set in the settings, and keeps characters one click
away."""

from __future__ import annotations

import pytest
from tiny_model import write_tiny_model

pytestmark = pytest.mark.browser


def mode_shown(page) -> str:
    page.wait_for_selector("#chat-list .chat-item.active")
    return page.get_attribute("#mode-switch [aria-checked='true']", "data-mode")


def test_an_instruction_tuned_model_starts_in_instruct_mode_then_the_choice_stays(ui_server, new_page):
    site = ui_server()  # the tiny model has a chat template: instruction-tuned
    page = new_page()
    page.goto(site.ui_url + "/")
    assert mode_shown(page) == "instruct"
    assert page.inner_text(".empty-chat h2") == "How can I help?"
    assert page.inner_text("#character-name") == "None (instruct)"  # characters: one click away
    page.click("#mode-switch [data-mode='chat']")
    page.wait_for_selector(".message.assistant .author:has-text('Assistant')")  # the greeting
    page.reload()
    assert mode_shown(page) == "chat"  # the user's choice, from now on

    other = new_page()  # a newcomer who asks for a character gets it, in chat mode
    other.goto(site.ui_url + "/?character=Ada")
    assert mode_shown(other) == "chat" and other.inner_text("#character-name") == "Ada"


def test_a_mode_from_the_settings_wins(ui_server, new_page):
    site = ui_server("--mode", "chat-instruct")
    page = new_page()
    page.goto(site.ui_url + "/")
    assert mode_shown(page) == "chat-instruct"


def test_a_base_model_starts_in_chat_mode(server, tmp_path, new_page):
    models = tmp_path / "base-models"
    models.mkdir()
    write_tiny_model(models / "tinybase.gguf", chat_template=None, name="tinybase")
    from servers import make_user_data, start_server, tiny_args

    user_data = make_user_data(tmp_path / "base-user-data")
    proc = start_server(
        [*tiny_args(user_data, models, model="tinybase")], log_path=tmp_path / "base.log", wait_for="ui"
    )
    try:
        page = new_page()
        page.goto(proc.ui_url + "/")
        assert mode_shown(page) == "chat"
    finally:
        proc.stop()
