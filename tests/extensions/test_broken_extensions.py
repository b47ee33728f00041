"""A broken extension is logged with its name and skipped; the server, the chat and the
other extensions go on."""

from __future__ import annotations

import logging

from fake_model import MODEL, words

from modules.chat.messages import ChatMessage, ChatOptions

GOOD = """
    def input_modifier(string, state, is_chat=False):
        return string + " [good]"
"""


def prepare(app, text="hi"):
    hearth = app.extensions["hearth"]
    options = ChatOptions(mode="chat")
    prepared = hearth.chat.prepare(
        [ChatMessage("user", text)], options, MODEL, count_tokens=words, max_tokens=8
    )
    return prepared, hearth.chat.reply_parser(options, prepared)


def test_syntax_error_import_error_and_raising_setup_are_skipped(write_extension, build_app, caplog):
    write_extension("syntax", "def broken(:\n")
    write_extension("imports", "import no_such_module_anywhere\n")
    write_extension("setup_fails", "def setup():\n    raise RuntimeError('no database')\n")
    write_extension("good", GOOD)
    with caplog.at_level(logging.ERROR, logger="modules.extensions"):
        app = build_app("syntax", "imports", "setup_fails", "missing", "good")
    assert app.extensions["hearth"].extensions.names() == ["openai", "good"]
    for name in ("syntax", "imports", "setup_fails"):
        assert f"extension {name} failed to load and is skipped" in caplog.text
    assert "extension missing: not found" in caplog.text
    assert "no database" in caplog.text
    prepared, _ = prepare(app)
    assert "hi [good]" in prepared.prompt
    # The UI lists them as failed.
    extensions = app.test_client().get("/ui/api/extensions").get_json()["extensions"]
    listed = {e["name"]: e["state"] for e in extensions}
    assert listed["syntax"] == listed["setup_fails"] == "failed" and listed["good"] == "loaded"


def test_a_raising_hook_is_skipped_logged_once_and_the_chat_goes_on(write_extension, build_app, caplog):
    write_extension(
        "explodes",
        """
        def input_modifier(string, state, is_chat=False):
            raise ValueError("kaboom")

        def bot_prefix_modifier(string, state):
            return 42                     # the wrong type counts as a failure too

        def output_modifier(string, state, is_chat=False):
            raise KeyError("out")

        def history_modifier(history, state):
            return ["not a message"]
    """,
    )
    write_extension("good", GOOD)
    app = build_app("explodes", "good")
    with caplog.at_level(logging.ERROR, logger="modules.extensions"):
        for _ in range(3):
            prepared, parser = prepare(app)
            assert "hi [good]" in prepared.prompt
            assert prepared.prompt.endswith("Assistant:")
            assert parser.whole(" fine").content == "fine"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("explodes: its input_modifier hook raised ValueError: kaboom" in e for e in errors) == 1
    assert sum("explodes: its bot_prefix_modifier hook returned int, not str" in e for e in errors) == 1
    assert sum("explodes: its output_modifier hook raised KeyError" in e for e in errors) == 1
    assert sum("explodes: its history_modifier hook returned a bad message" in e for e in errors) == 1


def test_a_hook_raising_a_hearth_error_answers_the_request(write_extension, build_app, tiny_model_path):
    write_extension(
        "refuses",
        """
        from modules.errors import InvalidRequest

        def state_modifier(state):
            raise InvalidRequest("Not today.", param="messages")
    """,
    )
    app = build_app("refuses")
    response = app.test_client().post(
        "/v1/internal/chat-prompt", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "Not today."


def test_a_broken_blueprint_or_panel_leaves_the_rest_working(write_extension, build_app, caplog):
    write_extension(
        "bad_parts",
        """
        params = {"n": 1}

        def blueprint():
            return "not a blueprint"

        def ui():
            return [{"param": "missing", "type": "text"}]

        def custom_css():
            raise RuntimeError("css")
    """,
    )
    with caplog.at_level(logging.ERROR, logger="modules.extensions"):
        app = build_app("bad_parts")
        client = app.test_client()
        assert client.get("/ui/extensions.css").status_code == 200
        extensions = {e["name"]: e for e in client.get("/ui/api/extensions").get_json()["extensions"]}
    assert extensions["bad_parts"]["state"] == "loaded" and extensions["bad_parts"]["panel"] == []
    assert "returned str, not a flask.Blueprint" in caplog.text
    assert "described an invalid panel" in caplog.text
    assert "its custom_css hook raised RuntimeError" in caplog.text
    assert client.get("/health").status_code == 200


def test_an_extension_calling_sys_exit_does_not_end_hearth(write_extension, build_app, caplog):
    write_extension("quits_on_import", "import sys\nsys.exit(1)\n")
    write_extension("quits_in_setup", "def setup():\n    raise SystemExit('bye')\n")
    write_extension(
        "quits_in_a_hook",
        """
        import sys

        def input_modifier(string, state, is_chat=False):
            sys.exit(3)

        def close_me():
            sys.exit(4)

        def setup(context):
            context.on_close(close_me)
        """,
    )
    write_extension("good", GOOD)
    with caplog.at_level(logging.ERROR, logger="modules.extensions"):
        app = build_app("quits_on_import", "quits_in_setup", "quits_in_a_hook", "good")
        assert app.extensions["hearth"].extensions.names() == ["openai", "quits_in_a_hook", "good"]
        prepared, _ = prepare(app)
        assert "hi [good]" in prepared.prompt
        app.extensions["hearth"].extensions.close()
    for name in ("quits_on_import", "quits_in_setup"):
        assert f"extension {name} failed to load and is skipped" in caplog.text
    assert "quits_in_a_hook: its input_modifier hook raised SystemExit" in caplog.text
    assert "extension quits_in_a_hook: failed while closing" in caplog.text
