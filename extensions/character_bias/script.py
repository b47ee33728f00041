"""character_bias: start every reply of the bot with a fixed string (the template extension).

Ported from text-generation-webui's extension of the same name, and written to be copied:
docs/extensions.md walks through this file. To try it:

    python server.py --extensions character_bias

and in user_data/settings.yaml, to change its defaults:

    character_bias-bias_string: "*I am so happy*"
"""

# `params` holds the extension's settings and their defaults. Each one can be overridden in
# settings.yaml as `character_bias-<param>`, and the ones `ui()` shows can be changed on
# the settings page while Hearth runs. Hearth loads this file afresh for every app, so this
# dict always holds the values in effect: read it inside the hooks, not at import time.
params = {
    "activate": True,
    "bias_string": " *I am so happy*",
}


def bot_prefix_modifier(string, state):
    """The prefix the bot's reply starts after, e.g. "Ada:" in chat mode.

    Whatever this returns ends the prompt, so the model carries on from it: the bias string
    steers the mood of the reply. In instruct mode there is no prefix and this is not called.
    """
    if params["activate"]:
        return f"{string}{params['bias_string']}"
    return string


def ui():
    """The panel on the settings page: controls bound to `params` by name. (text-generation-
    webui's Gradio ui() cannot run here: describe the controls instead.)"""
    return [
        {"param": "activate", "type": "checkbox", "label": "Activate character bias"},
        {
            "param": "bias_string",
            "type": "text",
            "label": "Character bias",
            "help": "Added to the start of every reply in the chat modes.",
        },
    ]
