"""Every chat hook runs from one place, in a defined order, for each extension in the order
they were enabled; modifiers chain (each gets the one before's result)."""

from __future__ import annotations

from fake_model import MODEL, words

from modules.chat.messages import ChatMessage, ChatOptions

RECORDER = """
    params = {{}}
    TAG = "{tag}"

    def trace(state, hook):
        state.setdefault("trace", []).append((TAG, hook))

    def state_modifier(state):
        trace(state, "state_modifier")
        return state

    def chat_input_modifier(text, visible_text, state):
        trace(state, "chat_input_modifier")
        return text + " ci-" + TAG, visible_text

    def input_modifier(string, state, is_chat=False):
        trace(state, "input_modifier")
        assert is_chat is True
        return string + " in-" + TAG

    def history_modifier(history, state):
        trace(state, "history_modifier")
        return history

    def bot_prefix_modifier(string, state):
        trace(state, "bot_prefix_modifier")
        return string + " [" + TAG + "]"

    def custom_generate_chat_prompt(user_input, state, **kwargs):
        trace(state, "custom_generate_chat_prompt")
        return None

    def output_modifier(string, state, is_chat=False):
        trace(state, "output_modifier")
        return string.replace("x", TAG)
"""

CHAT_HOOKS = [
    "state_modifier",
    "chat_input_modifier",
    "input_modifier",
    "history_modifier",
    "bot_prefix_modifier",
    "custom_generate_chat_prompt",
]


def test_hooks_run_in_the_documented_order_for_each_extension_in_enabled_order(write_extension, build_app):
    write_extension("first", RECORDER.format(tag="A"))
    write_extension("second", RECORDER.format(tag="B"))
    hearth = build_app("second", "first").extensions["hearth"]  # enabled: second, then first
    assert hearth.extensions.names() == ["openai", "second", "first"]

    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hello")], ChatOptions(mode="chat"), MODEL, count_tokens=words, max_tokens=16
    )
    parser = hearth.chat.reply_parser(ChatOptions(mode="chat"), prepared)
    reply = parser.whole(" x marks")

    expected = [(tag, hook) for hook in CHAT_HOOKS for tag in ("B", "A")]
    assert prepared.state["trace"][: len(expected)] == expected
    assert prepared.state["trace"][len(expected) :][:2] == [
        ("B", "output_modifier"),
        ("A", "output_modifier"),
    ]
    # Modifiers chain in order: second's result goes to first.
    assert "hello ci-B ci-A in-B in-A" in prepared.prompt
    assert prepared.prompt.endswith(" [B] [A]")
    assert prepared.visible_text == "hello"
    assert reply.content == "B marks"


def test_a_custom_prompt_from_the_first_extension_wins(write_extension, build_app):
    write_extension(
        "one",
        """
        def custom_generate_chat_prompt(user_input, state, **kwargs):
            return f"ONE {user_input} {len(kwargs['history'])} {kwargs['_continue']}"
    """,
    )
    write_extension(
        "two",
        """
        def custom_generate_chat_prompt(user_input, state, **kwargs):
            return "TWO"
    """,
    )
    hearth = build_app("one", "two").extensions["hearth"]
    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hi")], ChatOptions(), MODEL, count_tokens=words, max_tokens=16
    )
    assert prepared.prompt == "ONE hi 1 False"


def test_text_generation_webui_signatures_old_and_new_both_work(write_extension, build_app):
    write_extension(
        "old_style",
        """
        def input_modifier(string):               # the oldest form: no state
            return string.upper()

        def history_modifier(history):            # no state
            return [m for m in history if m.content != "DROP"] + []

        def output_modifier(string, state):       # no is_chat
            return string + "!"
    """,
    )
    hearth = build_app("old_style").extensions["hearth"]
    options = ChatOptions()
    messages = [ChatMessage("user", "DROP"), ChatMessage("assistant", "ok"), ChatMessage("user", "shout")]
    prepared = hearth.chat.prepare(messages, options, MODEL, count_tokens=words, max_tokens=16)
    assert "SHOUT" in prepared.prompt and "DROP" not in prepared.prompt
    assert hearth.chat.reply_parser(options, prepared).whole("hey").content == "hey!"


def test_chat_input_modifier_visible_text_is_what_the_ui_saves(write_extension, build_app):
    write_extension(
        "tagger",
        """
        def chat_input_modifier(text, visible_text, state):
            return "INTERNAL " + text, visible_text + " (tagged)"
    """,
    )
    hearth = build_app("tagger").extensions["hearth"]
    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hello")], ChatOptions(), MODEL, count_tokens=words, max_tokens=16
    )
    assert "INTERNAL hello" in prepared.prompt
    assert prepared.visible_text == "hello (tagged)"
    # Not on a continue: there is no new user message.
    cont = hearth.chat.prepare(
        [ChatMessage("user", "hello"), ChatMessage("assistant", "par")],
        ChatOptions(continue_=True),
        MODEL,
        count_tokens=words,
        max_tokens=16,
    )
    assert "INTERNAL" not in cont.prompt and cont.visible_text is None


def test_request_state_reaches_the_hooks_but_cannot_replace_the_engines_keys(write_extension, build_app):
    write_extension(
        "peek",
        """
        def state_modifier(state):
            state["extras"]["seen"] = [state.get("color"), state["mode"]]
            return state
    """,
    )
    hearth = build_app("peek").extensions["hearth"]
    prepared = hearth.chat.prepare(
        [ChatMessage("user", "hi")],
        ChatOptions(),
        MODEL,
        count_tokens=words,
        max_tokens=16,
        request_state={"color": "blue", "mode": "hacked"},
    )
    assert prepared.state["extras"]["seen"] == ["blue", "instruct"]
