"""`params` defaults come from script.py, settings.yaml's `<name>-<param>` keys override them,
and the effective values belong to one app (tests build fresh apps)."""

from __future__ import annotations

import logging

from fake_model import MODEL, words

from modules.chat.messages import ChatMessage, ChatOptions

BIAS = """
    params = {"activate": True, "bias_string": " *smiles*", "repeat": 1}

    def bot_prefix_modifier(string, state):
        if params["activate"]:
            return string + params["bias_string"] * params["repeat"]
        return string
"""


def prefix(app) -> str:
    hearth = app.extensions["hearth"]
    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hi")], ChatOptions(mode="chat"), MODEL, count_tokens=words, max_tokens=8
    )
    return prepared.prompt.rsplit("\n", 1)[-1]


def test_settings_yaml_overrides_params_and_apps_do_not_share_them(write_extension, build_app):
    write_extension("bias", BIAS)
    plain = build_app("bias")
    assert prefix(plain).endswith("Assistant: *smiles*")

    tuned = build_app(
        "bias",
        yaml="""
        bias-bias_string: " *frowns*"
        bias-repeat: 2
    """,
    )
    extension = tuned.extensions["hearth"].extensions.get("bias")
    assert extension.params == {"activate": True, "bias_string": " *frowns*", "repeat": 2}
    assert extension.module.params is extension.params  # what the hooks read
    assert prefix(tuned).endswith("Assistant: *frowns* *frowns*")
    # The first app still has its own values: nothing leaked through the module.
    assert plain.extensions["hearth"].extensions.get("bias").params["bias_string"] == " *smiles*"
    assert prefix(plain).endswith("Assistant: *smiles*")


def test_default_extensions_in_settings_yaml_enable_extensions_in_order(write_extension, build_app):
    write_extension("one", "params = {}\n")
    write_extension("two", "params = {}\n")
    app = build_app(yaml="default_extensions: [two, one]\n", flags=())
    assert app.extensions["hearth"].extensions.names() == ["two", "one"]


def test_an_unknown_param_in_settings_yaml_skips_the_extension_with_a_logged_error(
    write_extension, build_app, caplog
):
    write_extension("bias", BIAS)
    with caplog.at_level(logging.ERROR, logger="modules.extensions"):
        app = build_app("bias", yaml="bias-colour: red\n")
    assert app.extensions["hearth"].extensions.get("bias") is None
    assert "extension bias failed to load" in caplog.text and "colour" in caplog.text


def test_user_extensions_win_over_bundled_ones_of_the_same_name(write_extension, build_app):
    write_extension("character_bias", 'params = {"mine": True}\n')
    app = build_app("character_bias")
    assert app.extensions["hearth"].extensions.get("character_bias").params == {"mine": True}
